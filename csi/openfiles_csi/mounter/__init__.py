"""``openfiles mounter``: a program of its own that owns the engine processes of a node.

It runs in its own container, starts one engine per staged volume, and
outlives the plugin: a crash or an upgrade of the node server never breaks a
mount. The plugin talks to it over a unix socket (one JSON object per line).

- ``mounts.py``: :class:`~openfiles_csi.mounter.mounts.Mounter`, the books: which
  engine serves which mount point, per-mount locks, mount / unmount / list,
  watching for exits and reviving a dead engine's cache.
- ``engineprocess.py``: one engine process: spawn it, wait until it is mounted
  and answering, terminate it.
- ``process.py``: start processes in their own session and recognise them
  later by pid and start time.
- ``record.py``: the durable record of each mount point (written atomically:
  temporary file, fsync, rename).
- ``supervisor.py``: ``--supervise``, a small PID 1 that restarts the mounter
  and keeps the engines alive when it crashes.
- ``cli.py``: the command line and the socket server.

Layer: never imports grpc or the plugin (``openfiles_csi.plugin``). It may
import ``openfiles_csi``'s shared modules (command, jsonline, logsetup) and
``openfiles_contracts``. Never trio or pyfuse3.
"""
