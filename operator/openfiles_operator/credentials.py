"""Bucket credentials read from a user's Secret, and the scrubbing of them from text.

Credentials live in memory only for the duration of one check or one prefix
deletion. ``repr`` hides them, and ``scrub`` removes them from any text
(error messages from the store, for instance) before it reaches a log, an
Event or a status condition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Secret keys of docs/CONTRACTS.md section 3.
ACCESS_KEY, SECRET_KEY, SESSION_TOKEN = "accessKeyId", "secretAccessKey", "sessionToken"
_MAX_MESSAGE = 400


@dataclass(frozen=True)
class Credentials:
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str = field(default="", repr=False)

    def scrub(self, text: str) -> str:
        """``text`` with every credential value replaced by ``***``, cut to one short paragraph."""
        for secret in (self.access_key_id, self.secret_access_key, self.session_token):
            if secret:
                text = text.replace(secret, "***")
        text = " ".join(text.split())
        return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def credentials_from_data(data: dict[str, str]) -> Credentials:
    """Build Credentials from decoded Secret data. Raises KeyError naming the missing key."""
    for key in (ACCESS_KEY, SECRET_KEY):
        if not data.get(key):
            raise KeyError(key)
    return Credentials(data[ACCESS_KEY], data[SECRET_KEY], data.get(SESSION_TOKEN, ""))
