"""File output at the edges: atomic writes (temp file + rename in the same folder), and result
folders written whole (a staging folder renamed into place)."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from agentwatt.core.errors import InputError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temp file onto ``path``.

    A crash or Ctrl-C leaves either the previous complete file or the new one, never half. The file
    gets the mode a plain ``open`` would (0666 less the umask; the temp file is 0600) and is fsynced
    before the rename, so a power loss cannot leave a renamed but empty file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    def _w(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return atomic_write(path, _w)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def check_out_folder(out: str | os.PathLike, replaceable: Iterable[str] | None = None) -> Path:
    """Check before any work that results can be written to folder ``out``; returns it resolved.

    Refused: the file-system root, an existing file, a folder holding the working directory, a parent
    that cannot be written, and (with ``replaceable``, the file names a run writes) an existing folder
    holding anything else, which ``result_folder`` would otherwise replace.
    """
    given = os.fspath(out)
    p = Path(out).resolve()
    if p == Path(p.anchor):
        raise InputError(f"--out {given}: the file-system root: expected a folder for the results")
    if p.exists() and not p.is_dir():
        raise InputError(f"--out {given}: an existing file: expected a folder")
    if p == Path.cwd().resolve() or p in Path.cwd().resolve().parents:
        raise InputError(f"--out {given}: holds the working directory: expected a folder of its own")
    if replaceable is not None and p.is_dir():
        allowed = set(replaceable)
        other = sorted(e.name for e in p.iterdir() if e.name not in allowed and not e.name.startswith(f".{p.name}."))
        if other:
            shown = ", ".join(other[:3]) + (", ..." if len(other) > 3 else "")
            raise InputError(f"--out {given}: holds files that are not results of a run ({shown}): expected an "
                             f"empty folder or a previous run's results folder (it is replaced whole)")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".probe", dir=p.parent))
    except OSError as e:
        raise InputError(f"--out {given}: cannot write in {p.parent} ({e.strerror}): expected a writable "
                         f"folder") from None
    return p


@contextlib.contextmanager
def result_folder(out: str | os.PathLike, replaceable: Iterable[str]) -> Iterator[Path]:
    """Write a result folder whole: yields a fresh staging folder beside ``out``; on success it is
    renamed to ``out`` (a previous results folder there is moved aside first, then deleted), on
    failure it is deleted. A crash at any point leaves ``out`` either the previous run's complete
    folder or the new one, never files of both (at worst ``out`` is briefly absent, with the
    previous folder kept beside it as ``.<name>.old-*``)."""
    p = check_out_folder(out, replaceable)
    stage = Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".partial", dir=p.parent))
    try:
        os.chmod(stage, 0o777 & ~_umask())
        yield stage
        for f in stage.iterdir():
            _fsync(f)
        if p.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{p.name}.old-", dir=p.parent))
            os.replace(p, old)   # onto the empty folder just made: rename(2) allows that
            os.replace(stage, p)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, p)
        _fsync(p.parent)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
