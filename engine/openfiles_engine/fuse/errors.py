"""One wrapper around every FUSE handler: only FUSEError leaves it.

Error table, most specific first:
- ``FUSEError``              passes through;
- ``OSError``                its errno (ENOSPC from a full cache disk stays ENOSPC);
- SQLite "disk is full"      ENOSPC;
- ``store.ObjectNotFound``   ENOENT;
- ``store.Conflict``         EEXIST;
- ``store.StoreError``       EIO, logged;
- any other Exception        EIO, logged with its traceback.
``trio.Cancelled`` is a BaseException and passes through untouched.
"""

from __future__ import annotations

import errno
import functools
import logging
import sqlite3
import time
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, ParamSpec, TypeVar

import pyfuse3

from openfiles_engine.bucket.store import Conflict, ObjectNotFound, StoreError
from openfiles_engine.metrics import Histogram

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

FUSE_LATENCY = Histogram()


def handler(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        start = time.monotonic()
        try:
            return await fn(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        except sqlite3.OperationalError as exc:
            if "full" in str(exc):
                raise pyfuse3.FUSEError(errno.ENOSPC) from None
            log.exception("%s failed", fn.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None
        except ObjectNotFound:
            raise pyfuse3.FUSEError(errno.ENOENT) from None
        except Conflict:
            raise pyfuse3.FUSEError(errno.EEXIST) from None
        except StoreError as exc:
            log.warning("%s: store error: %s", fn.__name__, exc)
            raise pyfuse3.FUSEError(errno.EIO) from None
        except Exception:
            log.exception("%s failed", fn.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None
        finally:
            FUSE_LATENCY.observe(time.monotonic() - start)

    return wrapper


def fail(code: int) -> NoReturn:
    """Raise the FUSE error ``code`` (a function, so handlers read as one line)."""
    raise pyfuse3.FUSEError(code)
