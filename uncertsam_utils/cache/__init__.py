"""Caches that know their inputs and prove their bytes.

* ``fingerprints.py``: what a key holds besides the parameters: the package's computing code
  (``source_fingerprint``), the libraries' versions and the data's content (``data_fingerprint``,
  each file hashed once and remembered by size and modification time);
* ``entries.py``: the record of each cache entry (its files' SHA-256 and its key), checked before
  every reuse (``reuse_entry``), and the listing behind ``uncertsam cache list | verify | clear``.

The keys themselves are made by ``artifacts.cache_digest`` (every cached result) from these parts.
"""

from __future__ import annotations

from .entries import KINDS, Entry, list_entries, read_record, record_entry, remove_entry, reuse_entry, verify_entry
from .fingerprints import (LIBRARIES, NOT_COMPUTING, data_fingerprint, file_sums, folder_fingerprint, library_versions,
                           source_files, source_fingerprint)

__all__ = [
    "Entry", "KINDS", "LIBRARIES", "NOT_COMPUTING", "data_fingerprint", "file_sums", "folder_fingerprint",
    "library_versions", "list_entries", "read_record", "record_entry", "remove_entry", "reuse_entry", "source_files",
    "source_fingerprint", "verify_entry",
]
