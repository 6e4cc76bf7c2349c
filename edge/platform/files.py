"""Input and output files. Inputs: regular files of bounded size, read without blocking.

Outputs: checked before a run, then written whole or not at all, where the user meant.

A run can take minutes; an output path it cannot write is refused before it starts
(``check_file``, ``check_directory``), by creating and removing a file where the output
will go: that answers for permissions, read-only mounts and root alike, which ``os.access`` does not.

``write`` then picks how to write by what the path is once symlinks are followed:

* a regular file, or nothing yet: a temporary file in the target's folder and a rename, so an
  interrupted run never leaves half a report; through a symlink the target is replaced and the
  link kept;
* the process's own descriptors (``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``): written to
  that descriptor, at its position, so ``--json /dev/stdout > out`` appends to what the shell
  redirected instead of replacing ``out``;
* anything else (a character device such as ``/dev/null``, a FIFO): opened and written in place,
  never replaced by a regular file.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import sys
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from edge.platform.user_errors import EdgeError

T = TypeVar("T")
_OWN_DESCRIPTOR = re.compile(r"^/(?:dev/fd|proc/self/fd)/(\d+)$")
_STANDARD = {"/dev/stdout": 1, "/dev/stderr": 2}
_MAX_LINKS = 40  # as the kernel's ELOOP limit


class InputError(EdgeError):
    """An input that is not a regular file, or cannot be read; ``str()`` says why."""


def read_input(path: str | Path, limit: int) -> bytes:
    """The file's bytes, if it is a regular file (symlinks followed); at most ``limit + 1`` bytes
    are read, so a caller sees that a file is too large without reading all of it."""
    with _regular(path) as fd, open(fd, "rb", closefd=False) as file:
        return _reading(lambda: file.read(limit + 1))


def read_tail(path: str | Path, size: int) -> bytes:
    """The last ``size`` bytes of a regular file (symlinks followed), however large it is."""
    with _regular(path) as fd:
        return _reading(lambda: os.pread(fd, size, max(0, os.fstat(fd).st_size - size)))


@contextlib.contextmanager
def _regular(path: str | Path) -> Iterator[int]:
    """An open descriptor of ``path``, if it is a regular file; else InputError.

    Opened without blocking and checked on the open descriptor: a FIFO would block the open (and
    then the read), ``/dev/zero`` never ends; only what was opened is checked, so nothing can swap
    the path in between."""
    fd = _reading(lambda: os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    try:
        mode = _reading(lambda: os.fstat(fd).st_mode)
        if not stat.S_ISREG(mode):
            raise InputError(f"expected a regular file, got {_file_kind(mode)}")
        yield fd
    finally:
        os.close(fd)


def _reading(step: Callable[[], T]) -> T:
    try:
        return step()
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}") from None


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "something else"


class OutputError(EdgeError):
    """An output that cannot be written; ``str()`` names the path and why."""

    prefix = "cannot write output: "


def check_file(path: str | Path) -> None:
    """Refuse now what ``write_output(path, ...)`` would fail on later."""
    path = Path(path)
    if _descriptor(path) is not None:
        return
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise OutputError(f"{path}: {exc.strerror}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise OutputError(f"{path}: is a folder, expected a file path")
    if mode is not None and not stat.S_ISREG(mode):
        if not os.access(path, os.W_OK):
            raise OutputError(f"{path}: not writable")
        return
    _probe(path.resolve().parent, path)


def check_directory(path: str | Path) -> None:
    """An output folder: it exists and takes files, or its parent does and it will be created."""
    path = Path(path)
    if path.is_dir():
        _probe(path.resolve(), path)
    elif path.exists():
        raise OutputError(f"{path}: not a folder")
    else:
        _probe(path.resolve().parent, path)


def _probe(folder: Path, asked: Path) -> None:
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise OutputError(f"{asked}: folder {folder} {what}")
    try:
        _replace(folder / f".edge-check.{secrets.token_hex(8)}", b"", keep=False)
    except OSError as exc:
        raise OutputError(f"{asked}: cannot write into folder {folder}: {exc.strerror}") from None


def write_output(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` as the module docstring says; a failure is an OutputError."""
    try:
        _write(Path(path), data)
    except OSError as exc:
        raise OutputError(f"{path}: {exc.strerror or exc}") from None


def _write(path: Path, data: bytes) -> None:
    fd = _descriptor(path)
    if fd is not None:
        if fd == 1:
            sys.stdout.flush()  # what print() buffered comes first
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        return
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        with open(path, "wb") as out:
            out.write(data)
        return
    _replace(path.resolve(), data)


def _descriptor(path: Path) -> int | None:
    """The descriptor of this process that ``path`` names, following symlinks one hop at a time."""
    current = os.path.abspath(path)
    for _ in range(_MAX_LINKS):
        if current in _STANDARD:
            return _STANDARD[current]
        match = _OWN_DESCRIPTOR.match(current)
        if match:
            return int(match.group(1))
        if not os.path.islink(current):
            return None
        current = os.path.normpath(os.path.join(os.path.dirname(current), os.readlink(current)))
    return None


def _replace(path: Path, data: bytes, *, keep: bool = True) -> None:
    """A temporary file in the same folder and a rename: readers see the old file or the new one.

    The temporary name is chosen before the file exists and its creation is inside the ``try``,
    so an interrupt (KeyboardInterrupt) landing anywhere, even just after the file is created or
    just after the rename, removes it or finds it already renamed."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        with open(tmp, "xb") as out:  # exclusive; 0666 less the umask, as any output file
            out.write(data)
        if keep:
            os.replace(tmp, path)
        else:
            os.unlink(tmp)
    except FileExistsError:
        raise  # not ours to remove (64 random bits: does not happen)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
