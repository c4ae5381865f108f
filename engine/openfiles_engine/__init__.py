"""openfiles_engine: the FUSE engine, one process per mounted volume (trio + pyfuse3 + obstore).

Subsystems, one folder each, importing downwards only (docs/ARCHITECTURE.md)::

    fuse/     the kernel's requests: handlers, their one error wrapper, names, xattrs, renames
    read/     clean bytes from the bucket into the cache and the reader (readahead, range GETs)
    export/   dirty files to the bucket (conditional PUTs, the journal's replay), lost+found
    cache/    the data files on the node's disk, byte ranges, write pacing, eviction
    state/    inodes in memory and in SQLite, the rename/delete journal, lazy listing
    bucket/   the only obstore caller; how paths become keys and sidecars

At the top: ``engine.py`` wires one mounted volume; ``cli.py`` and ``demo.py``
are the commands; ``control.py`` the control socket; ``config.py`` the typed
settings; ``metrics.py`` and ``mountpoint.py`` helpers every layer may use.
"""
