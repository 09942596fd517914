"""Error types of slipsnn: every user-facing failure is a ``SlipsnnError``.

The CLI turns these into one or two lines without a traceback (``--debug`` shows it).
"""

import contextlib
import os
import sys
from typing import NoReturn


def exit_with_error(message: str, status: int) -> NoReturn:
    """One ``Error:`` line on stderr (stdout flushed first), then end the process at once with ``status``, without
    the interpreter's teardown (seconds with torch and Lava loaded). For signals, once what must stop has stopped."""
    try:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
            sys.stderr.write(f"Error: {message}\n")
            sys.stderr.flush()
    finally:
        os._exit(status)


class SlipsnnError(ValueError):
    """Base class of every error slipsnn raises for bad input or an unavailable resource."""


class DataError(SlipsnnError):
    """A data set is missing, malformed or unknown."""


class ModelError(SlipsnnError):
    """A model or checkpoint cannot be built, loaded or converted (names the module and what is allowed)."""


class QuantizationError(SlipsnnError):
    """An integer network cannot meet Loihi's formats (names the layer, the value and the limit)."""


class FormatError(SlipsnnError):
    """A netx/slipsnn HDF5 file is corrupt, truncated or out of range (names the file and the key)."""


class BackendUnavailable(SlipsnnError):
    """A run backend cannot be used on this machine (says what is missing)."""


class ProfileError(SlipsnnError):
    """A hardware profile file is invalid (names the file, the key and what is allowed)."""


class LavaError(SlipsnnError):
    """Lava cannot represent a network exactly, or one of its processes failed (names the layer or process,
    the value or the cause, and the limit)."""
