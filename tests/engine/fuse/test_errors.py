from __future__ import annotations

import errno
import sqlite3

import pyfuse3
import pytest
import trio

from openfiles_engine.bucket.store import Conflict, ObjectNotFound, StoreError
from openfiles_engine.fuse.errors import handler


@pytest.mark.parametrize(("exc", "code"), [
    (OSError(errno.ENOSPC, "full"), errno.ENOSPC),
    (sqlite3.OperationalError("database or disk is full"), errno.ENOSPC),
    (ObjectNotFound("k"), errno.ENOENT),
    (Conflict("k"), errno.EEXIST),
    (StoreError("down"), errno.EIO),
    (RuntimeError("bug"), errno.EIO),
    (pyfuse3.FUSEError(errno.EPERM), errno.EPERM),
])
def test_only_fuse_errors_leave_a_handler(exc: BaseException, code: int) -> None:
    @handler
    async def op() -> None:
        raise exc

    with pytest.raises(pyfuse3.FUSEError) as info:
        trio.run(op)
    assert info.value.errno == code


def test_cancellation_passes_through() -> None:
    @handler
    async def op() -> None:
        await trio.sleep_forever()

    async def main() -> bool:
        with trio.move_on_after(0.01) as scope:
            await op()
        return scope.cancelled_caught

    assert trio.run(main)
