from __future__ import annotations

from openfiles_engine.read.readahead import MIN_WINDOW, RANDOM_SEEKS, Readahead


def test_window_grows_on_sequential_reads_and_resets_on_seek() -> None:
    ra = Readahead()
    windows = [ra.advance(i * 131072, 131072) for i in range(8)]
    assert windows == sorted(windows) and windows[-1] > MIN_WINDOW
    assert ra.advance(10 * 2**30, 131072) == MIN_WINDOW


def test_seeks_make_a_handle_random_and_sequential_reads_do_not() -> None:
    sequential = Readahead()
    for i in range(100):
        sequential.advance(i * 4096, 4096)
    assert not sequential.random and sequential.seeks == 0
    jumping = Readahead()
    for i in range(RANDOM_SEEKS):
        assert not jumping.random
        jumping.advance((i + 1) * 2**30, 4096)
    assert jumping.random
