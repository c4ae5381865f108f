"""The read path: bytes of clean files from the bucket into the cache and the reader.

It owns the readahead window of each open handle, the range GETs in flight
(so that concurrent readers share one), the fetched pieces held in memory to
answer a sequential reader without reading the data file back, the
whole-file fetch of randomly read files, and the fill of a file before its
first local write. The data files and byte-range arithmetic it writes through
are ``cache/``'s; the inode table that records what was fetched is ``state/``'s.

Its one public interface is :class:`Downloader` (one per mount: ``read``,
``fill``, ``closed``, ``forget``; ``stats``, ``held_bytes`` and ``filling``
for status and eviction; ``nursery``, ``window_cap`` and ``after_fetch`` set
by the engine) and :class:`Readahead` (one per open handle); the rest of the
engine imports those from here, never a module inside.

A cold read, through the modules (each imports only those listed below it)::

    download.py    Downloader.read: a miss; Readahead.advance sizes the window
      wholefetch.py  random reader, file fits in a quarter of the cache: fetch it
                     whole in PIECE GETs, and wait for the piece with the bytes
    download.py    else claim PIECE-aligned GETs for the gaps of the window
      fetcher.py     (Downloader's base) claim / fetch: one range GET, written
                     into the data file by its own worker thread once it arrived,
                     and held (piece.py) for a sequential reader;
                     Node.ranges grows; waiters wake; Fetcher.assemble answers
      piece.py       HeldPieces: fetched buffers in memory, bounded by HELD_MAX
      readahead.py   Readahead: the per-handle window and seek count
"""

from openfiles_engine.read.download import Downloader
from openfiles_engine.read.readahead import Readahead

__all__ = ["Downloader", "Readahead"]
