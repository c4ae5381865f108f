"""pace.py: fetched data is written in a thread only while the disk is slow."""

from __future__ import annotations

import time

from openfiles_engine.cache.pace import WritePace


def test_fetched_data_is_written_in_a_thread_only_while_the_disk_is_slow() -> None:
    pace = WritePace()
    now = pace.at
    for _ in range(2000):  # page-cache speed: 1 ms of every 3 ms
        now += 0.003
        pace.took(0.001, now)
    assert pace.inline()
    now += 0.003
    pace.took(0.06, now)  # one stall of the VM is not a slow disk
    assert pace.inline()
    for _ in range(20):  # throttled: 100 ms writes, one after the other
        now += 0.1
        pace.took(0.1, now)
    assert not pace.inline()
    assert pace.threaded_until > time.monotonic()
    pace.threaded_until = time.monotonic() - 1  # THREADED_FOR has passed
    assert pace.inline()
