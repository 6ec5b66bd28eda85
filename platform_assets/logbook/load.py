"""Store parsed logbook messages: raw XML, reports, quarantine. Idempotent by operation number.

A batch's raw messages are COPYed (binary) into a temporary table and inserted from there with
ON CONFLICT DO NOTHING, which returns the operation numbers that are new; the reports of exactly
those messages are then COPYed straight into the reports table. Two runs loading the same message
at once: the second waits on the first's unique key, then skips it and writes none of its
reports, so each message and its reports are stored once. A message under an operation number
already stored is skipped when its content is the same (a re-delivery) and quarantined as a
conflict when it differs. Files or members that cannot be read, and messages that fail to parse,
go to the quarantine table with their bytes (bytea), error and source file.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from platform_assets.logbook.parse import (
    ROW_KEYS,
    LogbookParsingError,
    ParsedMessage,
    decode_xml,
    parse_message,
    report_rows,
)
from platform_assets.ops.bulk import gc_paused

log = logging.getLogger(__name__)

RAW_COLUMNS = (
    "operation_number",
    "transmission_format",
    "xml_message",
    "source_file",
    "content_sha256",
)
RAW_TYPES = ("text", "text", "text", "text", "text")
REPORT_TYPES = {
    "operation_datetime_utc": "timestamptz",
    "report_datetime_utc": "timestamptz",
    "activity_datetime_utc": "timestamptz",
    "value": "jsonb",
    "is_test_message": "bool",
}
# What content_sha256 ignores: padding at both ends of a message's text (parse._PADDING, decoded)
# and the XML declaration; the migration that backfilled the column (0009) does the same.
_PADDING_CHARS = " \t\r\n\u00bf"
_DECLARATION = re.compile(r"^<\?xml[^>]*\?>")  # the migration uses the same pattern


@dataclass(frozen=True)
class RawMessage:
    """One message as received: where it came from and its bytes.

    ``error`` is set when the file or archive member could not be read at all (corrupt,
    encrypted, over the size cap): ``data`` then holds what could be kept (a member's stored,
    compressed stream) and ``origin`` how to read it again (see ``inbox.read_again``).
    """

    source_file: str
    member: str  # the archive member name, or the file name itself
    data: bytes
    error: str | None = None
    origin: Mapping[str, Any] | None = None

    @property
    def text(self) -> str:
        """The XML as text for storage, decoded by its byte order mark or declaration."""
        try:
            return decode_xml(self.data)
        except (UnicodeDecodeError, LookupError):  # not from a message that parsed
            return decode_xml(self.data, "replace")

    @property
    def display_text(self) -> str | None:
        """The quarantine's text for people: decoded as far as it goes, NUL shown as U+FFFD
        (a text column cannot hold NUL); None when the bytes are not text (unreadable item)."""
        if self.error is not None:
            return None
        return decode_xml(self.data, "replace").replace("\x00", "\ufffd")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def content_sha256(self) -> str:
        """Identity of the message's content: its text without padding nor XML declaration, as
        UTF-8 (a re-delivery in UTF-16, or padded, is the same message)."""
        text = _DECLARATION.sub("", self.text.strip(_PADDING_CHARS), count=1).strip(_PADDING_CHARS)
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    @property
    def quarantine_key(self) -> str:
        """Identity in the quarantine: the bytes; for an unreadable item its names as well, since
        several such items may keep the same bytes (or none)."""
        if self.error is None:
            return self.sha256
        digest = hashlib.sha256(b"unreadable\0")
        digest.update(f"{self.source_file}\0{self.member}\0".encode("utf-8", "surrogateescape"))
        digest.update(self.data)
        return digest.hexdigest()


@functools.lru_cache(maxsize=4096)
def _storable(name: str) -> str:
    """A file or member name as PostgreSQL text takes it (undecodable bytes and NUL replaced)."""
    return (
        name.encode("utf-8", "surrogateescape").decode("utf-8", "replace").replace("\x00", "\ufffd")
    )


@dataclass
class LoadResult:
    """What a batch did; the run's metadata."""

    messages: int = 0
    new_messages: int = 0
    replaced: int = 0
    """Stored messages overwritten by this batch's version (``replace``)."""
    already_known: int = 0
    conflicts: int = 0
    reports: int = 0
    quarantined: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: LoadResult) -> None:
        self.messages += other.messages
        self.new_messages += other.new_messages
        self.replaced += other.replaced
        self.already_known += other.already_known
        self.conflicts += other.conflicts
        self.reports += other.reports
        self.quarantined += other.quarantined
        self.errors.extend(other.errors)


@dataclass(frozen=True)
class _Quarantined:
    """One quarantine item: the message, why, and for a conflict the number and stored source."""

    raw: RawMessage
    error: str
    kind: str  # "parse", "unreadable" or "conflict"
    operation_number: str | None = None
    conflicts_with: str | None = None


def parse_batch(
    raws: Iterable[RawMessage],
) -> tuple[list[tuple[RawMessage, ParsedMessage]], list[tuple[RawMessage, str]]]:
    """Parse each message; failures are kept with their error, never raised.

    An item that could not even be read (``error`` set) is a failure with that error.
    """
    parsed: list[tuple[RawMessage, ParsedMessage]] = []
    failed: list[tuple[RawMessage, str]] = []
    for raw in raws:
        if raw.error is not None:
            failed.append((raw, raw.error))
            continue
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
            operation_number text, transmission_format text, xml_message text, source_file text,
            content_sha256 text
        ) ON COMMIT DELETE ROWS
        """
    )


def _conflict(raw: RawMessage, number: str, stored: str) -> _Quarantined:
    return _Quarantined(
        raw,
        f"{raw.source_file}:{raw.member}: operation number {number} is already used by the "
        f"message from {stored}, with different content: kept apart as a conflict (the stored "
        "message stands)",
        "conflict",
        operation_number=number,
        conflicts_with=stored,
    )


def _store(
    conn: psycopg.Connection,
    messages: Sequence[tuple[RawMessage, ParsedMessage]],
    replace: bool = False,
) -> tuple[LoadResult, list[_Quarantined]]:
    """Insert the new messages and their reports; return what was done and the conflicts.

    A message under an operation number already stored (or seen earlier in the batch) is a
    re-delivery when its content is the same (skipped), a conflict when it differs. With
    ``replace``, the batch's message replaces the stored one and its reports (parsed again).
    """
    result = LoadResult(messages=len(messages))
    # Per operation number: the first message (the candidate for storage), then every message of
    # the batch under that number grouped by content.
    first: dict[str, tuple[RawMessage, ParsedMessage, str]] = {}
    by_content: dict[str, dict[str, list[RawMessage]]] = {}
    for raw, parsed in messages:
        number, digest = parsed.operation_number, raw.content_sha256
        if number not in first:
            first[number] = (raw, parsed, digest)
            by_content[number] = {digest: [raw]}
        else:
            by_content[number].setdefault(digest, []).append(raw)
    conflicts: list[_Quarantined] = []
    if not first:
        return result, conflicts
    _stage_table(conn)
    with conn.cursor() as cur:
        with cur.copy(
            f"COPY stage_raw_messages ({', '.join(RAW_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(list(RAW_TYPES))
            for raw, parsed, digest in first.values():
                copy.write_row(
                    (
                        parsed.operation_number,
                        parsed.transmission_format,
                        raw.text,
                        _storable(raw.source_file),
                        digest,
                    )
                )
        replaced = 0
        if replace:  # the stored versions go, with their reports; the batch's take their place
            numbers = sorted(first)
            cur.execute(
                "DELETE FROM logbook.logbook_reports WHERE operation_number = ANY(%s)", (numbers,)
            )
            replaced = cur.execute(
                "DELETE FROM logbook.logbook_raw_messages WHERE operation_number = ANY(%s)",
                (numbers,),
            ).rowcount
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
        # The content that holds each number: what was stored before (for numbers already
        # known) or this batch's first message (for new ones). Any other content conflicts.
        holder: dict[str, tuple[str, str]] = {
            number: (first[number][2], f"{first[number][0].source_file}:{first[number][0].member}")
            for number in new
        }
        known = [number for number in first if number not in new]
        if known:
            for number, digest, source in cur.execute(
                "SELECT operation_number, content_sha256, source_file "
                "FROM logbook.logbook_raw_messages WHERE operation_number = ANY(%s)",
                (known,),
            ).fetchall():
                holder[number] = (digest, source or "an unnamed source")
        for number, groups in by_content.items():
            if number not in holder:  # deleted since the insert: nothing to conflict with
                continue
            held, where = holder[number]
            for digest, raws in groups.items():
                if digest != held:
                    conflicts.extend(_conflict(raw, number, where) for raw in raws)
        types = [REPORT_TYPES.get(key, "text") for key in ROW_KEYS]
        value_at = ROW_KEYS.index("value")
        reports = 0
        with cur.copy(
            f"COPY logbook.logbook_reports ({', '.join(ROW_KEYS)}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(types)
            for _, parsed, _ in first.values():
                if parsed.operation_number not in new:
                    continue
                for row in report_rows(parsed):
                    values = [row[key] for key in ROW_KEYS]
                    if values[value_at] is not None:
                        values[value_at] = Jsonb(values[value_at])
                    copy.write_row(values)
                    reports += 1
    result.new_messages = len(new) - replaced
    result.replaced = replaced
    result.conflicts = len(conflicts)
    result.already_known = result.messages - len(new) - len(conflicts)
    result.reports = reports
    return result, conflicts


def store_messages(
    conn: psycopg.Connection,
    messages: Sequence[tuple[RawMessage, ParsedMessage]],
    replace: bool = False,
) -> LoadResult:
    """Insert the new messages and their reports in the connection's transaction; a different
    message under a stored operation number goes to the quarantine as a conflict (with
    ``replace``, it replaces the stored one instead)."""
    result, conflicts = _store(conn, messages, replace)
    result.quarantined = _quarantine(conn, conflicts)
    result.errors = [item.error for item in conflicts]
    return result


def _quarantine(conn: psycopg.Connection, items: Sequence[_Quarantined]) -> int:
    """Upsert quarantine items by key; an item seen again counts an attempt."""
    if not items:
        return 0
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO logbook.logbook_quarantine
                (raw_sha256, source_file, member, raw_message, raw_bytes, error, kind, origin,
                 operation_number, conflicts_with)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (raw_sha256) DO UPDATE
            SET attempts = logbook.logbook_quarantine.attempts + 1,
                last_attempt_at = now(), error = EXCLUDED.error, kind = EXCLUDED.kind,
                origin = EXCLUDED.origin, operation_number = EXCLUDED.operation_number,
                conflicts_with = EXCLUDED.conflicts_with
            """,
            [
                (
                    item.raw.quarantine_key,
                    _storable(item.raw.source_file),
                    _storable(item.raw.member),
                    item.raw.display_text,
                    item.raw.data,
                    _storable(item.error),
                    item.kind,
                    Jsonb(dict(item.raw.origin)) if item.raw.origin is not None else None,
                    item.operation_number,
                    _storable(item.conflicts_with) if item.conflicts_with else None,
                )
                for item in items
            ],
        )
    for item in items:
        log.warning("quarantined (%s): %s", item.kind, item.error)
    return len(items)


def quarantine(conn: psycopg.Connection, failed: Sequence[tuple[RawMessage, str]]) -> int:
    """Keep messages that failed (raw bytes + error + file); a message seen again counts an
    attempt. An item whose ``error`` is set was unreadable, any other did not parse."""
    return _quarantine(
        conn,
        [
            _Quarantined(raw, error, "unreadable" if raw.error is not None else "parse")
            for raw, error in failed
        ],
    )


def ingest(
    conn: psycopg.Connection, raws: Iterable[RawMessage], *, replace: bool = False
) -> LoadResult:
    """Parse and store a batch in the connection's transaction (the caller commits).

    Unreadable items, unparsable messages and conflicts go to the quarantine; the rest is stored.
    ``replace``: messages already stored under the same operation numbers are overwritten (and
    their reports derived again) instead of skipped.
    """
    with gc_paused():
        parsed, failed = parse_batch(raws)
        result = store_messages(conn, parsed, replace)
    result.quarantined += quarantine(conn, failed)
    result.messages += len(failed)
    result.errors += [error for _, error in failed]
    return result


@dataclass
class ReplayResult:
    """What a replay of the quarantine did: items released, items still there."""

    replayed: int = 0
    still_failing: int = 0
    load: LoadResult = field(default_factory=LoadResult)


def replay_quarantine(conn: psycopg.Connection, limit: int | None = None) -> ReplayResult:
    """Try quarantined items again; those that now load are stored and leave the quarantine.

    A message that did not parse is parsed again; an unreadable file or member is read again
    from its kept bytes (inflated under the current caps, a whole archive re-opened) and its
    messages loaded; a conflict is stored if its operation number is now free or holds the same
    content. What still fails stays, with its attempts counted and its latest error.
    """
    # Imported here: the inbox module builds RawMessage from this one.
    from platform_assets.logbook.inbox import read_again

    rows = conn.execute(
        "SELECT id, raw_sha256, source_file, member, raw_bytes, kind, origin, error "
        "FROM logbook.logbook_quarantine ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
        (limit,),
    ).fetchall()
    raws: list[RawMessage] = []
    for _, _, source, member, data, kind, origin, error in rows:
        raw = RawMessage(
            source,
            member or source,
            bytes(data),
            error=error if kind == "unreadable" else None,
            origin=origin,
        )
        raws.extend(read_again(raw) if kind == "unreadable" else [raw])
    with gc_paused():
        parsed, failed = parse_batch(raws)
        load, conflicts = _store(conn, parsed)
    still = [
        *conflicts,
        *(
            _Quarantined(raw, error, "unreadable" if raw.error is not None else "parse")
            for raw, error in failed
        ),
    ]
    load.quarantined = _quarantine(conn, still)
    load.messages += len(failed)
    load.errors = [item.error for item in still]
    remaining = {item.raw.quarantine_key for item in still}
    released = [qid for qid, key, *_ in rows if key not in remaining]
    conn.execute("DELETE FROM logbook.logbook_quarantine WHERE id = ANY(%s)", (released,))
    return ReplayResult(replayed=len(released), still_failing=len(rows) - len(released), load=load)
