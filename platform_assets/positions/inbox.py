"""The NAF inbox: text files of NAF records, one per line, of any size, read as a stream.

Files are listed with their content hash (the sensor's run key and the catalog key); their lines
are read in blocks (never the whole file), decoded as UTF-8. A line that is not valid UTF-8 is
kept as its raw bytes so the loader can quarantine it exactly as received.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

SUFFIXES = (".naf", ".txt", ".gz")
BLOCK_BYTES = 8 << 20
"""Bytes read at once; a batch is the lines of one block (about 60,000 NAF records)."""


@dataclass(frozen=True)
class InboxFile:
    """A file waiting in the inbox, identified by its content hash."""

    path: Path
    sha256: str
    size: int

    @property
    def run_key(self) -> str:
        """One run per file content: a renamed copy is the same work, a new version is not."""
        return f"{self.path.name}:{self.sha256[:16]}"


@dataclass
class LineBatch:
    """Consecutive lines of a file: ``lines[i]`` is line ``first_line + i`` (1-based).

    A line that is not UTF-8 is ``""`` in ``lines`` and its bytes are in ``undecodable`` (by
    index in ``lines``); blank lines stay in place so that numbers match the file.
    """

    first_line: int
    lines: list[str]
    undecodable: dict[int, bytes] = field(default_factory=dict)

    def raw(self, index: int) -> bytes:
        """The bytes of line ``index`` as received (without its line break)."""
        if index in self.undecodable:
            return self.undecodable[index]
        return self.lines[index].encode("utf-8")


def file_sha256(path: Path) -> str:
    """Hash of a file's bytes (as stored, compressed or not), streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=65536)
def _content_sha256(path: str, size: int, mtime_ns: int) -> str:
    """``file_sha256`` remembered per (path, size, mtime): the sensor lists the inbox every tick
    and must not re-read every file it already hashed."""
    return file_sha256(Path(path))


def is_inbox_file(path: Path) -> bool:
    """A file the inbox takes: .naf, .txt or gzip, not hidden (partial uploads are dot-files)."""
    return path.is_file() and path.suffix.lower() in SUFFIXES and not path.name.startswith(".")


def inbox_file_at(path: Path) -> InboxFile:
    """``path`` with its content hash and size."""
    stat = path.stat()
    return InboxFile(path, _content_sha256(str(path), stat.st_size, stat.st_mtime_ns), stat.st_size)


def list_inbox(directory: Path) -> list[InboxFile]:
    """Inbox files in name order (hidden and partial uploads ignored)."""
    if not directory.is_dir():
        return []
    return [inbox_file_at(p) for p in sorted(directory.iterdir()) if is_inbox_file(p)]


def _open(path: Path) -> BinaryIO:
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _decode(first_line: int, block: bytes) -> LineBatch:
    """Lines of a block that ends at a line break (or at the end of the file)."""
    try:
        return LineBatch(first_line, block.decode("utf-8").split("\n"))
    except UnicodeDecodeError:
        pass
    lines: list[str] = []
    undecodable: dict[int, bytes] = {}
    for index, raw in enumerate(block.split(b"\n")):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append("")
            undecodable[index] = raw
    return LineBatch(first_line, lines, undecodable)


def read_line_batches(path: Path, block_bytes: int = BLOCK_BYTES) -> Iterator[LineBatch]:
    """The file's lines in batches, streamed: memory stays near ``block_bytes`` per batch.

    Lines end at ``\\n`` only (a ``\\r`` before it stays on the line: the parser strips ASCII
    whitespace); a final line break does not make an empty last line.
    """
    next_line = 1
    pending = b""
    with _open(path) as handle:
        while True:
            chunk = handle.read(block_bytes)
            if not chunk:
                break
            data = pending + chunk
            cut = data.rfind(b"\n")
            if cut < 0:  # one line longer than a block: keep reading
                pending = data
                continue
            pending = data[cut + 1 :]
            batch = _decode(next_line, data[:cut])
            next_line += len(batch.lines)
            yield batch
    if pending:
        yield _decode(next_line, pending)
