"""Errors of the operator, mapped to kopf's retry semantics in one place (handler.py).

    OperatorError
    ├── SpecError          the spec cannot be applied as written; kopf.PermanentError
    │   └── EndpointError  the endpoint is outside the cluster's endpoint policy
    ├── CredentialsError   Secret missing or incomplete; heals when the Secret is fixed
    ├── BucketError        list call failed or timed out; heals when the bucket answers
    ├── ClaimTakenError    a PVC or PV of that name belongs to someone else
    └── ConflictError      the API server answered 409; retry with fresh data

Every message is written for a status condition: it names the field or the
object, and it never contains a credential.
"""

from __future__ import annotations


class OperatorError(Exception):
    """Base of every error the operator turns into a condition."""

    reason = "Error"


class SpecError(OperatorError):
    """The spec cannot be applied as written. ``field`` is a dotted path (``spec.cache.size``)."""

    reason = "InvalidSpec"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class EndpointError(SpecError):
    """The spec names an endpoint the endpoint policy does not list; nothing was called."""

    reason = "EndpointNotAllowed"


class CredentialsError(OperatorError):
    reason = "SecretNotReady"


class BucketError(OperatorError):
    reason = "BucketUnreachable"


class ClaimTakenError(OperatorError):
    reason = "NameTaken"


class ConflictError(OperatorError):
    reason = "Conflict"
