"""Ingesting NAF lines: a block of a file, or the quarantine replayed. Bad lines are
quarantined, the rest loaded (``load.load_positions``), in the caller's transaction. Parsing a
block (``parse_batch``) is separate from storing it, so a run parses the next block while the
current one is stored (``ingestion``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from platform_assets.positions import naf
from platform_assets.positions.geodesy import AnchorageIndex
from platform_assets.positions.inbox import LineBatch
from platform_assets.positions.store.load import LoadResult, load_positions
from platform_assets.positions.store.quarantine import (
    QuarantinedLine,
    quarantine,
    quarantined_lines,
    record_failed_attempt,
    release_quarantined,
)
from platform_assets.positions.store.schema import normalise_parsed
from platform_assets.positions.store.writes import NaturalKeyConflict


@dataclass
class IngestResult:
    """What ingesting lines (a file, a replay) did."""

    load: LoadResult = field(default_factory=LoadResult)
    lines: int = 0
    quarantined: int = 0
    errors: list[str] = field(default_factory=list)
    staged_after_conflict: bool = False
    """A direct COPY met a stored row, and the batch was loaded again through staging."""

    def add(self, other: IngestResult) -> None:
        """Accumulate another batch."""
        self.load.add(other.load)
        self.lines += other.lines
        self.quarantined += other.quarantined
        self.errors.extend(other.errors[: max(0, 20 - len(self.errors))])
        self.staged_after_conflict |= other.staged_after_conflict


@dataclass
class ParsedBatch:
    """A block of a file's lines parsed: the positions (in the table's types) and the lines to
    quarantine. Parsing needs no database, so it can run ahead of the load (``parse_batch``)."""

    source_file: str
    lines: int
    frame: pd.DataFrame
    bad: list[QuarantinedLine]


def parse_batch(source_file: str, batch: LineBatch) -> ParsedBatch:
    """Parse one batch of a file's lines: positions (normalised) and bad lines (numbered in the
    file, their bytes exactly as received)."""
    frame, errors = naf.parse_lines(batch.text, first_line_number=batch.first_line)
    bad = [
        QuarantinedLine(
            source_file, e.line_number, batch.raw(e.line_number - batch.first_line), e.message
        )
        for e in errors
    ]
    bad += [
        QuarantinedLine(source_file, batch.first_line + index, raw, "line is not valid UTF-8")
        for index, raw in batch.undecodable.items()
    ]
    return ParsedBatch(source_file, len(batch), normalise_parsed(frame), bad)


def ingest_batch(
    conn: Any,
    source_file: str,
    batch: LineBatch | ParsedBatch,
    anchorages: pd.DataFrame | AnchorageIndex,
    *,
    direct: bool = True,
    sample: bool = True,
) -> IngestResult:
    """Parse one batch of a file's lines (unless already parsed), quarantine the bad ones,
    store the rest (in the caller's transaction; ``direct``, ``sample``: see
    ``load.load_positions``)."""
    parsed = batch if isinstance(batch, ParsedBatch) else parse_batch(source_file, batch)
    result = IngestResult(lines=parsed.lines)
    result.quarantined = quarantine(conn, parsed.bad)
    result.errors = [f"{source_file}:{b.line_number}: {b.error}" for b in parsed.bad[:20]]
    result.load = load_positions(
        conn, parsed.frame, anchorages, normalised=True, direct=direct, sample=sample
    )
    return result


def ingest_batch_committed(
    conn: Any, source_file: str, batch: LineBatch | ParsedBatch, anchorages: AnchorageIndex
) -> IngestResult:
    """``ingest_batch`` in its own transaction, committed: by direct COPY, and should a row
    turn out to be stored already (``NaturalKeyConflict``), again through the staging table.
    No sample of written rows is kept (only a dry run shows one)."""
    parsed = batch if isinstance(batch, ParsedBatch) else parse_batch(source_file, batch)
    try:
        result = ingest_batch(conn, source_file, parsed, anchorages, direct=True, sample=False)
    except NaturalKeyConflict:
        conn.rollback()
        result = ingest_batch(conn, source_file, parsed, anchorages, direct=False, sample=False)
        result.staged_after_conflict = True
    conn.commit()
    return result


@dataclass
class ReplayResult:
    """What a quarantine replay did."""

    replayed: int = 0
    still_failing: int = 0
    load: LoadResult = field(default_factory=LoadResult)


def replay_quarantine(conn: Any, anchorages: pd.DataFrame | AnchorageIndex) -> ReplayResult:
    """Parse the quarantined lines again; store and release those that now parse."""
    rows = quarantined_lines(conn)
    result = ReplayResult()
    if rows.empty:
        return result
    lines: list[str] = []
    decode_errors: dict[int, str] = {}
    for index, raw in enumerate(rows["raw_bytes"]):
        try:
            lines.append(bytes(raw).decode("utf-8"))
        except UnicodeDecodeError:
            lines.append("")
            decode_errors[index] = "line is not valid UTF-8"
    # numbering lines 0..n-1 maps each result back to its quarantine row
    frame, errors = naf.parse_lines(lines, first_line_number=0)
    failing = {e.line_number: e.message for e in errors}
    failing.update(decode_errors)
    blank = {i for i, line in enumerate(lines) if not line.strip() and i not in failing}
    failing.update({i: "blank line" for i in blank})
    ids = rows["id"].astype("int64").to_numpy()
    result.load = load_positions(conn, frame, anchorages, direct=False)
    released = [int(ids[i]) for i in range(len(ids)) if i not in failing]
    release_quarantined(conn, released)
    record_failed_attempt(conn, [(int(ids[i]), message) for i, message in failing.items()])
    result.replayed = len(released)
    result.still_failing = len(failing)
    return result
