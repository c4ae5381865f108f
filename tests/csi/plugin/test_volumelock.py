"""Per-volume locks refuse overlap instead of queueing."""

from __future__ import annotations

import pytest

from openfiles_csi.plugin.errors import Aborted
from openfiles_csi.plugin.volumelock import VolumeLocks


def test_overlap_aborts_and_release_on_error() -> None:
    locks = VolumeLocks()
    with locks.hold("a"):
        with pytest.raises(Aborted, match="'a'"), locks.hold("a"):
            pass
        with locks.hold("b"):
            pass
    with pytest.raises(RuntimeError), locks.hold("a"):
        raise RuntimeError
    with locks.hold("a"):  # released by the failed block
        pass
