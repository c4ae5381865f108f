"""The bucket: how a volume is laid out in it, and the engine's only door to it.

- ``layout.py``: paths to keys, and the metadata sidecar scheme (version 1)
  that keeps POSIX attributes, symlinks and empty directories; the names
  reserved at the volume root come from :mod:`openfiles_contracts.name`.
- ``store.py``: :class:`~openfiles_engine.bucket.store.Store` (synchronous), the
  only module that calls obstore; every store failure leaves as ``StoreError``
  or one of its subclasses, without credentials in the message;
- ``fence.py``: conditional deletes on S3 (a fence PUT If-Match the version
  seen, then the DELETE), and the fences the store's listings and HEADs hide;
- ``asyncstore.py``: :class:`~openfiles_engine.bucket.asyncstore.AsyncStore`, the
  same calls in trio worker threads under one CapacityLimiter.

Layer: the lowest subsystem. It imports only the settings and metrics
(config, metrics) and ``openfiles_contracts``; every other subsystem may import it.
"""
