"""The NAF inbox: text files of NAF records, one per line, of any size, read as a stream.

Files are listed with their content hash (the sensor's run key and the catalog key); their lines
are read in blocks (never the whole file), decoded as UTF-8. A line that is not valid UTF-8 is
kept as its raw bytes so the loader can quarantine it exactly as received.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from platform_assets.ops.inbox_files import (  # noqa: F401 - re-exported for callers
    InboxFile,
    file_sha256,
    inbox_file_at,
    list_files,
    takes,
)

DOMAIN = "positions"
"""The ingestion catalog's repository of NAF files."""
INGEST_SOURCE = "inbox"
"""The catalog and run-metrics source of the NAF inbox files."""
INGEST_JOB = "positions_ingest_job"
"""The job name the ingestion's run metrics are kept under, whichever job ran it: one history
for one ingestion (what the usual-level check compares)."""
SUFFIXES = (".naf", ".txt", ".gz")
BLOCK_BYTES = 8 << 20
"""Bytes read at once; a batch is the lines of one block (about 60,000 NAF records)."""


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


def is_inbox_file(path: Path) -> bool:
    """A file the inbox takes: .naf, .txt or gzip, not hidden (partial uploads are dot-files)."""
    return takes(path, SUFFIXES)


def list_inbox(directory: Path) -> list[InboxFile]:
    """Inbox files in name order (hidden and partial uploads ignored)."""
    return list_files(directory, SUFFIXES)


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
