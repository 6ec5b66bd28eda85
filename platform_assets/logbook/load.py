"""Store parsed logbook messages: raw XML, reports, quarantine. Idempotent by operation number.

A batch's raw messages are COPYed (binary) into a temporary table and inserted from there with
ON CONFLICT DO NOTHING, which returns the operation numbers that are new; the reports of exactly
those messages are then COPYed straight into the reports table. Two runs loading the same message
at once: the second waits on the first's unique key, then skips it and writes none of its
reports, so each message and its reports are stored once. Messages that fail to parse go to the
quarantine table with their error and source file.
"""

from __future__ import annotations

import gc
import hashlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg.types.json import Jsonb

from platform_assets.logbook.parse import (
    ROW_KEYS,
    LogbookParsingError,
    ParsedMessage,
    parse_message,
    report_rows,
)

log = logging.getLogger(__name__)

RAW_COLUMNS = ("operation_number", "transmission_format", "xml_message", "source_file")
RAW_TYPES = ("text", "text", "text", "text")
REPORT_TYPES = {
    "operation_datetime_utc": "timestamptz",
    "report_datetime_utc": "timestamptz",
    "activity_datetime_utc": "timestamptz",
    "value": "jsonb",
    "is_test_message": "bool",
}


@dataclass(frozen=True)
class RawMessage:
    """One message as received: where it came from and its bytes."""

    source_file: str
    member: str  # the archive member name, or the file name itself
    data: bytes

    @property
    def text(self) -> str:
        """The XML as text for storage (UTF-8, else Latin-1 so no byte is lost)."""
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            return self.data.decode("latin-1")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class LoadResult:
    """What a batch did; the run's metadata."""

    messages: int = 0
    new_messages: int = 0
    already_known: int = 0
    reports: int = 0
    quarantined: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: LoadResult) -> None:
        self.messages += other.messages
        self.new_messages += other.new_messages
        self.already_known += other.already_known
        self.reports += other.reports
        self.quarantined += other.quarantined
        self.errors.extend(other.errors)


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cycle collector while a batch is parsed and stored: it allocates millions
    of small dicts that hold no cycles, and the collector re-scanning the growing batch doubled
    the parse time (100,000 messages). Reference counting still frees everything; the collector
    resumes (if it was on) when the batch is done."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_batch(
    raws: Iterable[RawMessage],
) -> tuple[list[tuple[RawMessage, ParsedMessage]], list[tuple[RawMessage, str]]]:
    """Parse each message; failures are kept with their error, never raised."""
    parsed: list[tuple[RawMessage, ParsedMessage]] = []
    failed: list[tuple[RawMessage, str]] = []
    for raw in raws:
        source = f"{raw.source_file}:{raw.member}"
        try:
            parsed.append((raw, parse_message(raw.data, source=source)))
        except LogbookParsingError as exc:
            failed.append((raw, str(exc)))
    return parsed, failed


def _stage_table(conn: psycopg.Connection) -> None:
    conn.execute(
        """
        CREATE TEMPORARY TABLE IF NOT EXISTS stage_raw_messages (
            operation_number text, transmission_format text, xml_message text, source_file text
        ) ON COMMIT DELETE ROWS
        """
    )


def store_messages(
    conn: psycopg.Connection, messages: Sequence[tuple[RawMessage, ParsedMessage]]
) -> LoadResult:
    """Insert the new messages and their reports in the connection's transaction."""
    result = LoadResult(messages=len(messages))
    # A message repeated within the batch is stored once (its reports too).
    unique = list(
        {parsed.operation_number: (raw, parsed) for raw, parsed in reversed(messages)}.values()
    )
    messages = unique[::-1]
    if not messages:
        return result
    _stage_table(conn)
    with conn.cursor() as cur:
        with cur.copy(
            f"COPY stage_raw_messages ({', '.join(RAW_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(list(RAW_TYPES))
            for raw, parsed in messages:
                copy.write_row(
                    (parsed.operation_number, parsed.transmission_format, raw.text, raw.source_file)
                )
        # Key order, so that concurrent runs lock shared operation numbers in the same order.
        new = {
            number
            for (number,) in cur.execute(
                f"""
                INSERT INTO logbook.logbook_raw_messages ({", ".join(RAW_COLUMNS)})
                SELECT {", ".join(RAW_COLUMNS)} FROM stage_raw_messages ORDER BY operation_number
                ON CONFLICT (operation_number) DO NOTHING
                RETURNING operation_number
                """
            )
        }
        types = [REPORT_TYPES.get(key, "text") for key in ROW_KEYS]
        value_at = ROW_KEYS.index("value")
        reports = 0
        with cur.copy(
            f"COPY logbook.logbook_reports ({', '.join(ROW_KEYS)}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(types)
            for _, parsed in messages:
                if parsed.operation_number not in new:
                    continue
                for row in report_rows(parsed):
                    values = [row[key] for key in ROW_KEYS]
                    if values[value_at] is not None:
                        values[value_at] = Jsonb(values[value_at])
                    copy.write_row(values)
                    reports += 1
    result.new_messages = len(new)
    result.already_known = result.messages - len(new)
    result.reports = reports
    return result


def quarantine(conn: psycopg.Connection, failed: Sequence[tuple[RawMessage, str]]) -> int:
    """Keep unparsable messages (raw + error + file); a message seen again counts an attempt."""
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO logbook.logbook_quarantine
                (raw_sha256, source_file, member, raw_message, raw_bytes, error)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (raw_sha256) DO UPDATE
            SET attempts = logbook.logbook_quarantine.attempts + 1,
                last_attempt_at = now(), error = EXCLUDED.error
            """,
            [
                (raw.sha256, raw.source_file, raw.member, raw.text, raw.data, error)
                for raw, error in failed
            ],
        )
    for raw, error in failed:
        log.warning("quarantined %s:%s: %s", raw.source_file, raw.member, error)
    return len(failed)


def ingest(conn: psycopg.Connection, raws: Iterable[RawMessage]) -> LoadResult:
    """Parse and store a batch in the connection's transaction (the caller commits)."""
    with _cyclic_gc_paused():
        parsed, failed = parse_batch(raws)
        result = store_messages(conn, parsed)
    result.quarantined = quarantine(conn, failed)
    result.messages += len(failed)
    result.errors = [error for _, error in failed]
    return result


@dataclass
class ReplayResult:
    """What a replay of the quarantine did."""

    replayed: int = 0
    still_failing: int = 0
    load: LoadResult = field(default_factory=LoadResult)


def replay_quarantine(conn: psycopg.Connection, limit: int | None = None) -> ReplayResult:
    """Re-parse quarantined messages; those that now parse are stored and leave the quarantine."""
    rows = conn.execute(
        "SELECT id, source_file, member, raw_bytes FROM logbook.logbook_quarantine "
        "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
        (limit,),
    ).fetchall()
    raws = {row[0]: RawMessage(row[1], row[2] or row[1], bytes(row[3])) for row in rows}
    with _cyclic_gc_paused():
        parsed, failed = parse_batch(raws.values())
        result = ReplayResult(replayed=len(parsed), still_failing=len(failed))
        result.load = store_messages(conn, parsed)
    fixed_ids = [qid for qid, raw in raws.items() if any(raw is p[0] for p in parsed)]
    conn.execute("DELETE FROM logbook.logbook_quarantine WHERE id = ANY(%s)", (fixed_ids,))
    errors = {id(raw): error for raw, error in failed}
    conn.cursor().executemany(
        "UPDATE logbook.logbook_quarantine SET attempts = attempts + 1, last_attempt_at = now(), "
        "error = %s WHERE id = %s",
        [(errors[id(raw)], qid) for qid, raw in raws.items() if id(raw) in errors],
    )
    return result
