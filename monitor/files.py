"""Files that appear whole or not at all: written beside their destination, then renamed into place.

A cron job publishing a report, or a reader of an exported OPML file, never sees half of one: the data
goes to a temporary file in the same directory, which `os.replace` (atomic on POSIX) moves over the
destination once it is complete. A failure removes the temporary file and leaves the destination as it was.

Only a regular file (or none) is replaced. A symbolic link stays a link: the file it points to is replaced
(a report published through a link into a web root). Anything else a shell would write into — a device
such as ``/dev/null`` or ``/dev/stdout``, a named pipe, a socket — is written into directly, as ``>``
would: replacing it would destroy it (``-o /dev/null`` run as root would leave a regular file there).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: Path, chunks: Iterable[bytes]) -> None:
    """Write `chunks` to `path` whole or not at all (:func:`atomic_file`)."""
    with atomic_file(path) as out:
        for chunk in chunks:
            out.write(chunk)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write `path` through: a temporary file renamed into place when the block ends
    without an exception, keeping the mode of the file it replaces (OSError as is). See the module docstring
    for links and special files."""
    target = path.resolve() if path.is_symlink() else path
    try:
        mode: int | None = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        with open(target, "wb") as out:    # a device, a pipe... (a directory: IsADirectoryError)
            yield out
        return
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as out:        # the umask decides a new file's mode
            yield out
        if mode is not None:
            os.chmod(tmp, stat.S_IMODE(mode))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
