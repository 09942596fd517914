"""Atomic file writes: a reader sees the old file or the complete new one, never half of one.

Every slipsnn writer goes through ``atomic_write``: the content is written to a temporary file in the
destination's folder (same file system, so the final ``os.replace`` is atomic), flushed to disk with
``fsync``, then renamed over the destination. On any failure, ``KeyboardInterrupt`` included, the
temporary file is removed and the destination is left as it was.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Write ``path`` atomically through ``writer``.

    Args:
        path: destination file; missing parent folders are created.
        writer: called once with a temporary path in the same folder (same suffix as ``path``, so
            suffix-sensitive writers such as ``np.save`` keep the name); it must create that file.

    Returns:
        ``path`` as a ``Path``.

    Example:
        >>> import tempfile
        >>> out = atomic_write(Path(tempfile.mkdtemp()) / "a.txt", lambda p: p.write_text("hi"))
        >>> out.read_text()
        'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        writer(tmp)
        with open(tmp, "rb+") as file:  # "rb+": fsync needs a writable handle on some platforms
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


def _fsync_folder(folder: Path) -> None:
    """Persist the rename itself (POSIX); folders cannot be opened for fsync everywhere, so best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; see ``atomic_write``."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as JSON (indent 2, keys in insertion order, trailing newline) to ``path`` atomically.

    The text is produced before the file is touched, so an object that cannot be serialized raises
    ``TypeError`` and leaves ``path`` unchanged.
    """
    text = json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
    return atomic_write_text(path, text)
