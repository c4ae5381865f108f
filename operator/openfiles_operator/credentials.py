"""Bucket credentials read from a user's Secret, and the scrubbing of them from text.

Credentials live in memory only for the duration of one check or one prefix
deletion. ``repr`` hides them, and ``scrub`` removes them from any text
(error messages from the store, for instance) before it reaches a log, an
Event or a status condition.

Which keys each store takes, and what makes them malformed, is
:mod:`openfiles_contracts.store`'s (the CSI node judges the same Secret with it):
``accessKeyId``, ``secretAccessKey`` and optionally ``sessionToken`` for ``s3://``;
``serviceAccountKey`` for ``gs://``; ``accountKey`` or ``sasToken`` (and optionally
``accountName``, equal to the volume's account) for ``az://``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from openfiles_contracts.store import check_secret

_MAX_MESSAGE = 400


@dataclass(frozen=True)
class Credentials:
    """The decoded keys of a volume's Secret, checked for the volume's store."""

    data: Mapping[str, str] = field(repr=False)

    def get(self, key: str) -> str:
        """The value of ``key``, or "" when the Secret does not hold it."""
        return self.data.get(key, "")

    def scrub(self, text: str) -> str:
        """``text`` with every credential value replaced by ``***``, cut to one short paragraph."""
        # Longest first: a value that contains another is replaced whole.
        for secret in sorted(filter(None, self.data.values()), key=len, reverse=True):
            text = text.replace(secret, "***")
        text = " ".join(text.split())
        return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def credentials_from_data(
    data: Mapping[str, str], scheme: str = "s3", *, endpoint: str = "", account: str = ""
) -> Credentials:
    """Build Credentials from decoded Secret data for a ``scheme`` volume.

    Raises :class:`openfiles_contracts.store.StoreSpecError` naming the missing, foreign
    or malformed key (never a value).
    """
    check_secret(scheme, data, endpoint=endpoint, account=account)
    return Credentials(MappingProxyType(dict(data)))
