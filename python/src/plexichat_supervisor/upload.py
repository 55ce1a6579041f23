"""Turns a plugin package (a directory, or a `.pxp` archive) into the UploadPlugin stream.

A directory goes entry by entry, parents before children, names sorted, only
directories and regular files, as the CLI sends it; an archive goes as its bytes,
which the daemon unpacks and checks.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ._proto import admin_pb2 as pb
from .errors import PackageError

# The CLI's data message size; the daemon accepts any up to its message limit.
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class _Entry:
    wire: str
    path: Path
    kind: pb.EntryKind
    mode: int
    size: int


def _walk(root: Path, rel: Path) -> Iterator[_Entry]:
    for name in sorted(os.listdir(root / rel)):
        child = rel / name
        st = os.lstat(root / child)
        wire = child.as_posix()
        if stat.S_ISDIR(st.st_mode):
            yield _Entry(wire, root / child, pb.ENTRY_KIND_DIRECTORY, st.st_mode & 0o7777, 0)
            yield from _walk(root, child)
        elif stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            yield _Entry(wire, root / child, pb.ENTRY_KIND_FILE, st.st_mode & 0o7777, st.st_size)
        elif stat.S_ISREG(st.st_mode):
            raise PackageError(
                f"package {root}: `{wire}` has {st.st_nlink} hard links; copy the file instead"
            )
        else:
            raise PackageError(
                f"package {root}: `{wire}` is not a regular file or directory; "
                "a package may hold only those"
            )


def plan(root: Path) -> list[_Entry]:
    """Every entry of the package, checked before anything is sent."""
    if not root.is_dir():
        raise PackageError(f"package {root}: is not a directory")
    if not (root / "plugin.toml").is_file():
        raise PackageError(f"package {root}: has no plugin.toml")
    return list(_walk(root, Path()))


def chunks(root: Path, header: pb.UploadHeader) -> Iterator[pb.PackageChunk]:
    """The upload stream: header, each entry with its bytes, then the totals.

    The package is checked here, before any message is sent: a PackageError comes
    from this call, not from inside the gRPC stream.
    """
    return _messages(root, plan(root), header)


def _messages(
    root: Path, entries: list[_Entry], header: pb.UploadHeader
) -> Iterator[pb.PackageChunk]:
    yield pb.PackageChunk(header=header)
    sent = 0
    for e in entries:
        yield pb.PackageChunk(
            entry=pb.PackageEntry(path=e.wire, kind=e.kind, mode=e.mode, size=e.size)
        )
        if e.kind != pb.ENTRY_KIND_FILE:
            continue
        with open(e.path, "rb") as f:
            left = e.size
            while left > 0:
                data = f.read(min(CHUNK_BYTES, left))
                if not data:
                    raise PackageError(f"package {root}: `{e.wire}` shrank while being sent")
                left -= len(data)
                sent += len(data)
                yield pb.PackageChunk(data=data)
    yield pb.PackageChunk(end=pb.PackageEnd(entries=len(entries), bytes=sent))


def signature_for(package: Path, signature: Path | None) -> str:
    """The detached signature named, else `PACKAGE.sig` when it exists, else none."""
    path = signature if signature is not None else Path(f"{package}.sig")
    if signature is None and not path.is_file():
        return ""
    try:
        if path.stat().st_size > 16 * 1024:
            raise PackageError(f"signature {path}: too large to be an SSH signature")
        return path.read_text()
    except OSError as err:
        raise PackageError(f"signature {path}: {err.strerror}") from None


def archive_chunks(path: Path, header: pb.UploadHeader) -> Iterator[pb.PackageChunk]:
    """A `.pxp` archive's upload stream: the header (marked `archive`), its bytes, the end."""
    if not path.is_file():
        raise PackageError(f"package {path}: is not a file")
    header.archive = True
    return _archive_messages(path, header)


def _archive_messages(path: Path, header: pb.UploadHeader) -> Iterator[pb.PackageChunk]:
    yield pb.PackageChunk(header=header)
    sent = 0
    with open(path, "rb") as f:
        while data := f.read(CHUNK_BYTES):
            sent += len(data)
            yield pb.PackageChunk(data=data)
    yield pb.PackageChunk(end=pb.PackageEnd(entries=0, bytes=sent))
