"""A run's output files: checked before the run, written after its verdicts, all or none.

``crosscheck run --json PATH --plots DIR --html PATH`` checks every output before it runs
(:func:`check`, :func:`distinct`: a usage error, and nothing written), prints its verdicts,
and only then writes (:class:`Files`): every regular file first beside its destination
under a temporary name, then all renamed into place. A write that fails (a full disk, a
quota) removes what this run wrote and leaves the previous files as they were; the error
names the path. A character device or a FIFO (``/dev/null``, ``/dev/stdout``, a pipe made
with ``mkfifo``) is written to directly, as any Unix program would.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path


class Unusable(ValueError):
    """An output that cannot be written, found before the run: a usage error."""


class WriteFailed(OSError):
    """Writing an output failed after the run: names the path, and what was written before
    (nothing, unless a rename failed after others had succeeded)."""

    def __init__(self, errno: int | None, strerror: str, filename: str,
                 replaced: Sequence[Path] = ()) -> None:
        super().__init__(errno, strerror, filename)
        self.replaced = list(replaced)

    def __str__(self) -> str:
        if self.replaced:
            done = ", ".join(str(p) for p in self.replaced)
            return f"cannot write {self.filename}: {self.strerror} (already written: {done})"
        return (f"cannot write {self.filename}: {self.strerror} (nothing was written; any previous "
                "files are as they were)")


def _special(path: Path) -> bool:
    """A character device or a FIFO: written to directly, never replaced."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def check(option: str, text: str, kind: str, files: Sequence[str] = ()) -> None:
    """Raise :class:`Unusable` unless ``text`` can be written as a ``kind`` ("file" or
    "dir", with ``files`` inside it). Creates nothing: missing folders are made only when
    the output is written. Writability is tried, not inferred from mode bits (root, ACLs,
    read-only mounts): a nameless temporary file in the nearest existing folder."""
    where = f"{option} {text}"
    if not text:
        raise Unusable(f"{option}: empty path")
    path = Path(text)
    try:
        if kind == "file" and _special(path):
            if not os.access(path, os.W_OK):
                raise Unusable(f"{where}: permission denied")
            return
        if path.is_dir() and kind == "file":
            raise Unusable(f"{where}: is a directory")
        if text.endswith(os.sep) and kind == "file":
            raise Unusable(f"{where}: names a directory, not a file")
        if path.exists() and not (path.is_dir() if kind == "dir" else path.is_file()):
            raise Unusable(f"{where}: exists and is not a "
                           + ("directory" if kind == "dir" else "regular file, a device or a FIFO "
                              "(use - for stdout)"))
        for name in files:
            if (path / name).exists() and not (path / name).is_file():
                raise Unusable(f"{where}: {path / name} exists and is not a regular file")
        folder = path if kind == "dir" else path.parent
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir():
            raise Unusable(f"{where}: {folder} is not a directory")
    except OSError as e:    # e.g. a folder on the way that may not be searched
        raise Unusable(f"{where}: {e.strerror}") from None
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise Unusable(f"{where}: cannot write in {folder}: {e.strerror}") from None


def distinct(outputs: Mapping[str, Sequence[str | Path]]) -> None:
    """Raise :class:`Unusable` where two outputs name one file (through symbolic links or
    ``..`` too): the second would silently overwrite the first. ``outputs``: option -> the
    files it writes. Devices such as ``/dev/null`` may be named twice."""
    seen: dict[Path, str] = {}
    for option, paths in outputs.items():
        for p in paths:
            p = Path(p)
            if _special(p):
                continue
            real = p.resolve()
            if real in seen:
                other = seen[real]
                both = f"{other} and {option}" if other != option else option
                raise Unusable(f"{both} both name {p}: give each output its own path")
            seen[real] = option


class Files:
    """Outputs collected, then written all at once by :meth:`write` (see the module)."""

    def __init__(self) -> None:
        self._texts: list[tuple[Path, str]] = []
        self._copies: list[tuple[Path, Path]] = []

    def text(self, path: str | Path, text: str) -> None:
        self._texts.append((Path(path), text))

    def copy(self, source: Path, path: str | Path) -> None:
        self._copies.append((Path(path), Path(source)))

    def write(self) -> None:
        staged: list[tuple[Path, Path]] = []    # (temporary, destination)
        made: list[Path] = []                   # folders this call created
        replaced: list[Path] = []               # destinations already renamed into place
        current = None
        try:
            direct = []
            for path, content in [*self._texts, *self._copies]:
                current = path
                if _special(path):
                    direct.append((path, content))
                    continue
                made += _make_parents(path.parent)
                tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
                staged.append((tmp, path))
                # Created like any other file (mode 0o666 less the umask), not mkstemp's 0o600.
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                with os.fdopen(fd, "wb") as f:
                    if isinstance(content, str):
                        f.write(content.encode("utf-8"))
                    else:
                        with open(content, "rb") as source:
                            shutil.copyfileobj(source, f)
            for path, content in direct:
                current = path
                with open(path, "wb") as f:
                    f.write(content.encode("utf-8") if isinstance(content, str) else content.read_bytes())
            for tmp, path in staged:   # renames take no space: a full disk cannot stop them
                current = path
                os.replace(tmp, path)
                replaced.append(path)
        except BaseException as e:   # (an interrupt too: no temporary file is left behind)
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            for folder in reversed(made):
                try:
                    folder.rmdir()
                except OSError:
                    pass
            if not isinstance(e, OSError):
                raise
            raise WriteFailed(e.errno, e.strerror or str(e), str(current), replaced) from e


def _make_parents(folder: Path) -> list[Path]:
    """Make ``folder`` and its missing parents; the ones made, outermost first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for f in reversed(missing):
        f.mkdir()
    return list(reversed(missing))
