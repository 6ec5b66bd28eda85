"""Pure parser of electronic fishing logbook messages: ERS3 and FLUX FA, bytes in, dicts out.

``parse_message`` detects the format from the root element (``OPS`` for ERS,
``FLUXFAReportMessage`` for FLUX, or a ``BASE64DATA`` envelope holding a gzip-compressed,
base64-encoded message) and returns metadata and reports shaped exactly like the Monitorfish
pipeline's output, so rows stored from either format line up. ``report_rows`` flattens a parsed
message into storage rows, one per report.

Datetimes are timezone-aware UTC ``datetime`` objects at the top level of metadata and reports;
datetimes inside ``value`` stay ISO strings as the reference stores them in JSON.

No Dagster, no database, no pydantic: this runs once per message in ingestion loops.
"""

from __future__ import annotations

import base64
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lxml import etree

from platform_assets.logbook import ers, flux

try:  # the compiled twin of ers.parse_ops, built at install (setup.py); same output and errors
    from platform_assets.logbook._ers_fast import parse_ops as _parse_ers_ops
except ImportError:  # not compiled on this machine (no C compiler): the pure-Python reference
    _parse_ers_ops = ers.parse_ops

__all__ = [
    "ERS_COMPILED",
    "ROW_KEYS",
    "LogbookParsingError",
    "ParsedMessage",
    "parse_message",
    "report_rows",
]

# Whether ERS messages go through the compiled walker (about four times faster than ers.py).
ERS_COMPILED = _parse_ers_ops is not ers.parse_ops

# A BASE64DATA envelope inflating beyond this is refused rather than exhausting memory.
MAX_DECODED_BYTES = 32 * 1024 * 1024

ROW_KEYS = (
    "operation_number",
    "operation_country",
    "operation_datetime_utc",
    "operation_type",
    "report_id",
    "referenced_report_id",
    "report_datetime_utc",
    "cfr",
    "ircs",
    "external_identification",
    "vessel_name",
    "flag_state",
    "imo",
    "log_type",
    "value",
    "trip_number",
    "software",
    "is_test_message",
    "transmission_format",
    "activity_datetime_utc",
)
_ROW_KEY_SET = frozenset(ROW_KEYS)
# Whitespace and the '¿' (UTF-8 C2 BF) some ERS senders pad messages with, as the reference strips.
_PADDING = b" \t\r\n\xc2\xbf"


class LogbookParsingError(ValueError):
    """A logbook message that cannot be parsed; the text names the message and the reason."""


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """One parsed message: its operation number, format, metadata and reports (reference shapes)."""

    operation_number: str
    transmission_format: str  # "ERS" or "FLUX"
    metadata: dict
    reports: list[dict]


_local = threading.local()


def _new_parser(forced_utf8: bool) -> etree.XMLParser:
    """A parser that expands no entities, reads no network, drops comments, PIs and blank text.

    Dropping comments and processing instructions keeps them out of every child loop; dropping
    whitespace between elements makes the tree smaller and the parse faster (text inside leaf
    elements, the only text read, is kept).
    """
    return etree.XMLParser(
        encoding="utf-8" if forced_utf8 else None,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        remove_comments=True,
        remove_pis=True,
        remove_blank_text=True,
        collect_ids=False,
        huge_tree=False,
    )


def _parser(forced_utf8: bool = False) -> etree.XMLParser:
    """This thread's parser (an lxml parser serialises the threads that share it)."""
    try:
        return _local.utf8_parser if forced_utf8 else _local.parser
    except AttributeError:
        _local.parser = _new_parser(False)
        _local.utf8_parser = _new_parser(True)
        return _local.utf8_parser if forced_utf8 else _local.parser


def _describe(source: str, operation_number: str | None, reason: object) -> str:
    """Error text naming the message: its source, its operation number once known, the reason."""
    if operation_number:
        return f"{source} (operation {operation_number}): {reason}"
    return f"{source}: {reason}"


def _root(data: bytes, forced_utf8: bool, source: str, what: str) -> etree._Element:
    """Root element of ``data`` (padding stripped); empty or ill-formed input raises."""
    data = data.strip(_PADDING)
    if not data:
        raise LogbookParsingError(_describe(source, None, f"empty {what}"))
    try:
        return etree.fromstring(data, _parser(forced_utf8))
    except (etree.LxmlError, ValueError) as exc:
        raise LogbookParsingError(_describe(source, None, f"{what} is not XML: {exc}")) from exc


def _unwrap(envelope: etree._Element, source: str) -> bytes:
    """The message inside a BASE64DATA envelope: base64, then gzip."""
    text = envelope.text
    if not text or not text.strip():
        raise LogbookParsingError(_describe(source, None, "empty BASE64DATA envelope"))
    try:
        compressed = base64.b64decode(text)
    except ValueError as exc:  # binascii.Error, or non-ASCII text
        raise LogbookParsingError(
            _describe(source, None, f"BASE64DATA is not base64: {exc}")
        ) from exc
    inflater = zlib.decompressobj(wbits=31)  # 31: gzip container
    try:
        raw = inflater.decompress(compressed, MAX_DECODED_BYTES)
    except zlib.error as exc:
        raise LogbookParsingError(
            _describe(source, None, f"BASE64DATA is not gzip: {exc}")
        ) from exc
    if inflater.unconsumed_tail:
        raise LogbookParsingError(
            _describe(source, None, f"BASE64DATA inflates beyond {MAX_DECODED_BYTES} bytes")
        )
    if not inflater.eof:
        raise LogbookParsingError(_describe(source, None, "BASE64DATA gzip stream is truncated"))
    return raw


def _parse_tree(root: etree._Element, source: str, envelope_allowed: bool) -> ParsedMessage:
    """Dispatch on the root element: FLUX, ERS, or one BASE64DATA envelope around either."""
    parse: Callable[[etree._Element], tuple[str, dict[str, Any], list[dict[str, Any]]]]
    number_of: Callable[[etree._Element], str | None]
    tag = root.tag
    if tag == flux.ROOT_TAG:
        parse, number_of, transmission_format = (
            flux.parse_report_message,
            flux.operation_number,
            "FLUX",
        )
    elif tag.rpartition("}")[2] == "OPS":  # any namespace, as the reference accepts
        parse, number_of, transmission_format = _parse_ers_ops, ers.operation_number, "ERS"
    elif envelope_allowed and tag.rpartition("}")[2] == "BASE64DATA":
        inner = _root(_unwrap(root, source), False, source, "BASE64DATA content")
        return _parse_tree(inner, source, envelope_allowed=False)
    else:
        raise LogbookParsingError(_describe(source, None, f"unexpected root element {tag!r}"))
    try:
        operation_number, metadata, reports = parse(root)
    except ValueError as exc:
        raise LogbookParsingError(_describe(source, number_of(root), exc)) from exc
    except (TypeError, AttributeError, LookupError) as exc:
        # Not expected from any input; reported as a parsing error so one odd message cannot
        # stop a batch, with the cause chained for debugging.
        raise LogbookParsingError(
            _describe(source, number_of(root), f"unexpected {type(exc).__name__}: {exc}")
        ) from exc
    return ParsedMessage(operation_number, transmission_format, metadata, reports)


def parse_message(
    xml: bytes | bytearray | memoryview | str, *, source: str = "<message>"
) -> ParsedMessage:
    """Detect ERS vs FLUX (incl. BASE64DATA envelope) and parse; raise LogbookParsingError."""
    if type(xml) is bytes:
        root = _root(xml, False, source, "message")
    elif isinstance(xml, str):
        # Already decoded: encode as UTF-8 and tell the parser so, whatever the declaration says.
        root = _root(xml.encode("utf-8", "surrogatepass"), True, source, "message")
    elif isinstance(xml, bytes | bytearray | memoryview):
        root = _root(bytes(xml), False, source, "message")
    else:
        raise LogbookParsingError(
            _describe(source, None, f"expected bytes or str, got {type(xml)}")
        )
    return _parse_tree(root, source, envelope_allowed=True)


def report_rows(message: ParsedMessage) -> list[dict[str, Any]]:
    """Flatten a parsed message into storage rows, one per report, keys exactly ``ROW_KEYS``.

    ERS reports take their operation, report and vessel fields from the message metadata; FLUX
    reports carry their own. A message without reports (ERS QUE/RSP, FLUX without
    FAReportDocument) still yields one row with its operation fields. DEL, COR and RET keep
    ``referenced_report_id`` and RET its ``value`` (return status) so reads can resolve them.
    ``value`` dicts are shared with ``message``, not copied.
    """
    base: dict[str, Any] = dict.fromkeys(ROW_KEYS)
    for key, field in message.metadata.items():
        if key in _ROW_KEY_SET:
            base[key] = field
    base["transmission_format"] = message.transmission_format
    base["is_test_message"] = bool(base["is_test_message"])
    if not message.reports:
        return [base]
    rows = []
    for report in message.reports:
        row = base.copy()
        for key, field in report.items():
            if key in _ROW_KEY_SET:
                row[key] = field
        rows.append(row)
    return rows
