"""Names at a volume's root that belong to OpenFiles, not to the user.

The bucket holds them under the volume's prefix (docs/CONTRACTS.md section 3):

- :data:`META_DIR`: the engine's attribute sidecars (``openfiles_engine.bucket.layout``);
- :data:`LOSTFOUND_PREFIX` + fsid: the engine's lost+found directory of one node;
- :data:`VOLUME_MARKER`: the CSI controller's record of the CreateVolume request
  (``openfiles_csi.plugin.bucket``).

The engine never shows them in a mount and refuses to create them
(:func:`is_reserved`); the CSI controller writes the marker under this name.
Changing a name strands what existing buckets hold under the old one.
"""

from __future__ import annotations

META_DIR = ".openfiles-meta"
LOSTFOUND_PREFIX = ".openfiles-lost+found-"
VOLUME_MARKER = ".openfiles-volume.json"


def is_reserved(name: str) -> bool:
    """Is ``name``, a file name at a volume's root, one of OpenFiles' own?"""
    return name in (META_DIR, VOLUME_MARKER) or name.startswith(LOSTFOUND_PREFIX)
