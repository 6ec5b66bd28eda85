"""Pure NAF (North Atlantic Format) position parser: one record per line, no Dagster, no database.

A record reads ``//SR//CODE/VALUE//CODE/VALUE//...//ER//``. `parse_line` turns one record into a
dict of position fields or raises `NafError` naming the field code and the record;
`parse_lines` parses many lines at once (vectorised with pyarrow) into a positions frame plus a
list of `NafLineError` (line number, line, message) for the quarantine. Both apply the same rules;
rows the vectorised checks find suspicious are handed to `parse_line`, which is the authority on
what is wrong.

Rules (the recommended answers of the format notes, see docs/positions.md):
ASCII whitespace around a record is stripped; a record ends with ``//ER//`` or ``//ER``; codes are
case-sensitive; an empty value means absent; the first non-empty occurrence of a field wins; a
``/`` inside a used field's value, several records on one line, impossible dates, out-of-range
coordinates/speeds/courses and anything but plain decimals are refused; TM may be POS, MAN, ENT,
EXI or absent; countries must be ISO 3166-1 alpha-3 (``X`` = none) and come out as alpha-2; SP is
tenths of a knot; LA/LO (degrees and minutes) win over LT/LG.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from platform_assets.positions.columns import POSITION_COLUMNS, POSITION_DTYPES

__all__ = [
    "NafError",
    "NafLineError",
    "parse_line",
    "parse_lines",
    "iter_parse_lines",
    "empty_positions",
]

# ISO 3166-1 alpha-3 -> alpha-2, the 249 current codes (what Monitorfish's nv-i18n and the JDK know,
# minus reserved codes). Kept inline so parsing depends on no registry package.
_COUNTRY_TABLE = (
    "ABWAW AFGAF AGOAO AIAAI ALAAX ALBAL ANDAD AREAE ARGAR ARMAM ASMAS ATAAQ ATFTF ATGAG AUSAU "
    "AUTAT AZEAZ BDIBI BELBE BENBJ BESBQ BFABF BGDBD BGRBG BHRBH BHSBS BIHBA BLMBL BLRBY BLZBZ "
    "BMUBM BOLBO BRABR BRBBB BRNBN BTNBT BVTBV BWABW CAFCF CANCA CCKCC CHECH CHLCL CHNCN CIVCI "
    "CMRCM CODCD COGCG COKCK COLCO COMKM CPVCV CRICR CUBCU CUWCW CXRCX CYMKY CYPCY CZECZ DEUDE "
    "DJIDJ DMADM DNKDK DOMDO DZADZ ECUEC EGYEG ERIER ESHEH ESPES ESTEE ETHET FINFI FJIFJ FLKFK "
    "FRAFR FROFO FSMFM GABGA GBRGB GEOGE GGYGG GHAGH GIBGI GINGN GLPGP GMBGM GNBGW GNQGQ GRCGR "
    "GRDGD GRLGL GTMGT GUFGF GUMGU GUYGY HKGHK HMDHM HNDHN HRVHR HTIHT HUNHU IDNID IMNIM INDIN "
    "IOTIO IRLIE IRNIR IRQIQ ISLIS ISRIL ITAIT JAMJM JEYJE JORJO JPNJP KAZKZ KENKE KGZKG KHMKH "
    "KIRKI KNAKN KORKR KWTKW LAOLA LBNLB LBRLR LBYLY LCALC LIELI LKALK LSOLS LTULT LUXLU LVALV "
    "MACMO MAFMF MARMA MCOMC MDAMD MDGMG MDVMV MEXMX MHLMH MKDMK MLIML MLTMT MMRMM MNEME MNGMN "
    "MNPMP MOZMZ MRTMR MSRMS MTQMQ MUSMU MWIMW MYSMY MYTYT NAMNA NCLNC NERNE NFKNF NGANG NICNI "
    "NIUNU NLDNL NORNO NPLNP NRUNR NZLNZ OMNOM PAKPK PANPA PCNPN PERPE PHLPH PLWPW PNGPG POLPL "
    "PRIPR PRKKP PRTPT PRYPY PSEPS PYFPF QATQA REURE ROURO RUSRU RWARW SAUSA SDNSD SENSN SGPSG "
    "SGSGS SHNSH SJMSJ SLBSB SLESL SLVSV SMRSM SOMSO SPMPM SRBRS SSDSS STPST SURSR SVKSK SVNSI "
    "SWESE SWZSZ SXMSX SYCSC SYRSY TCATC TCDTD TGOTG THATH TJKTJ TKLTK TKMTM TLSTL TONTO TTOTT "
    "TUNTN TURTR TUVTV TWNTW TZATZ UGAUG UKRUA UMIUM URYUY USAUS UZBUZ VATVA VCTVC VENVE VGBVG "
    "VIRVI VNMVN VUTVU WLFWF WSMWS YEMYE ZAFZA ZMBZM ZWEZW "
)
_ALPHA3_TO_ALPHA2: dict[str, str] = {item[:3]: item[3:] for item in _COUNTRY_TABLE.split()}

_WHITESPACE = " \t\n\r\x0b\x0c"  # ASCII only: NBSP and byte-order marks are not trimmed
_ENVELOPE = ("SR", "ER")
#: The codes this parser reads; any other code is ignored.
_USED_CODES: tuple[str, ...] = (
    "TM", "DA", "TI", "IR", "XR", "RC", "NA", "FS", "FR", "AD", "TN",
    "LT", "LG", "LA", "LO", "SP", "CO", "MS",
)  # fmt: skip
_TEXT_FIELDS = {
    "IR": "internal_reference_number",
    "XR": "external_reference_number",
    "RC": "ircs",
    "NA": "vessel_name",
    "TN": "trip_number",
}
_COUNTRY_FIELDS = {"FS": "flag_state", "FR": "from_country", "AD": "destination_country"}
_NO_COUNTRY = "X"
_MESSAGE_TYPES = ("POS", "MAN", "ENT", "EXI")
_NETWORKS = {
    "CEL": "CELLULAR",
    "GSM": "CELLULAR",
    "SAT": "SATELLITE",
    "VAR": "SATELLITE",
    "IRI": "SATELLITE",
}
_DECIMAL_PATTERN = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)"  # ASCII digits; no exponent, NaN, inf
_DECIMAL = re.compile(_DECIMAL_PATTERN)
_DEGREES_MINUTES = re.compile(r"([NSEW])([0-9]{2,3})([0-9]{2})")
_DIGITS8 = re.compile(r"[0-9]{8}")
_DIGITS4 = re.compile(r"[0-9]{4}")
# (hemisphere letters, negative letter, maximum degrees) of the degrees-and-minutes fields
_DM_AXES = {"LA": ("NS", "S", 90), "LO": ("EW", "W", 180)}
_DECIMAL_RANGES = {
    "LT": (-90.0, 90.0),
    "LG": (-180.0, 180.0),
    "SP": (0.0, np.inf),
    "CO": (0.0, 360.0),
}
_SHOWN_CHARS = 300
_CHUNK_LINES = 65_536


class NafError(ValueError):
    """A malformed NAF record: `field` is the offending code (SR/ER for the envelope)."""

    def __init__(self, field: str, detail: str, record: str) -> None:
        self.field = field
        self.detail = detail
        self.record = record
        shown = record if len(record) <= _SHOWN_CHARS else record[:_SHOWN_CHARS] + "..."
        super().__init__(f"{field}: {detail} in NAF record {shown!r}")


@dataclass(frozen=True, slots=True)
class NafLineError:
    """A line `parse_lines` refused: what the quarantine keeps."""

    line_number: int
    line: str
    message: str
    field: str


# --------------------------------------------------------------------------- one record


def parse_line(line: str) -> dict[str, Any]:
    """Parse one NAF record into position fields (keys: `columns.POSITION_COLUMNS` minus
    `line_number`; `datetime_utc` is an aware UTC datetime, absent values are None).

    Raises `NafError` naming the field code and the record when the record is malformed.
    """
    fields = _fields(line)
    message_type = fields.get("TM")
    if message_type is not None and message_type not in _MESSAGE_TYPES:
        raise NafError("TM", f"unhandled message type {message_type!r}", line)
    result: dict[str, Any] = {name: fields.get(code) for code, name in _TEXT_FIELDS.items()}
    result["datetime_utc"] = _date_time(fields.get("DA"), fields.get("TI"), line)
    for code, name in _COUNTRY_FIELDS.items():
        result[name] = _country(code, fields.get(code), line)
    decimals = {
        code: _decimal(code, fields[code], line) for code in _DECIMAL_RANGES if code in fields
    }
    latitude = _degrees_minutes("LA", fields["LA"], line) if "LA" in fields else decimals.get("LT")
    longitude = _degrees_minutes("LO", fields["LO"], line) if "LO" in fields else decimals.get("LG")
    if latitude is None:
        raise NafError("LT", "no latitude (LT or LA)", line)
    if longitude is None:
        raise NafError("LG", "no longitude (LG or LO)", line)
    result["latitude"] = latitude
    result["longitude"] = longitude
    speed = decimals.get("SP")
    result["speed"] = None if speed is None else speed / 10
    result["course"] = decimals.get("CO")
    result["message_type"] = message_type
    result["is_manual"] = message_type == "MAN"
    network = fields.get("MS")
    result["network_type"] = None if network is None else _NETWORKS.get(network)
    return {name: result[name] for name in POSITION_COLUMNS if name != "line_number"}


def _fields(line: str) -> dict[str, str]:
    """The used fields of a record, first non-empty occurrence of each."""
    record = line.strip(_WHITESPACE)
    if not record:
        raise NafError("SR", "empty record", line)
    if not record.startswith("//SR//"):
        raise NafError("SR", "does not start with //SR//", line)
    if record.endswith("//ER//"):
        body = record[6:-6]
    elif record.endswith("//ER"):
        body = record[6:-4]
    else:
        raise NafError("ER", "does not end with //ER// (or //ER)", line)
    fields: dict[str, str] = {}
    # Split from the right: in `//RC///IR/X//` the empty RC value keeps its slash and IR stays IR.
    for segment in body.rsplit("//"):
        code, slash, value = segment.partition("/")
        if not slash:
            if segment in _ENVELOPE:
                raise NafError(segment, "several records on one line (SR/ER inside)", line)
            continue  # a segment without "/" carries nothing
        if value and code in _USED_CODES:
            if "/" in value:
                raise NafError(code, f"value {value!r} contains '/'", line)
            fields.setdefault(code, value)
    if not fields:
        raise NafError("SR", "no fields", line)
    return fields


def _date_time(date: str | None, time: str | None, line: str) -> datetime:
    if date is None:
        raise NafError("DA", "no date field", line)
    if time is None:
        raise NafError("TI", "no time field", line)
    if not _DIGITS8.fullmatch(date):
        raise NafError("DA", f"{date!r} is not YYYYMMDD", line)
    if not _DIGITS4.fullmatch(time):
        raise NafError("TI", f"{time!r} is not HHMM", line)
    year, month, day = int(date[:4]), int(date[4:6]), int(date[6:])
    hour, minute = int(time[:2]), int(time[2:])
    if year < 1 or not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
        raise NafError("DA", f"{date!r} is not a date", line)
    if hour > 23 or minute > 59:
        raise NafError("TI", f"{time!r} is not a time of day", line)
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _country(code: str, value: str | None, line: str) -> str | None:
    if value is None or value == _NO_COUNTRY:
        return None
    alpha2 = _ALPHA3_TO_ALPHA2.get(value)
    if alpha2 is None:
        raise NafError(code, f"{value!r} is not an ISO 3166-1 alpha-3 country", line)
    return alpha2


def _decimal(code: str, value: str, line: str) -> float:
    if not _DECIMAL.fullmatch(value):
        raise NafError(code, f"{value!r} is not a plain decimal number", line)
    number = float(value)
    low, high = _DECIMAL_RANGES[code]
    if not low <= number <= high:
        raise NafError(code, f"{value!r} is outside [{low:g}, {high:g}]", line)
    return number


def _degrees_minutes(code: str, value: str, line: str) -> float:
    letters, negative, limit = _DM_AXES[code]
    match = _DEGREES_MINUTES.fullmatch(value)
    if match is None or match[1] not in letters:
        raise NafError(code, f"{value!r} is not {letters[0]}/{letters[1]} + DD(D)MM", line)
    degrees, minutes = int(match[2]), int(match[3])
    if minutes > 59:
        raise NafError(code, f"{value!r}: minutes must be 00-59", line)
    if degrees > limit or (degrees == limit and minutes > 0):
        raise NafError(code, f"{value!r}: beyond {limit} degrees", line)
    number = degrees + minutes / 60
    return -number if match[1] == negative else number


# --------------------------------------------------------------------------- many records


def parse_lines(
    lines: Iterable[str] | pa.Array,
    first_line_number: int = 1,
    chunk_lines: int = _CHUNK_LINES,
) -> tuple[pd.DataFrame, list[NafLineError]]:
    """Parse NAF lines into a positions frame (`columns.POSITION_DTYPES`) and the refused lines.

    `lines`: Python strings, or an Arrow string array (what the inbox reads: no Python string
    per line). Blank lines are skipped (they are not records). Streams `lines` in chunks; for
    files too big to hold as one frame, use `iter_parse_lines`.
    """
    frames: list[pd.DataFrame] = []
    errors: list[NafLineError] = []
    for frame, chunk_errors in iter_parse_lines(lines, first_line_number, chunk_lines):
        frames.append(frame)
        errors.extend(chunk_errors)
    if not frames:
        return empty_positions(), errors
    if len(frames) == 1:
        return frames[0], errors
    return pd.concat(frames, ignore_index=True), errors


def iter_parse_lines(
    lines: Iterable[str] | pa.Array,
    first_line_number: int = 1,
    chunk_lines: int = _CHUNK_LINES,
) -> Iterator[tuple[pd.DataFrame, list[NafLineError]]]:
    """`parse_lines`, one (frame, errors) per chunk of `chunk_lines` lines, for streaming."""
    if isinstance(lines, pa.Array):
        for offset in range(0, len(lines), chunk_lines):
            yield _parse_chunk(lines.slice(offset, chunk_lines), first_line_number + offset)
        return
    chunk: list[str] = []
    start = first_line_number
    for line in lines:
        chunk.append(line)
        if len(chunk) >= chunk_lines:
            yield _parse_chunk(pa.array(chunk, pa.string()), start)
            start += len(chunk)
            chunk = []
    if chunk:
        yield _parse_chunk(pa.array(chunk, pa.string()), start)


def empty_positions() -> pd.DataFrame:
    """A positions frame with no rows and the documented dtypes."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in POSITION_DTYPES.items()})


_USED_PREFIXES = pa.array([code + "/" for code in _USED_CODES])
_CODE = {code: index for index, code in enumerate(_USED_CODES)}
_ALPHA3 = pa.array([*_ALPHA3_TO_ALPHA2, _NO_COUNTRY])
_ALPHA2 = pa.array([*_ALPHA3_TO_ALPHA2.values(), None], pa.string())
_NETWORK_CODES = pa.array(list(_NETWORKS))
_NETWORK_NAMES = pa.array(list(_NETWORKS.values()))
_MESSAGE_TYPE_SET = pa.array(_MESSAGE_TYPES)
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_US_PER_MINUTE = 60_000_000


def _parse_chunk(
    lines: pa.Array, first_line_number: int
) -> tuple[pd.DataFrame, list[NafLineError]]:
    """Vectorised checks and conversions; rows any check doubts go through `parse_line`."""
    n = len(lines)
    record = pc.utf8_trim(lines, _WHITESPACE)
    blank = _np_bool(pc.equal(record, ""))
    envelope_ok = pc.and_(
        pc.starts_with(record, "//SR//"),
        pc.or_(pc.ends_with(record, "//ER//"), pc.ends_with(record, "//ER")),
    )
    bad = ~_np_bool(envelope_ok)
    # For a //ER// ending this keeps a trailing "//", which only adds an empty segment.
    body = pc.utf8_slice_codeunits(record, 6, -4)
    segments = pc.split_pattern(body, "//", max_splits=1 << 30, reverse=True)
    flat = pc.list_flatten(segments)
    parent = pc.list_parent_indices(segments).to_numpy()
    value = pc.utf8_slice_codeunits(flat, 3)
    code = pc.index_in(pc.utf8_slice_codeunits(flat, 0, 3), value_set=_USED_PREFIXES)
    used = _np_bool(pc.and_(pc.is_valid(code), pc.greater(pc.binary_length(value), 0)))
    with_slash = _np_bool(pc.greater_equal(pc.find_substring(value, "/"), 0))
    misplaced = _np_bool(pc.is_in(flat, value_set=pa.array(_ENVELOPE)))
    bad[parent[misplaced | (used & with_slash)]] = True
    has_fields = np.zeros(n, bool)
    has_fields[parent[used]] = True
    bad |= ~has_fields

    # First non-empty occurrence of each used code in each row.
    segment_count = len(flat)
    flat_first = np.full(n * len(_USED_CODES), segment_count, np.int64)
    code_numbers = pc.fill_null(code, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    np.minimum.at(
        flat_first, parent[used] * len(_USED_CODES) + code_numbers[used], np.flatnonzero(used)
    )
    first = flat_first.reshape(n, len(_USED_CODES))

    def column(code_name: str) -> pa.Array:
        index = first[:, _CODE[code_name]]
        missing = index == segment_count
        return value.take(pa.array(np.where(missing, 0, index), mask=missing))

    out: dict[str, Any] = {name: column(code_name) for code_name, name in _TEXT_FIELDS.items()}

    message_type = column("TM")
    bad |= _present_and_not(message_type, pc.is_in(message_type, value_set=_MESSAGE_TYPE_SET))
    out["message_type"] = message_type
    out["is_manual"] = _np_bool(pc.equal(message_type, "MAN"))

    for code_name, name in _COUNTRY_FIELDS.items():
        text = column(code_name)
        index = pc.index_in(text, value_set=_ALPHA3)
        bad |= _present_and_not(text, pc.is_valid(index))
        out[name] = _ALPHA2.take(index)

    out["datetime_utc"], date_bad = _date_times(column("DA"), column("TI"))
    bad |= date_bad

    numbers: dict[str, np.ndarray] = {}
    for code_name, (low, high) in _DECIMAL_RANGES.items():
        text = column(code_name)
        ok = pc.match_substring_regex(text, f"^{_DECIMAL_PATTERN}$")
        bad |= _present_and_not(text, ok)
        number = _np_float(pc.cast(pc.if_else(pc.fill_null(ok, False), text, None), pa.float64()))
        with np.errstate(invalid="ignore"):
            bad |= (number < low) | (number > high)
        numbers[code_name] = number
    for code_name, (letters, negative, limit) in _DM_AXES.items():
        text = column(code_name)
        ok = pc.match_substring_regex(text, f"^[{letters}][0-9]{{4,5}}$")
        bad |= _present_and_not(text, ok)
        digits = pc.cast(
            pc.utf8_slice_codeunits(pc.if_else(pc.fill_null(ok, False), text, None), 1), pa.int64()
        )
        packed = pc.fill_null(digits, 0).to_numpy(zero_copy_only=False)
        degrees, minutes = packed // 100, packed % 100
        bad |= (minutes > 59) | (degrees > limit) | ((degrees == limit) & (minutes > 0))
        magnitude = degrees + minutes / 60
        sign = np.where(_np_bool(pc.starts_with(text, negative)), -1.0, 1.0)
        numbers[code_name] = np.where(_np_bool(pc.is_valid(digits)), sign * magnitude, np.nan)
    latitude = np.where(np.isnan(numbers["LA"]), numbers["LT"], numbers["LA"])
    longitude = np.where(np.isnan(numbers["LO"]), numbers["LG"], numbers["LO"])
    bad |= np.isnan(latitude) | np.isnan(longitude)
    out["latitude"], out["longitude"] = latitude, longitude
    out["speed"] = numbers["SP"] / 10
    out["course"] = numbers["CO"]
    out["network_type"] = _NETWORK_NAMES.take(pc.index_in(column("MS"), value_set=_NETWORK_CODES))

    bad &= ~blank
    keep = ~bad & ~blank
    out["line_number"] = np.arange(first_line_number, first_line_number + n, dtype=np.int64)
    frame = _frame(out, keep)
    errors: list[NafLineError] = []
    rescued: list[dict[str, Any]] = []
    for index in np.flatnonzero(bad):
        line = str(lines[int(index)].as_py())
        try:
            row = parse_line(line)
        except NafError as error:
            errors.append(
                NafLineError(first_line_number + int(index), line, str(error), error.field)
            )
        else:  # the vectorised checks were stricter than the rules: trust parse_line
            row["line_number"] = first_line_number + int(index)
            rescued.append(row)
    if rescued:
        extra = _typed(pd.DataFrame(rescued, columns=list(POSITION_COLUMNS)))
        frame = pd.concat([frame, extra], ignore_index=True)
        frame = frame.sort_values("line_number", kind="stable", ignore_index=True)
    return frame, errors


def _date_times(date: pa.Array, time: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """DA + TI as datetime64[us] (NaT where bad) and the rows where they are missing or invalid."""
    date_ok = pc.fill_null(pc.match_substring_regex(date, r"^[0-9]{8}$"), False)
    time_ok = pc.fill_null(pc.match_substring_regex(time, r"^[0-9]{4}$"), False)
    ok = _np_bool(date_ok) & _np_bool(time_ok)
    day_number = pc.cast(pc.if_else(date_ok, date, "19700101"), pa.int64()).to_numpy()
    time_number = pc.cast(pc.if_else(time_ok, time, "0000"), pa.int64()).to_numpy()
    year, month, day = day_number // 10_000, day_number // 100 % 100, day_number % 100
    hour, minute = time_number // 100, time_number % 100
    month_ok = (month >= 1) & (month <= 12)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    days = _DAYS_IN_MONTH[np.where(month_ok, month, 1)] + ((month == 2) & leap)
    ok &= (year >= 1) & month_ok & (day >= 1) & (day <= days) & (hour <= 23) & (minute <= 59)
    months = np.where(ok, (year - 1970) * 12 + month - 1, 0).astype("datetime64[M]")
    stamp = months.astype("datetime64[D]").astype("datetime64[us]")
    offset = ((day - 1) * 1440 + hour * 60 + minute) * _US_PER_MINUTE
    stamp = stamp + np.where(ok, offset, 0).astype("timedelta64[us]")
    return np.where(ok, stamp, np.datetime64("NaT", "us")), ~ok


def _present_and_not(values: pa.Array, ok: pa.Array) -> np.ndarray:
    return _np_bool(pc.and_(pc.is_valid(values), pc.invert(pc.fill_null(ok, False))))


def _np_bool(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def _np_float(values: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(values, np.nan).to_numpy(zero_copy_only=False), dtype=float)


def _frame(columns: dict[str, Any], keep: np.ndarray) -> pd.DataFrame:
    mask = pa.array(keep)
    data: dict[str, Any] = {}
    for name, dtype in POSITION_DTYPES.items():
        values = columns[name]
        if isinstance(values, pa.Array):
            data[name] = pd.Series(values.filter(mask).to_pandas(), dtype=dtype)
        elif dtype.startswith("datetime64"):
            data[name] = pd.Series(values[keep]).dt.tz_localize("UTC")
        else:
            data[name] = pd.Series(values[keep], dtype=dtype)
    return pd.DataFrame(data)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["datetime_utc"] = pd.to_datetime(frame["datetime_utc"], utc=True).dt.as_unit("us")
    for name, dtype in POSITION_DTYPES.items():
        if name != "datetime_utc":
            frame[name] = frame[name].astype(dtype)
    return frame
