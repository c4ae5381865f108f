"""The names at a volume's root that OpenFiles owns."""

from __future__ import annotations

import pytest

from openfiles_contracts.name import LOSTFOUND_PREFIX, META_DIR, VOLUME_MARKER, is_reserved


@pytest.mark.parametrize("name", [META_DIR, VOLUME_MARKER, LOSTFOUND_PREFIX + "node-1",
                                  ".openfiles-lost+found-"])
def test_reserved(name: str) -> None:
    assert is_reserved(name)


@pytest.mark.parametrize("name", ["meta", ".openfiles", ".openfiles-meta2",
                                  "x.openfiles-volume.json", "openfiles-lost+found-n1"])
def test_not_reserved(name: str) -> None:
    assert not is_reserved(name)


def test_the_names_in_the_bucket() -> None:
    """Existing buckets hold these: a change strands their sidecars, markers, lost+found."""
    assert (META_DIR, LOSTFOUND_PREFIX, VOLUME_MARKER) == (
        ".openfiles-meta", ".openfiles-lost+found-", ".openfiles-volume.json")
