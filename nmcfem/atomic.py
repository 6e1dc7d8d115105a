"""Atomic files: every result is written to a temporary name in its folder and renamed into
place, so a reader (or a resumed run or sweep) never sees a half-written file.

Pure standard library and NumPy, so the analysis package (which runs without DOLFINx or MPI)
writes its results the same way.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: the process's file-creation mask, read once (os.umask can only be read by setting it)
_UMASK = _current_umask()


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Create ``path`` through ``write(tmp_path)`` (any writer that takes a file name: meshio,
    matplotlib, ...) and rename the result into place.

    Parameters
    ----------
    path: destination file; its folder is created when missing.
    write: called with a temporary file name in the same folder (same suffix as ``path``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results are for sharing
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, flushed to disk before the rename."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    atomic_write(path, write)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode())


def json_default(obj: Any) -> Any:
    """JSON form of NumPy scalars and arrays and of paths (``json.dumps(default=...)``)."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (NumPy scalars/arrays allowed)."""
    atomic_write_text(path, json.dumps(obj, indent=2, default=json_default) + "\n")


def atomic_save_npz(path: str | Path, **arrays: Any) -> None:
    """Save arrays as a compressed ``.npz`` file atomically."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
