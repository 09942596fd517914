"""Atomic file writes and safe file reads.

Writes: a reader sees the old file or the complete new one, never half of one.

Every slipsnn writer goes through ``atomic_write``: the content is written to a temporary file in the
destination's folder (same file system, so the final ``os.replace`` is atomic), flushed to disk with
``fsync``, then renamed over the destination. On any failure, ``KeyboardInterrupt`` included, the
temporary file is removed and the destination is left as it was. A destination that exists and is not a
regular file (a device node such as ``/dev/null``, a FIFO, a folder) is never replaced, and a failed write
names the file (``OSError.filename``), so "No space left on device" says where.

Reads: ``check_input`` refuses anything but a regular file within a size limit (a FIFO would block forever,
``/dev/zero`` never ends), and ``check_output`` refuses an output path that is one of the command's inputs.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

from .errors import SlipsnnError


class FileCheckError(SlipsnnError):
    """An input is not a readable regular file, or an output path would replace an input or a device node."""


class NotAFolderError(FileCheckError):
    """An output path lies under something that is not a folder (it cannot be created: a failed run, exit 1)."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "something else"


def check_input(path: str | os.PathLike, max_bytes: int, what: str = "file") -> int:
    """Refuse ``path`` unless it is a regular file of at most ``max_bytes`` bytes; returns its size in bytes.

    Uses ``stat`` only (never opens the file), so a FIFO or a device cannot block or stream without end.

    Raises:
        FileCheckError: missing, not a regular file, or too large (one sentence naming the file).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileCheckError(f"{path}: no such {what}") from None
    except OSError as e:
        raise FileCheckError(f"{path}: cannot read the {what} ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise FileCheckError(f"{path}: is not a file but {_kind(st.st_mode)}; a {what} must be a regular file")
    if st.st_size > max_bytes:
        raise FileCheckError(f"{path}: {st.st_size} bytes, larger than the {max_bytes} bytes a {what} may have")
    return int(st.st_size)


def is_regular_file(path: str | os.PathLike) -> bool:
    """True for an existing regular file (``stat`` only: a FIFO or a device is never opened)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def read_bytes(path: str | os.PathLike, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (``check_input``), read without following a swap.

    The file is opened with ``O_NONBLOCK`` and checked again through the open handle, so a path replaced by a
    FIFO between the check and the open cannot block.
    """
    check_input(path, max_bytes, what)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise FileCheckError(f"{path}: is not a file but {_kind(st.st_mode)}")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileCheckError(f"{path}: larger than the {max_bytes} bytes a {what} may have")
    return data


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), folder: bool = False) -> Path:
    """Refuse an output path that is one of ``inputs`` (same file, any spelling), a device node or a FIFO,
    or whose parent is not a folder; ``folder=True`` for an output folder (``--plots``).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        FileCheckError: one sentence naming the path and what is allowed.
    """
    path = Path(path)
    for source in inputs:
        if _same_file(path, source):
            raise FileCheckError(f"{path}: is an input of this command ({source}); choose another output path")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        st = None
    if st is not None:
        if folder and not stat.S_ISDIR(st.st_mode):
            raise FileCheckError(f"{path}: exists and is not a folder; the output must be a folder")
        if not folder and not stat.S_ISREG(st.st_mode):
            raise FileCheckError(f"{path}: is not a file but {_kind(st.st_mode)}; slipsnn only replaces "
                                 "regular files")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotAFolderError(f"{path}: cannot write it, {parent} is not a folder")
            break
    return path


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
    path = check_output(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        writer(tmp)
        with open(tmp, "rb+") as file:  # "rb+": fsync needs a writable handle on some platforms
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT) or not e.filename or e.filename == str(tmp):
            raise OSError(e.errno, e.strerror or str(e), str(path)) from None   # name the file, not the temp
        raise
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
    ``TypeError`` and leaves ``path`` unchanged. The JSON is strict: NaN and ±inf (which ``json`` would
    write as the non-standard ``NaN``/``Infinity``) raise ``SlipsnnError`` naming the first such field.
    """
    bad = _non_finite(obj, "$")
    if bad is not None:
        raise SlipsnnError(f"{path}: not written: {bad[0]} is {bad[1]}; JSON holds only finite numbers")
    text = json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False, allow_nan=False) + "\n"
    return atomic_write_text(path, text)


def _non_finite(obj: Any, where: str) -> tuple[str, float] | None:
    """(JSON path, value) of the first NaN/±inf float in ``obj``, or None."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else (where, obj)
    if isinstance(obj, dict):
        items: Iterable = ((f"{where}.{k}", v) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(obj))
    else:
        return None
    for sub, value in items:
        found = _non_finite(value, sub)
        if found is not None:
            return found
    return None
