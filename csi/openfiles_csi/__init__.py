"""openfiles_csi: two programs, the CSI plugin and the mounter, and what they share.

- ``plugin/``: ``openfiles csi``, the gRPC identity, controller and node services.
- ``mounter/``: ``openfiles mounter``, the per-node owner of the engine processes;
  a program of its own that never imports grpc or the plugin.
- shared modules at this level: ``command.py`` (run mount and umount),
  ``jsonline.py`` (the JSON-line protocol of ``openfiles_contracts`` on the
  event loop), ``logsetup.py`` (logging that masks secrets); used by the plugin
  only: ``volumecontext.py`` (a volume context and its
  secrets -> an engine command) and ``volumeid.py`` (the controller's volume ids).
- ``_proto/``: the generated CSI stubs, never edited by hand.

Mountinfo and ``/proc`` parsing, the readiness wait and the reserved names come
from ``openfiles_contracts``. Never imports trio, pyfuse3 or the other packages
(engine, operator, bench).
"""

__version__ = "0.1.0"
