"""The node-local data cache of one volume: what is on disk, and when it goes.

It owns:

- :mod:`.datafile`: one sparse data file per inode under ``<cache>/data``,
  written with pwrite, with a bounded set of open fds; the generation that
  stops fetched bytes still on their way once a file changes; the writer a
  GET's worker thread puts its buffers into the file with;
- :mod:`.byterange`: the byte-range arithmetic of ``Node.ranges`` (sorted,
  disjoint ``[start, end)`` lists: merge, gaps, the range holding a byte);
- :mod:`.eviction`: which clean files lose their cached data (TTL, then LRU
  under the size bound);
- :mod:`.malloc`: glibc's malloc tuning, so freed GET buffers are reused.

The cache never fetches (``read/`` does) and never exports (``export/`` does);
the inode table that records which ranges a data file holds is ``state/``'s.
"""
