"""The OpenFiles benchmark: a separate unit that uses the product, never part of it.

It drives the engine from outside, as a user would: ``openfiles mount`` in a
subprocess, its control socket, and the bucket through obstore and the MinIO
client. It imports none of ``openfiles_engine``, ``openfiles_csi`` or
``openfiles_operator`` (tests/harness/test_layers.py), and ships as its own
distribution, ``openfiles-bench`` (source root ``bench/``), which the runtime
wheel and the container image do not carry.

Install: ``uv sync`` in a clone of the repository (the dev group holds it), or
``pip install ./bench`` next to an installed ``openfiles``.

Run:
- ``openfiles bench [--quick] ...``: the engine side by side with its peers on
  one S3 server (:mod:`openfiles_bench.cli`; docs/BENCHMARKS.md);
- ``python -m openfiles_bench.coldread``: a cold sequential read, raw GET
  against the engine, with the CPU each used (docs/ENGINE.md);
- ``python -m openfiles_bench.getshape``: what MinIO serves here, GET shape by
  GET shape.

Modules: ``cli`` (options, report output) and ``run`` (the targets in turns)
make the command; ``server`` (the S3 site), ``bucket`` (every obstore call),
``target`` (the FUSE file systems, mounted and taken down), ``memfs`` (the FUSE
ceiling), ``workload`` (what is measured), ``tree`` and ``raw`` (the workloads
through a mount and as plain object-store calls), ``meter`` (peak RSS and CPU
of a process tree), ``result`` (rounds, medians, JSON), ``goal`` (the issue's
goal: the best peer, like with like), ``report`` (the text), ``chart`` (the
PNG) and ``reclaim`` (the kernel's reclaim during a round) serve it;
``testbed`` is the private MinIO and CPU accounting of ``coldread`` and
``getshape``.
"""
