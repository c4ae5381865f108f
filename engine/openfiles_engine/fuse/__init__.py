"""The FUSE adapter: every pyfuse3 handler of a mount, and the POSIX rules they apply.

Handlers translate a kernel request into calls on the subsystems below and
read as validate -> act -> persist; whatever an export needs after a crash is
committed (``state/``) before a handler returns.

- ``operations.py``: :class:`~openfiles_engine.fuse.operations.Operations`, the
  object pyfuse3 serves: lookups and attributes, directories, create, unlink,
  mkdir, rmdir, symlink, rename, xattrs, statfs.
- ``openfile.py``: its base, :class:`~openfiles_engine.fuse.openfile.OpenFileHandlers`:
  open, read, write, flush, release, fsync; the table of open handles; the
  helpers every handler shares (find a node, mark it dirty, truncate, drop it).
- ``errors.py``: the one wrapper (``@handler``) around every handler: only
  ``FUSEError`` leaves it (the errno table), and each call's latency is recorded.
- ``entry.py``: the attributes the kernel sees for a node; the names a new entry may have.
- ``rename.py``: what POSIX allows in a rename, and the journal entries it owes the bucket.
- ``xattr.py``: which extended attribute names and sizes a bucket can keep.

A write, through the folders: ``fuse/openfile.py`` (``write``) -> ``read/``
first fills a file that is only partly cached -> ``cache/`` writes the bytes
into the inode's data file -> ``state/`` marks the inode dirty and commits it
-> at ``release`` the export loop is woken -> ``export/exporter.py`` puts the
file to the bucket after the export delay (at once on fsync) through
``bucket/store.py``, with its sidecar from ``bucket/layout.py`` -> on a
conflict, ``export/lostfound.py`` keeps the local version.

A cold read: ``fuse/operations.py`` (``lookup``) -> ``state/listing.py`` lists
the directory once (``bucket/store.py``, sidecars by ``bucket/layout.py``) and
adds its entries to ``state/tree.py`` -> ``fuse/openfile.py`` (``open``)
revalidates the inode against the bucket -> ``read`` asks ``read/``, which
fetches the missing bytes with range GETs (``bucket/store.py``) and a growing
readahead window, answers from the fetched piece and leaves the bytes in
``cache/``.

Layer: the top subsystem. It imports ``read/``, ``export/``, ``cache/``,
``state/``, ``bucket/`` and config/metrics; only the wiring
(:mod:`openfiles_engine.engine`) imports it.
"""
