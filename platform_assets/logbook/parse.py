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
import codecs
import functools
import re
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
    "decode_xml",
    "parse_message",
    "report_rows",
    "xml_encoding",
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


# Byte order marks and, without one, the first bytes of '<?' in each wide encoding (XML 1.0
# appendix F): these messages are transcoded to UTF-8 before parsing.
_WIDE_STARTS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00?\x00", "utf-16-le"),
    (b"\x00<\x00?", "utf-16-be"),
)
# The first bytes of any document that is not plainly ASCII-compatible: the marks, and NUL.
_UNUSUAL_FIRST = frozenset({b"\xff", b"\xfe", b"\xef", b"\x00"})
# The encoding pseudo-attribute of an XML declaration (searched within the declaration only).
_ENCODING = re.compile(
    rb"[ \t\r\n]encoding[ \t\r\n]*=[ \t\r\n]*[\"']([A-Za-z][A-Za-z0-9._-]{0,40})[\"']"
)
# libxml2 reads these natively; any other declared encoding is transcoded by Python first, so
# that what the DTD check below sees is exactly what the parser sees.
_NATIVE = frozenset({"utf-8", "ascii"})
# Any document type declaration (or a stray entity declaration), whatever its case.
_DTD = re.compile(rb"<!\s*(?:doctype|entity)", re.IGNORECASE)


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


def xml_encoding(data: bytes) -> str:
    """The Python codec of an XML document: its byte order mark, else the shape of its first
    bytes (UTF-16/32 without a mark), else its declaration, else UTF-8 (XML's default).

    A declared name Python does not know is returned as declared (decoding it then fails).
    """
    if data[:1] in _UNUSUAL_FIRST or data[1:2] == b"\x00":
        head = data[:4]
        for start, encoding in _WIDE_STARTS:
            if head.startswith(start):
                return encoding
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
    # The declaration, if any, opens the document (after the padding some senders add).
    opening = data.find(b"<?xml", 0, 64)
    if opening < 0 or (opening and data[:opening].strip(_PADDING)):
        return "utf-8"
    end = data.find(b"?>", opening, opening + 512)
    declared = _ENCODING.search(data, opening, end) if end > 0 else None
    return _codec_name(declared.group(1)) if declared else "utf-8"


@functools.lru_cache(maxsize=256)
def _codec_name(declared: bytes) -> str:
    """Python's name for a declared encoding (the declared name if Python does not know it)."""
    name = declared.decode("ascii")
    try:
        return codecs.lookup(name).name
    except LookupError:
        return name


def decode_xml(data: bytes, errors: str = "strict") -> str:
    """The text of an XML document, decoded by its mark or declaration (see ``xml_encoding``).

    With ``errors`` other than "strict", undecodable bytes and an unknown encoding never raise
    (UTF-8 with replacement is the fallback): for showing bad input to people.
    """
    encoding = xml_encoding(data)
    try:
        text = data.decode(encoding, errors)
    except LookupError:
        if errors == "strict":
            raise
        text = data.decode("utf-8", errors)
    return text[1:] if text.startswith("\ufeff") else text


def _utf8_for_parser(data: bytes, source: str, what: str) -> tuple[bytes, bool]:
    """``data`` as the parser will read it, and whether the parser must be told it is UTF-8.

    UTF-8 and ASCII documents pass unchanged (the hot path: one regex match on the head); any
    other encoding is decoded here, by its mark or declaration, and handed over as UTF-8.
    """
    encoding = xml_encoding(data)
    if encoding in _NATIVE or encoding == "utf-8-sig":
        return data, False
    try:
        text = data.decode(encoding)
    except LookupError:
        raise LogbookParsingError(
            _describe(source, None, f"{what} declares an unknown encoding {encoding!r}")
        ) from None
    except UnicodeDecodeError as exc:
        raise LogbookParsingError(
            _describe(
                source, None, f"{what} is not valid {encoding}: {exc.reason} at byte {exc.start}"
            )
        ) from None
    return text.lstrip("\ufeff").encode("utf-8", "surrogatepass"), True


def _root(data: bytes, forced_utf8: bool, source: str, what: str) -> etree._Element:
    """Root element of ``data`` (padding stripped); empty, ill-formed or DTD-bearing input raises.

    A document type declaration is refused before the parser sees it: logbook messages carry
    none, lxml may read the external subset or parameter entities it names (files, pipes, URLs)
    whatever the parser options, and an internal entity would silently shorten a value.
    """
    if not forced_utf8:
        data, forced_utf8 = _utf8_for_parser(data, source, what)
    data = data.strip(_PADDING)
    if not data:
        raise LogbookParsingError(_describe(source, None, f"empty {what}"))
    if b"<!" in data and _DTD.search(data):
        raise LogbookParsingError(
            _describe(
                source,
                None,
                f"{what} has a document type declaration (DOCTYPE or ENTITY), refused: "
                "logbook messages carry none, and a DTD can make the parser read files or "
                "expand entities",
            )
        )
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
