"""Files that appear whole or not at all: written beside their destination, then renamed into place.

A cron job publishing a report, or a reader of an exported OPML file, never sees half of one: the data
goes to a temporary file in the same directory, which `os.replace` (atomic on POSIX) moves over the
destination once it is complete. A failure removes the temporary file and leaves the destination as it was.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def write_atomically(path: Path, chunks: Iterable[bytes]) -> None:
    """Write `chunks` to `path` through a temporary file renamed into place when complete (OSError as is)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    out = open(tmp, "wb")    # noqa: SIM115 (closed below, before the rename); the umask decides its mode
    try:
        with out:
            for chunk in chunks:
                out.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
