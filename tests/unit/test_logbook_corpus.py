"""The parser against the reference corpus: every message parses to what Monitorfish produced.

The corpus lives outside the repository (``../shared/data/logbook``, or ``$LOGBOOK_CORPUS_DIR``) and
is never copied in; without it these tests skip. Comparison rules are the corpus README's: same
keys and values in metadata, in each report and in ``value``; datetimes compared as instants (no
zone means UTC); numbers compared numerically (``"120.0"`` equals ``120.0``); report order matters.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from platform_assets.logbook.parse import (
    ROW_KEYS,
    LogbookParsingError,
    parse_message,
    report_rows,
)


def _corpus_dir() -> Path:
    override = os.environ.get("LOGBOOK_CORPUS_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "logbook"


CORPUS = _corpus_dir()
MANIFEST = CORPUS / "manifest.json"
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$")


def _entries(parsable_only: bool = False) -> list[Any]:
    """One pytest param per manifest entry (optionally only those the reference parsed)."""
    if not MANIFEST.is_file():
        return [pytest.param(None, id="corpus-absent")]
    files = json.loads(MANIFEST.read_text())["files"]
    if parsable_only:
        files = [
            entry
            for entry in files
            if not entry["status"].startswith(("ERSParsingError", "FLUXParsingError"))
        ]
    return [pytest.param(entry, id=entry["message"]) for entry in files]


def _entry_or_skip(entry: dict | None) -> dict:
    if entry is None:
        pytest.skip(f"logbook corpus not found at {CORPUS} (set LOGBOOK_CORPUS_DIR)")
    return entry


def _instant(value: str | datetime) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _differences(expected: Any, actual: Any, path: str) -> list[str]:
    """Where ``actual`` departs from ``expected`` under the README's comparison rules."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected a dict, got {actual!r}"]
        found = []
        if set(expected) != set(actual):
            found.append(
                f"{path}: missing keys {sorted(set(expected) - set(actual))}, "
                f"unexpected keys {sorted(set(actual) - set(expected))}"
            )
        for key in sorted(set(expected) & set(actual)):
            found += _differences(expected[key], actual[key], f"{path}.{key}")
        return found
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} items, got {actual!r}"]
        found = []
        for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
            found += _differences(want, got, f"{path}[{index}]")
        return found
    if expected is None or isinstance(expected, bool):
        return [] if actual is expected else [f"{path}: expected {expected!r}, got {actual!r}"]
    if isinstance(expected, str) and _ISO_DATETIME.match(expected):
        comparable = isinstance(actual, datetime) or (
            isinstance(actual, str) and _ISO_DATETIME.match(actual)
        )
        if comparable and _instant(expected) == _instant(actual):
            return []
        return [f"{path}: expected instant {expected}, got {actual!r}"]
    want, got = _number(expected), _number(actual)
    if (
        want is not None
        and got is not None
        and not (isinstance(expected, str) and isinstance(actual, str))
    ):
        return [] if want == got else [f"{path}: expected {expected!r}, got {actual!r}"]
    return [] if expected == actual else [f"{path}: expected {expected!r}, got {actual!r}"]


@pytest.mark.parametrize("entry", _entries())
def test_message_matches_reference_output(entry: dict | None) -> None:
    entry = _entry_or_skip(entry)
    data = (CORPUS / entry["message"]).read_bytes()
    expected = json.loads((CORPUS / entry["expected"]).read_text())

    if "error" in expected:
        with pytest.raises(LogbookParsingError, match=re.escape(entry["message"])):
            parse_message(data, source=entry["message"])
        return

    parsed = parse_message(data, source=entry["message"])
    differences = _differences(expected["metadata"], parsed.metadata, "metadata")
    differences += _differences(expected["reports"], parsed.reports, "reports")
    assert not differences, "\n".join(differences)
    assert parsed.transmission_format == expected["format"]
    assert parsed.operation_number == expected["metadata"]["operation_number"]


@pytest.mark.parametrize("entry", _entries(parsable_only=True))
def test_storage_rows_of_corpus_message(entry: dict | None) -> None:
    entry = _entry_or_skip(entry)
    parsed = parse_message((CORPUS / entry["message"]).read_bytes(), source=entry["message"])

    rows = report_rows(parsed)

    assert len(rows) == max(1, len(parsed.reports))
    for row in rows:
        assert tuple(row) == ROW_KEYS
        assert row["operation_number"] == parsed.operation_number
        assert row["transmission_format"] == parsed.transmission_format
        assert isinstance(row["is_test_message"], bool)
        for key in ("operation_datetime_utc", "report_datetime_utc", "activity_datetime_utc"):
            assert row[key] is None or row[key].utcoffset() is not None
        assert row["value"] is None or isinstance(row["value"], dict)


@pytest.mark.parametrize("entry", _entries(parsable_only=True))
def test_decoded_text_and_base64_envelope_parse_the_same(entry: dict | None) -> None:
    entry = _entry_or_skip(entry)
    data = (CORPUS / entry["message"]).read_bytes()
    parsed = parse_message(data)

    assert parse_message(data.decode("utf-8")) == parsed
    if entry["format"] == "FLUX":
        payload = base64.b64encode(gzip.compress(data)).decode("ascii")
        envelope = f'<BASE64DATA encoding="Base64">{payload}</BASE64DATA>'.encode()
        assert parse_message(envelope) == parsed


def test_corpus_covers_both_formats_and_the_rejections() -> None:
    if not MANIFEST.is_file():
        pytest.skip(f"logbook corpus not found at {CORPUS} (set LOGBOOK_CORPUS_DIR)")
    files = json.loads(MANIFEST.read_text())["files"]
    formats = {entry["format"] for entry in files}
    errors = [
        entry["message"]
        for entry in files
        if "error" in json.loads((CORPUS / entry["expected"]).read_text())
    ]
    parsable = {param.values[0]["message"] for param in _entries(parsable_only=True)}
    assert formats == {"ERS", "FLUX"}
    assert len(errors) == 3
    assert parsable.isdisjoint(errors)
    assert len(parsable) + len(errors) == len(files)
