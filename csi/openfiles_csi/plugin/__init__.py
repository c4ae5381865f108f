"""``openfiles csi``: the gRPC plugin: the CSI identity, controller and node services.

Each handler reads as validate -> lock -> act; domain errors become gRPC codes
in one place (``errors.py``).

- ``identity.py``, ``controller.py``, ``node.py``: one CSI service each.
- ``errors.py``: the plugin's exception tree and the decorator that turns it
  into ``context.abort(code, message)``; anything unexpected is INTERNAL.
- ``validation.py``: request checks shared by the controller and the node.
- ``volumelock.py``: one lock per volume id (a second call gets ABORTED).
- ``volumehealth.py``: NodeGetVolumeStats, never blocking on a hung mount.
- ``bucket.py``: the controller's access to the bucket (the only obstore caller).
- ``mounterclient.py``: the node's side of the mounter socket; the mounter's
  reply codes become CSI errors.
- ``policy.py``: the node's end of the cache policy channel (ConfigMap ->
  each engine's control socket).
- ``metrics.py``: the node's Prometheus collector, read from each engine's status.
- ``report.py``: an engine's status as an OpenFilesNodeReport spec, and the Event bodies.
- ``reporter.py``: the loop that sends reports and Events when something changed.
- ``kube.py``: the Kubernetes API as the node uses it (the only ``kubernetes`` caller).
- ``cli.py``: the command line; serves the chosen services on a unix socket.

Layer: may import ``openfiles_csi``'s shared modules (one level up), the
generated stubs (``_proto``) and ``openfiles_contracts``; it reaches the
mounter only through its socket, never by import. Never trio or pyfuse3.
"""
