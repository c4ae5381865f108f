"""The bucket side of the operator; the only module that calls obstore.

Two operations, both bounded and both confined to the volume's prefix: the
store is opened *at* the prefix, so no path it lists or deletes can lie outside
it. The store is S3, GCS or Azure Blob after the volume's URL, with the Secret's
keys (docs/CONTRACTS.md section 3) and the volume's endpoint: for GCS the base URL
(also when the service-account key names one, which must then be that endpoint),
for Azure the blob endpoint (``https://ACCOUNT.blob.core.windows.net`` without it).
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import timedelta
from typing import Any

import obstore
from obstore.store import AzureStore, GCSStore, S3Store

from openfiles_operator.credentials import Credentials
from openfiles_operator.errors import BucketError
from openfiles_operator.volume import Location

log = logging.getLogger(__name__)

#: Objects per bulk delete request; S3 accepts at most 1000.
DELETE_BATCH = 1000


#: obstore's text for an HTTP error answer: "...status code: 403 Forbidden: <body>".
_ANSWER = re.compile(r"(non-2xx status code: \d{3}[^:\n]*): .*", re.DOTALL)
#: The error code inside an S3, GCS XML or Azure error body (<Code>NoSuchBucket</Code>).
_S3_CODE = re.compile(r"<Code>([A-Za-z0-9.]{1,64})</Code>")


def _describe(exc: Exception, credentials: Credentials) -> str:
    """A store error as one line fit for a status condition.

    The endpoint is the user's choice and the request comes from the operator's pod, so
    the answer's body is never quoted (it could be any internal service's): only the HTTP
    status and an S3 error code found in it. obstore's "Debug source" dump repeats the
    body, so it goes too. Credential values are scrubbed last.
    """
    text = f"{type(exc).__name__}: {exc}".split("\n\nDebug source:", 1)[0]
    answer = _ANSWER.search(text)
    if answer is not None:
        code = _S3_CODE.search(answer.group(0))
        text = text[: answer.start()] + answer.group(1) + (f" ({code.group(1)})" if code else "")
    return credentials.scrub(text)


def _store(location: Location, credentials: Credentials, timeout: float) -> Any:
    client: Any = {
        "allow_http": location.endpoint.startswith("http://"),
        "connect_timeout": timedelta(seconds=timeout),
        "timeout": timedelta(seconds=timeout),
    }
    # One attempt: the caller retries with backoff and reports each failure.
    retry: Any = {"max_retries": 0, "retry_timeout": timedelta(seconds=timeout)}
    prefix = location.prefix or None
    config: Any  # the store's own config keys, as plain dicts
    if location.scheme == "gs":
        config = {"service_account_key": credentials.get("serviceAccountKey")}
        if location.endpoint:
            config["base_url"] = location.endpoint
        return GCSStore(location.bucket, prefix=prefix, client_options=client,
                        retry_config=retry, **config)
    if location.scheme == "az":
        sas = credentials.get("sasToken")
        config = ({"sas_key": sas.lstrip("?")} if sas
                  else {"account_key": credentials.get("accountKey")})
        if location.endpoint:
            config["endpoint"] = location.endpoint
        return AzureStore(location.bucket, prefix=prefix, account_name=location.account,
                          client_options=client, retry_config=retry, **config)
    config = {
        "access_key_id": credentials.get("accessKeyId"),
        "secret_access_key": credentials.get("secretAccessKey"),
        "region": location.region or "us-east-1",
    }
    if credentials.get("sessionToken"):
        config["session_token"] = credentials.get("sessionToken")
    if location.endpoint:
        config["endpoint"] = location.endpoint
    return S3Store(
        location.bucket,
        prefix=prefix,
        config=config,
        client_options=client,
        retry_config=retry,
    )


async def check_reachable(location: Location, credentials: Credentials, timeout: float) -> None:
    """List at most one page under the prefix. Raises BucketError with a scrubbed message.

    Reachable means: the endpoint answers, the bucket exists, and the credentials may
    list it. An empty prefix is reachable.
    """
    try:
        store = _store(location, credentials, timeout)
        stream = obstore.list(store, chunk_size=1)
        await asyncio.wait_for(anext(stream, None), timeout)
    except TimeoutError as exc:
        raise BucketError(f"no answer from {location.url} within {timeout:g}s") from exc
    except Exception as exc:  # obstore raises many types; each becomes one message
        message = _describe(exc, credentials)
        # "from None": the raw store error is not scrubbed, and a logged traceback would
        # carry it.
        raise BucketError(f"cannot list {location.url}: {message}") from None


async def delete_prefix(location: Location, credentials: Credentials, timeout: float) -> int:
    """Delete every object under the volume's prefix; return how many. Refuses an empty prefix.

    Idempotent: a second call finds nothing and returns 0. Raises BucketError on failure;
    objects deleted before the failure stay deleted, and a retry continues.
    """
    if not location.prefix:
        raise BucketError("refusing to delete a whole bucket: the volume has no prefix")
    deleted = 0
    try:
        store = _store(location, credentials, timeout)
        async for chunk in obstore.list(store, chunk_size=DELETE_BATCH):
            paths = [meta["path"] for meta in chunk]
            await asyncio.wait_for(obstore.delete_async(store, paths), timeout)
            deleted += len(paths)
    except TimeoutError as exc:
        raise BucketError(f"deleting under {location.url} timed out after {timeout:g}s") from exc
    except Exception as exc:
        message = _describe(exc, credentials)
        raise BucketError(f"cannot delete under {location.url}: {message}") from None
    log.info("deleted %d objects under %s/", deleted, location.url)
    return deleted
