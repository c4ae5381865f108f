"""What the mount knows and still owes: inodes, their SQLite store, the journal, the import.

Per inode: attributes, the ETag last seen in the bucket, dirty flags, which
byte ranges of the object the data file holds. Durability: every mutation is
committed to SQLite before it returns (``db.py`` states the contract), so a
crash loses no export and no pending rename.

- ``inode.py``: :class:`~openfiles_engine.state.inode.Node`, one inode (which
  fields persist, which live in memory only), and ``ROOT``.
- ``db.py``: :class:`~openfiles_engine.state.db.StateDB`, the SQLite database
  (WAL) in the cache dir: nodes, journal entries, counters, settings.
- ``tree.py``: :class:`~openfiles_engine.state.tree.Tree`, the nodes in memory by
  inode and by (parent, name), written through to ``db.py``; paths, the
  lost+found directory.
- ``journal.py``: :class:`~openfiles_engine.state.journal.Journal`, the renames and
  deletes the bucket has not seen yet, and ``replay_one``, which applies one
  entry to the bucket (idempotent; the export loop calls it).
- ``listing.py``: :class:`~openfiles_engine.state.listing.Lister`, the lazy
  import: a directory is listed once and merged into the tree (the bucket wins,
  local work is kept); an inode is revalidated on open after ``metadata_ttl``.

Layer: imports ``bucket/`` (keys, sidecars, the store) and the settings below
it; never ``cache/``, ``read/``, ``export/`` or ``fuse/``, which build on it.
"""
