"""The controller's access to the bucket: the only module that calls obstore.

A volume is a prefix ``<prefix>/`` in the bucket with a marker object
``<prefix>/.openfiles-volume.json`` that records the request that created it (name,
capacity, parameters; never secrets), so a repeated CreateVolume can be told apart
from a conflicting one. Nothing here ever lists or deletes outside ``<prefix>/``.

obstore failures are mapped once, here, to CSI errors whose messages carry only
the bucket and key, not the library's text (which may quote request details).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import obstore
from obstore.exceptions import (
    AlreadyExistsError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)
from obstore.store import AzureStore, GCSStore, S3Store

from openfiles_contracts.name import VOLUME_MARKER
from openfiles_csi.plugin.errors import CsiError, FailedPrecondition, Internal, Unavailable
from openfiles_csi.volumeid import VolumeRef

log = logging.getLogger(__name__)



# obstore raises some errors as the matching builtin OSError subclasses.
MISSING = (NotFoundError, FileNotFoundError)
EXISTING = (AlreadyExistsError, PreconditionError, FileExistsError)
REFUSED = (PermissionDeniedError, UnauthenticatedError, PermissionError)


class MarkerConflict(Exception):
    """Another writer created the marker between our read and our conditional put."""


def _mapped(exc: Exception, what: str) -> CsiError:
    if isinstance(exc, REFUSED):
        return FailedPrecondition(f"{what}: the bucket refused the provisioner credentials")
    if isinstance(exc, MISSING):
        return FailedPrecondition(f"{what}: bucket not found")
    if isinstance(exc, obstore.exceptions.BaseError | OSError):
        log.warning("%s: store error %s", what, type(exc).__name__)
        return Unavailable(f"{what}: the bucket is unreachable or returned an error")
    log.error("%s: unexpected %s", what, type(exc).__name__)
    return Internal(f"{what}: unexpected error")


class Bucket:
    """One bucket reached with the given credentials (or obstore's environment if none).

    S3, GCS or an Azure container after the volume's scheme; the secrets are the
    provisioner secrets, already checked (``controller.check_secrets``).
    """

    def __init__(self, ref: VolumeRef, secrets: Mapping[str, str]) -> None:
        client: Any = {"allow_http": ref.endpoint.startswith("http://"), "timeout": "30s"}
        self.name = f"{ref.scheme}://{ref.bucket}"
        """The bucket's URL without the prefix (``s3://b``), for messages."""
        config: Any = {}
        if ref.scheme == "gs":
            if ref.endpoint:
                config["base_url"] = ref.endpoint
            if secrets.get("serviceAccountKey"):
                config["service_account_key"] = secrets["serviceAccountKey"]
            self.store: Any = GCSStore(ref.bucket, client_options=client, **config)
            return
        if ref.scheme == "az":
            if ref.endpoint:
                config["endpoint"] = ref.endpoint
            if secrets.get("sasToken"):
                config["sas_key"] = secrets["sasToken"].lstrip("?")
            elif secrets.get("accountKey"):
                config["account_key"] = secrets["accountKey"]
            self.store = AzureStore(ref.bucket, account_name=ref.account, client_options=client,
                                    **config)
            return
        if ref.endpoint:
            config["endpoint"] = ref.endpoint
        if ref.region:
            config["region"] = ref.region
        if secrets.get("accessKeyId"):
            config["access_key_id"] = secrets["accessKeyId"]
            config["secret_access_key"] = secrets.get("secretAccessKey", "")
        if secrets.get("sessionToken"):
            config["token"] = secrets["sessionToken"]
        self.store = S3Store(ref.bucket, config=config, client_options=client)

    async def read_marker(self, prefix: str) -> dict[str, Any] | None:
        """The marker of the volume at ``prefix``, or None if it has none."""
        key = f"{prefix}/{VOLUME_MARKER}"
        try:
            result = await obstore.get_async(self.store, key)
            data = await result.bytes_async()
        except MISSING:
            return None
        except Exception as exc:
            raise _mapped(exc, f"reading {self.name}/{key}") from None
        try:
            marker = json.loads(bytes(data))
        except ValueError:
            raise FailedPrecondition(f"{self.name}/{key} is not a valid marker") from None
        if not isinstance(marker, dict):
            raise FailedPrecondition(f"{self.name}/{key} is not a valid marker")
        return marker

    async def create_marker(self, prefix: str, marker: Mapping[str, Any]) -> None:
        """Create the marker only if absent; raise :class:`MarkerConflict` if it appeared."""
        key = f"{prefix}/{VOLUME_MARKER}"
        body = json.dumps(marker, sort_keys=True).encode()
        try:
            await obstore.put_async(self.store, key, body, mode="create")
        except EXISTING:
            raise MarkerConflict(key) from None
        except Exception as exc:
            raise _mapped(exc, f"creating {self.name}/{key}") from None

    async def delete_marker(self, prefix: str) -> None:
        """Remove only the marker (idempotent); the volume's data stays."""
        key = f"{prefix}/{VOLUME_MARKER}"
        try:
            await obstore.delete_async(self.store, key)
        except MISSING:
            return
        except Exception as exc:
            raise _mapped(exc, f"deleting {self.name}/{key}") from None

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix/`` (and nothing else); return how many."""
        root = prefix + "/"
        count = 0
        try:
            stream = obstore.list(self.store, prefix=prefix, chunk_size=500)
            async for batch in stream:
                # Segment-wise prefix matching already holds; check again before deleting.
                keys = [m["path"] for m in batch if m["path"].startswith(root)]
                if keys:
                    await obstore.delete_async(self.store, keys)
                    count += len(keys)
        except MISSING:
            return count
        except Exception as exc:
            raise _mapped(exc, f"deleting {self.name}/{root}") from None
        return count
