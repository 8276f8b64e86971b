"""The one exception type of the data layer.

Every problem with files on disk (a broken image, a malformed ``dataset.json``, an unsafe tar
member, a native dataset that is not laid out as documented) raises :class:`DataError` with a
message that names the offending file, so the user can find and fix it.
"""

from __future__ import annotations


class DataError(ValueError):
    """Data on disk is missing, malformed or inconsistent; the message names the file."""
