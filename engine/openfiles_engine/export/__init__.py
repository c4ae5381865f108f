"""Local changes to the bucket: the export loop, conflicts, lost+found.

- ``exporter.py``: :class:`~openfiles_engine.export.exporter.Exporter`, the export
  loop. A dirty file goes to the bucket after ``export_delay`` without writes
  (at once on fsync, ``openfiles flush`` and unmount) as a conditional PUT:
  If-Match the ETag last seen, If-None-Match for a new key; its sidecar (when it
  needs one) follows. The journal of renames and deletes (``state/journal.py``)
  is replayed first. Store errors are retried with backoff.
- ``stream.py``: :class:`~openfiles_engine.export.stream.Streams`, uploads while
  written. A file written in order from offset 0 goes up in parts of one multipart
  upload once it passes 80 MiB (``s3://`` only); its export then sends the last
  part and the complete (precondition checked by a HEAD right before), or, if
  the file changed otherwise meanwhile, aborts the upload and PUTs as above.
- ``sidecars.py``: :class:`~openfiles_engine.export.sidecars.SidecarLists`, which
  sidecars a directory holds, from one LIST kept a second: a new file's export
  asks it whether a stale sidecar may sit at its key before it sends a HEAD.
- ``lostfound.py``: :class:`~openfiles_engine.export.lostfound.LostFound`. On a
  conflict the bucket wins: the local version moves to
  ``.openfiles-lost+found-<fsid>/`` with its original path in an xattr, and is
  never exported.

Durability: what an export needs is in SQLite (``state/``) before the FUSE
call that made the change returns, so a crash only delays an export; the loop
finishes it after the next mount.

Layer: imports ``cache/`` (the data file to upload), ``state/``, ``bucket/`` and
the settings; beside ``read/`` (neither imports the other). ``fuse/`` and the
wiring (:mod:`openfiles_engine.engine`) call it.
"""
