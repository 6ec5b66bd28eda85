"""Readers for the file-based reference tables (species, gears, ports, districts, fleet segments).

Each reader validates its file completely before returning, so a bad row stops the load with a
message naming the file, the line and the reason instead of landing in the warehouse. Pure code:
files in, pandas out; no Dagster, no database.

Output dtypes: text columns are `object` holding `str` (or `None` where a value may be missing),
floats `float64`, booleans `bool`, integers `int64`, arrays Python `list[str]`.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

if TYPE_CHECKING:
    import pandas as pd

ColumnKind = Literal["str", "float", "bool", "list", "int"]
Check = Callable[[Any], str | None]

#: Where a value in a CSV list column is split: `27.8.a;27.7.e`.
LIST_SEPARATOR = ";"

#: Maritime facades: mainland (MEMN, NAMO, SA, MED) and overseas sea basins.
FACADES = frozenset({"MEMN", "NAMO", "SA", "MED", "ANTILLES", "GUYANE", "SOI", "SPM"})

_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})

_SPECIES_CODE = re.compile(r"^[A-Z]{3}$")
_GEAR_CODE = re.compile(r"^[A-Z][A-Z0-9]{0,3}$")
_LOCODE = re.compile(r"^[A-Z]{2}[A-Z2-9]{3}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_DISTRICT = re.compile(r"^[A-Z]{2}$")
_FAO_AREA = re.compile(r"^\d{2}(\.[0-9a-z]+)*$")


class ReferenceSourceError(ValueError):
    """A reference source cannot be trusted; the message names the file (or source) and the row."""


@dataclass(frozen=True)
class ColumnSpec:
    """One output column: its type, whether it may be empty, and a domain check on the value."""

    name: str
    kind: ColumnKind
    nullable: bool = False
    check: Check | None = None


@dataclass(frozen=True)
class TableSpec:
    """The columns of a reference table (in output order) and its key."""

    name: str
    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _pattern(regex: re.Pattern[str], what: str) -> Check:
    def check(value: Any) -> str | None:
        return None if regex.match(value) else f"bad {what} {value!r}"

    return check


def _each(regex: re.Pattern[str], what: str) -> Check:
    def check(values: Any) -> str | None:
        bad = [v for v in values if not regex.match(v)]
        return f"bad {what} {', '.join(map(repr, bad))}" if bad else None

    return check


def _between(low: float, high: float) -> Check:
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"{value} out of range [{low:g}, {high:g}]"

    return check


def _facade(value: Any) -> str | None:
    return (
        None
        if value in FACADES
        else f"unknown facade {value!r} (known: {', '.join(sorted(FACADES))})"
    )


SPECIES = TableSpec(
    "species",
    (
        ColumnSpec("species_code", "str", check=_pattern(_SPECIES_CODE, "FAO 3-alpha code")),
        ColumnSpec("scientific_name", "str"),
        ColumnSpec("english_name", "str"),
        ColumnSpec("french_name", "str", nullable=True),
        ColumnSpec("isscaap_group", "str", nullable=True),
    ),
    key=("species_code",),
)

FISHING_GEAR_CODES = TableSpec(
    "fishing_gear_codes",
    (
        ColumnSpec("gear_code", "str", check=_pattern(_GEAR_CODE, "ISSCFG gear code")),
        ColumnSpec("gear_name", "str"),
        ColumnSpec("gear_group", "str"),
    ),
    key=("gear_code",),
)

PORTS = TableSpec(
    "ports",
    (
        ColumnSpec("locode", "str", check=_pattern(_LOCODE, "UN/LOCODE")),
        ColumnSpec("port_name", "str"),
        ColumnSpec("country_code_iso2", "str", check=_pattern(_COUNTRY, "ISO 3166 alpha-2 code")),
        ColumnSpec("latitude", "float", check=_between(-90.0, 90.0)),
        ColumnSpec("longitude", "float", check=_between(-180.0, 180.0)),
        ColumnSpec("region", "str", nullable=True),
        ColumnSpec("facade", "str", nullable=True, check=_facade),
        ColumnSpec("fao_areas", "list", check=_each(_FAO_AREA, "FAO area")),
        ColumnSpec("is_active", "bool"),
    ),
    key=("locode",),
)

DISTRICTS = TableSpec(
    "districts",
    (
        ColumnSpec("district_code", "str", check=_pattern(_DISTRICT, "district code")),
        ColumnSpec("district_name", "str"),
        ColumnSpec("department", "str"),
        ColumnSpec("facade", "str", check=_facade),
    ),
    key=("district_code",),
)

FLEET_SEGMENTS = TableSpec(
    "fleet_segments",
    (
        ColumnSpec("year", "int", check=_between(1900, 2200)),
        ColumnSpec("segment", "str"),
        ColumnSpec("segment_name", "str"),
        ColumnSpec("gears", "list", check=_each(_GEAR_CODE, "gear code")),
        ColumnSpec("fao_areas", "list", check=_each(_FAO_AREA, "FAO area")),
        ColumnSpec("target_species", "list", check=_each(_SPECIES_CODE, "species code")),
        # The control plan scores impact from 1 (low) to 4 (high).
        ColumnSpec("impact_risk_factor", "float", check=_between(1.0, 4.0)),
    ),
    key=("year", "segment"),
)


def default_data_dir() -> Path:
    """The reference files shipped with the package, used by the embedded default and tests."""
    return Path(__file__).resolve().parent / "data"


def read_species(path: str | Path) -> pd.DataFrame:
    """FAO ASFIS species: species_code (key), scientific/english/french names, ISSCAAP group."""
    return _read_csv(Path(path), SPECIES)


def read_fishing_gear_codes(path: str | Path) -> pd.DataFrame:
    """ISSCFG gear codes: gear_code (key), gear_name, gear_group."""
    return _read_csv(Path(path), FISHING_GEAR_CODES)


def read_ports(path: str | Path) -> pd.DataFrame:
    """Ports by UN/LOCODE with position, facade and FAO areas (a `;`-separated list in the file)."""
    return _read_csv(Path(path), PORTS, row_check=_port_country_matches_locode)


def read_districts(path: str | Path) -> pd.DataFrame:
    """French maritime districts (quartiers maritimes): code (key), name, department, facade."""
    return _read_csv(Path(path), DISTRICTS)


def read_fleet_segments(directory: str | Path) -> pd.DataFrame:
    """All `<year>.yaml` files of a folder as one table keyed by (year, segment).

    The year comes from the file name and, if the file also says `year:`, both must agree.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ReferenceSourceError(f"{directory}: not a directory of fleet segment files")
    files = sorted(p for p in directory.iterdir() if p.suffix in {".yaml", ".yml"})
    if not files:
        raise ReferenceSourceError(f"{directory}: no fleet segment files (<year>.yaml)")
    rows: list[tuple[str, dict[str, Any]]] = []
    for file in files:
        rows.extend(_fleet_segment_rows(file))
    return _finish(str(directory), FLEET_SEGMENTS, rows)


# --- CSV --------------------------------------------------------------------------------------


def _read_csv(
    path: Path,
    spec: TableSpec,
    row_check: Callable[[Mapping[str, Any]], str | None] | None = None,
) -> pd.DataFrame:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReferenceSourceError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    with io.StringIO(_utf8_text(path, data), newline="") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        missing = [c for c in spec.column_names if c not in header]
        if missing:
            raise ReferenceSourceError(f"{path}: missing columns: {', '.join(missing)}")
        rows: list[tuple[str, dict[str, Any]]] = []
        for fields in reader:
            line = reader.line_num
            if not any(field.strip() for field in fields):
                continue
            if len(fields) != len(header):
                raise ReferenceSourceError(
                    f"{path} line {line}: {len(fields)} fields, the header has {len(header)}"
                )
            row = _parse_row(
                path, line, spec, dict(zip(header, fields, strict=True)), from_text=True
            )
            if row_check is not None and (reason := row_check(row)):
                raise ReferenceSourceError(f"{path} line {line}: {reason}")
            rows.append((f"line {line}", row))
    return _finish(str(path), spec, rows)


def _utf8_text(path: Path, data: bytes) -> str:
    """The file's text: UTF-8 (a BOM is allowed); any other encoding stops the load with the line,
    column and bytes at fault, as a decoding error from deep in the csv reader names none."""
    for bom, name in (
        (codecs.BOM_UTF32_LE, "UTF-32"),
        (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16"),
    ):
        if data.startswith(bom):
            raise ReferenceSourceError(
                f"{path} line 1: the file is {name} (byte order mark); save it as UTF-8"
            )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[line_start : exc.start].decode("utf-8", "replace")) + 1
        raise ReferenceSourceError(
            f"{path} line {line}: not UTF-8 at column {column} "
            f"(byte {data[exc.start : exc.end].hex(' ')}: {exc.reason}); save the file as UTF-8"
        ) from None


def _port_country_matches_locode(row: Mapping[str, Any]) -> str | None:
    locode, country = row["locode"], row["country_code_iso2"]
    if locode[:2] != country:
        return f"country_code_iso2 {country!r} does not match locode {locode!r}"
    return None


# --- YAML -------------------------------------------------------------------------------------


class _LineLoader(yaml.SafeLoader):
    """A safe loader that remembers the line of each mapping, so errors can point at it."""


def _construct_mapping_with_line(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping_with_line,  # type: ignore[arg-type]
)


def _fleet_segment_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ReferenceSourceError(f"{path}{where}: not valid YAML: {exc}") from exc
    except OSError as exc:
        raise ReferenceSourceError(f"{path}: cannot open: {exc.strerror or exc}") from exc

    year = _year_of(path, document)
    if isinstance(document, dict):
        if "segments" not in document:
            raise ReferenceSourceError(f"{path}: missing field: segments")
        entries = document["segments"]
    else:
        entries = document
    if not isinstance(entries, list):
        raise ReferenceSourceError(f"{path}: expected a list of segments")

    spec = FLEET_SEGMENTS
    rows: list[tuple[str, dict[str, Any]]] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ReferenceSourceError(f"{path}: segment #{index + 1} is not a mapping")
        line = int(entry.pop("__line__"))
        entry["year"] = year
        missing = [c for c in spec.column_names if c not in entry]
        if missing:
            raise ReferenceSourceError(f"{path} line {line}: missing fields: {', '.join(missing)}")
        rows.append(
            (f"{path.name} line {line}", _parse_row(path, line, spec, entry, from_text=False))
        )
    return rows


def _year_of(path: Path, document: Any) -> int:
    from_name = int(path.stem) if path.stem.isdigit() else None
    from_content = document.get("year") if isinstance(document, dict) else None
    if from_content is not None and (
        isinstance(from_content, bool) or not isinstance(from_content, int)
    ):
        raise ReferenceSourceError(f"{path}: bad year {from_content!r}")
    if from_name is not None and from_content is not None and from_name != from_content:
        raise ReferenceSourceError(
            f"{path}: the file name says year {from_name} but its content says {from_content}"
        )
    year = from_content if from_content is not None else from_name
    if year is None:
        raise ReferenceSourceError(f"{path}: no year: name the file <year>.yaml or add `year:`")
    return int(year)


# --- values -----------------------------------------------------------------------------------


def _parse_row(
    path: Path, line: int, spec: TableSpec, record: Mapping[str, Any], *, from_text: bool
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for column in spec.columns:
        raw = record.get(column.name)
        try:
            value = _parse_value(column, raw, from_text=from_text)
        except ValueError as exc:
            raise ReferenceSourceError(f"{path} line {line}: {exc}") from None
        if value is None and (not column.nullable or column.name in spec.key):
            what = "key" if column.name in spec.key else "value"
            raise ReferenceSourceError(f"{path} line {line}: missing {what} {column.name}")
        if value is not None and column.check is not None and (reason := column.check(value)):
            raise ReferenceSourceError(f"{path} line {line}: {reason} in column {column.name}")
        row[column.name] = value
    return row


def _parse_value(column: ColumnSpec, raw: Any, *, from_text: bool) -> Any:
    """One cell -> its Python value, or None when empty; ValueError with the reason otherwise."""
    if isinstance(raw, str):
        raw = raw.strip()
        if raw == "" and column.kind != "list":
            return None
    if raw is None:
        return [] if column.kind == "list" and from_text else None
    kind = column.kind
    if kind == "str":
        if not isinstance(raw, str):
            raise ValueError(f"bad text {raw!r} in column {column.name}: quote it")
        return raw
    if kind == "float":
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise ValueError(f"bad float {raw!r} in column {column.name}")
        try:
            number = float(raw)
        except ValueError:
            raise ValueError(f"bad float {raw!r} in column {column.name}") from None
        if not math.isfinite(number):
            raise ValueError(f"bad float {raw!r} in column {column.name}: not a finite number")
        return number
    if kind == "int":
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            raise ValueError(f"bad integer {raw!r} in column {column.name}")
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"bad integer {raw!r} in column {column.name}") from None
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in _TRUE:
            return True
        if isinstance(raw, str) and raw.lower() in _FALSE:
            return False
        raise ValueError(f"bad boolean {raw!r} in column {column.name} (use true or false)")
    if kind == "list":
        return _parse_list(column, raw)
    raise AssertionError(f"unknown column kind {kind}")


def _parse_list(column: ColumnSpec, raw: Any) -> list[str]:
    if isinstance(raw, str):
        items = [item.strip() for item in raw.split(LIST_SEPARATOR)] if raw else []
        if any(item == "" for item in items):
            raise ValueError(f"empty item in list {raw!r} in column {column.name}")
        return items
    if isinstance(raw, list):
        bad = [item for item in raw if not isinstance(item, str) or not item.strip()]
        if bad:
            # An unquoted 27.10 in YAML is the float 27.1: refuse rather than guess.
            raise ValueError(
                f"bad list item {', '.join(map(repr, bad))} in column {column.name}: "
                "items must be quoted text"
            )
        return [item.strip() for item in raw]
    raise ValueError(f"bad list {raw!r} in column {column.name}")


# --- frame ------------------------------------------------------------------------------------


def _finish(
    source: str, spec: TableSpec, rows: Sequence[tuple[str, dict[str, Any]]]
) -> pd.DataFrame:
    _check_unique_keys(source, spec, rows)
    return _frame_from_rows(spec, (row for _, row in rows))


def _check_unique_keys(
    source: str, spec: TableSpec, rows: Sequence[tuple[str, dict[str, Any]]]
) -> None:
    seen: dict[tuple[Any, ...], list[str]] = {}
    for where, row in rows:
        seen.setdefault(tuple(row[k] for k in spec.key), []).append(where)
    duplicates = {key: places for key, places in seen.items() if len(places) > 1}
    if duplicates:
        described = "; ".join(
            f"{'/'.join(map(str, key))} ({', '.join(places)})" for key, places in duplicates.items()
        )
        raise ReferenceSourceError(f"{source}: duplicate keys ({', '.join(spec.key)}): {described}")


def _frame_from_rows(spec: TableSpec, rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Parsed rows -> a frame with the spec's columns, in order, with their fixed dtypes."""
    import pandas as pd  # here, not at import: the asset definitions import this module

    materialised = list(rows)
    data: dict[str, pd.Series] = {}
    for column in spec.columns:
        values = [row[column.name] for row in materialised]
        data[column.name] = pd.Series(values, dtype=_DTYPES[column.kind])
    return pd.DataFrame(data, columns=spec.column_names)


_DTYPES: dict[ColumnKind, str] = {
    "str": "object",
    "float": "float64",
    "bool": "bool",
    "int": "int64",
    "list": "object",
}
