"""Writing output files so that nothing of the user's is ever half-written or lost."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from deadcheck.core.errors import InputError

__all__ = [
    "MARKER",
    "check_folder_writable",
    "check_regular_file",
    "check_writable",
    "write_bytes_atomic",
    "write_folder_atomic",
    "write_text_atomic",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: The file deadcheck puts in every folder it writes: only such a folder is ever replaced.
MARKER = ".deadcheck-output"

#: Temporaries of an interrupted write older than this are removed by the next write.
_STALE_S = 60.0


def check_regular_file(path: str | Path, what: str = "file") -> Path:
    """``path`` if it is missing or a regular file; a FIFO, device or folder is refused.

    Reading a FIFO blocks forever and a device is not a file deadcheck wrote.
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        raise InputError(f"{path} is not a regular file; the {what} must be one")
    return path


def _writable_folder(folder: Path, path: Path) -> None:
    if not folder.exists():
        raise InputError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {path}: folder {folder} is not writable")


def check_writable(path: str | Path, *, force: bool = False) -> Path:
    """``path`` as a Path, refusing an existing file unless ``force``.

    Only a regular file is ever replaced: ``--force`` onto a FIFO or a device
    (``/dev/null``) is refused. Checked before any work starts.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder, not a file")
    if path.exists() and not path.is_file():
        raise InputError(f"{path} is not a regular file; deadcheck replaces only regular files")
    if path.exists() and not force:
        raise InputError(f"{path} exists; pass --force to overwrite it")
    _writable_folder(path.parent, path)
    return path


def _clean_stale(path: Path) -> None:
    """Remove temporaries that an interrupted earlier write of ``path`` left behind."""
    now = time.time()
    for stale in path.parent.glob(f".{path.name}.*"):
        if ".old." in stale.name:
            continue  # a previous output: restored by write_folder_atomic, never deleted here
        try:
            if now - stale.lstat().st_mtime < _STALE_S:
                continue  # perhaps another write under way
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
        except OSError:
            pass


def write_bytes_atomic(path: str | Path, data: bytes, *, force: bool = False) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    path = check_writable(path, force=force)
    _clean_stale(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        # mkstemp makes 0600 files; give the result the mode a plain open() would.
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:  # a full or read-only disk: one line, and nothing half-written
        Path(tmp).unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {error.strerror or error}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str, *, force: bool = False) -> Path:
    """:func:`write_bytes_atomic` for UTF-8 text."""
    return write_bytes_atomic(path, text.encode("utf-8"), force=force)


def _restore_previous(path: Path) -> Path | None:
    """A previous output that an interrupted replace left only under a hidden name, put back."""
    if path.exists():
        return None
    previous = sorted(path.parent.glob(f".{path.name}.old.*"))
    for candidate in previous:
        if candidate.is_dir() and (candidate / MARKER).exists():
            os.replace(candidate, path)
            return candidate
    return None


def check_folder_writable(path: str | Path, *, force: bool = False) -> Path:
    """``path`` as a Path, refusing an existing folder unless ``force``.

    Even with ``force``, only a folder deadcheck wrote (it holds :data:`MARKER`)
    is replaced: the user's own folder and files are never deleted.
    """
    path = Path(path)
    restored = _restore_previous(path) if path.parent.exists() else None
    if restored is not None:
        warnings.warn(
            f"restored {path} from {restored.name}, left by an interrupted write",
            stacklevel=2,
        )
    if path.exists() and not path.is_dir():
        raise InputError(f"{path} exists and is not a folder")
    if path.exists() and not force:
        raise InputError(f"{path} exists; pass --force to replace it")
    if path.exists() and not (path / MARKER).exists() and any(path.iterdir()):
        raise InputError(
            f"{path} was not written by deadcheck (it has no {MARKER}); "
            "--force replaces only deadcheck's own output folders: choose another folder"
        )
    _writable_folder(path.parent, path)
    return path


def write_folder_atomic(path: str | Path, files: dict[str, bytes], *, force: bool = False) -> Path:
    """Write ``files`` into a new folder beside ``path`` and rename it into place.

    With ``force`` an existing folder (one deadcheck wrote) is replaced only
    once the new one is complete, so an interruption leaves either the old
    folder or the new one; a previous folder left under a hidden name by an
    interruption between the two renames is restored by the next write.
    """
    path = check_folder_writable(path, force=force)
    _clean_stale(path)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror or error}") from None
    old: Path | None = None
    try:
        for name, data in {
            MARKER: b"written by deadcheck; safe to replace with --force\n",
            **files,
        }.items():
            (staging / name).write_bytes(data)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            old.rmdir()
            os.replace(path, old)
        os.replace(staging, path)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None and old.exists() and not path.exists():
            os.replace(old, path)
        if isinstance(error, OSError):
            raise InputError(f"cannot write {path}: {error.strerror or error}") from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path
