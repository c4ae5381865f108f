"""Domain errors of the CSI plugin and the one place that turns them into gRPC codes.

Exception tree::

    CsiError                 base; ``code`` is the gRPC status it becomes
    ├── InvalidArgument      a missing or malformed field           INVALID_ARGUMENT
    ├── AlreadyExists        same name or path, different request   ALREADY_EXISTS
    ├── NotFound             no such volume or path                 NOT_FOUND
    ├── FailedPrecondition   the request cannot run in this state   FAILED_PRECONDITION
    ├── Aborted              an operation is in flight for the id   ABORTED
    ├── OutOfRange           capacity outside what we can give      OUT_OF_RANGE
    ├── Unavailable          the mounter or the bucket is away      UNAVAILABLE
    ├── Unimplemented        an RPC this driver does not offer      UNIMPLEMENTED
    └── Internal             our fault, with a message safe to show INTERNAL

Messages must never hold a secret: callers build them from request fields that are
not secrets, and :func:`grpc_errors` logs anything unexpected without its text
reaching the client. As a second line of defence, every message that does reach the
client is masked like a log line (:func:`openfiles_csi.logsetup.redact`): some carry
text from outside (an engine's log tail, relayed by the mounter).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from openfiles_csi.logsetup import redact

log = logging.getLogger(__name__)


class CsiError(Exception):
    """A failure with a gRPC status code and a message that is safe to return."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class InvalidArgument(CsiError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class AlreadyExists(CsiError):
    code = grpc.StatusCode.ALREADY_EXISTS


class NotFound(CsiError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(CsiError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(CsiError):
    code = grpc.StatusCode.ABORTED


class OutOfRange(CsiError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unavailable(CsiError):
    code = grpc.StatusCode.UNAVAILABLE


class Unimplemented(CsiError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(CsiError):
    code = grpc.StatusCode.INTERNAL


R = TypeVar("R")
Handler = Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[R]]


def grpc_errors(handler: Handler[R]) -> Handler[R]:
    """Wrap a servicer method: a :class:`CsiError` aborts with its code and message.

    Anything else is logged with its traceback and becomes INTERNAL with a generic
    message, so a library error text (which might quote a URL or a header) never
    reaches the client.
    """

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> R:
        name = handler.__name__
        try:
            return await handler(self, request, context)
        except CsiError as exc:
            log.info("%s: %s: %s", name, exc.code.name, exc)
            await context.abort(exc.code, redact(str(exc)))
        except Exception:
            log.exception("%s: unexpected error", name)
            await context.abort(
                grpc.StatusCode.INTERNAL, f"{name}: internal error (see plugin log)"
            )
        raise AssertionError("unreachable: context.abort raises")

    return wrapper


def unimplemented(method: str) -> Any:
    """A servicer method that answers UNIMPLEMENTED on purpose, naming ``method``.

    Typed ``Any`` so it can stand in for any abstract method of a generated servicer.
    """

    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        raise Unimplemented(f"{method} is not supported by this driver")

    handler.__name__ = method
    return grpc_errors(handler)
