"""NAF parser: the shared vectors, the batch parser against the one-record parser, edge cases."""

from __future__ import annotations

import contextlib
import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from platform_assets.positions.columns import POSITION_COLUMNS, POSITION_DTYPES
from platform_assets.positions.naf import NafError, parse_line, parse_lines

BASE = (
    "//SR//AD/FRA//FR/FRA//TM/POS//RC/FQWE//IR/FRA000987654//XR/LO123456//NA/ALBATROS II"
    "//FS/FRA//DA/20240105//TI/0615//LT/+47.1234//LG/-003.4567//SP/085//CO/270//ER//"
)


def _vectors(shared_data_dir: Path) -> list[dict[str, Any]]:
    return json.loads((shared_data_dir / "naf" / "expected.json").read_text(encoding="utf-8"))


def _expected_fields(vector: dict[str, Any]) -> dict[str, Any]:
    expected = dict(vector["expected"])
    expected["datetime_utc"] = datetime.fromisoformat(expected.pop("date_time"))
    return expected


def _differences(got: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    out = []
    for key, want in expected.items():
        have = got[key]
        if isinstance(want, float) or isinstance(have, float):
            if want is None or have is None or not math.isclose(have, want, abs_tol=1e-7):
                out.append(f"{key}: {have!r} != {want!r}")
        elif have != want:
            out.append(f"{key}: {have!r} != {want!r}")
    return out


def test_every_shared_vector(shared_data_dir: Path) -> None:
    vectors = _vectors(shared_data_dir)
    assert len(vectors) == 67
    assert sum(not v["error"] for v in vectors) == 30
    failures = []
    for vector in vectors:
        try:
            got = parse_line(vector["message"])
        except NafError as error:
            if not vector["error"]:
                failures.append(f"{vector['id']}: unexpected {error}")
                continue
            named = re.match(r"([A-Z]{2}): ", vector.get("reason") or "")
            if named and error.field != named[1]:
                failures.append(f"{vector['id']}: names {error.field}, reason {vector['reason']}")
            if error.field not in str(error) or repr(vector["message"][:40])[1:-1] not in str(
                error
            ):
                failures.append(f"{vector['id']}: message lacks field or record: {error}")
            continue
        if vector["error"]:
            failures.append(f"{vector['id']}: parsed, should fail ({vector['reason']})")
            continue
        failures += [f"{vector['id']}: {d}" for d in _differences(got, _expected_fields(vector))]
    assert failures == []


def test_messages_file_through_the_batch_parser(shared_data_dir: Path) -> None:
    vectors = _vectors(shared_data_dir)
    lines = (shared_data_dir / "naf" / "messages.txt").read_text(encoding="utf-8").split("\n")
    lines = lines[: len(vectors)]
    frame, errors = parse_lines(lines, chunk_lines=16)
    assert dict(frame.dtypes.astype(str)) == POSITION_DTYPES
    good = {i + 1: v for i, v in enumerate(vectors) if not v["error"]}
    assert frame["line_number"].tolist() == sorted(good)
    for row in frame.to_dict("records"):
        expected = _expected_fields(good[row["line_number"]])
        got = {k: (None if _missing(v) else v) for k, v in row.items()}
        got["datetime_utc"] = row["datetime_utc"].to_pydatetime()
        assert _differences(got, expected) == [], row["line_number"]
    # the empty line is not a record: skipped, not quarantined
    refused = {i + 1 for i, v in enumerate(vectors) if v["error"] and v["message"].strip()}
    assert {e.line_number for e in errors} == refused
    assert all(e.line == lines[e.line_number - 1] and e.field in e.message for e in errors)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


@pytest.mark.parametrize(
    ("line", "field"),
    [
        (BASE.replace("//ER//", "//ER////SR//TM/POS//ER//"), "ER"),  # two records, one line
        (BASE.replace("NA/ALBATROS II", "NA/SAINT/MALO"), "NA"),
        (BASE.replace("LT/+47.1234", "LT/1e1"), "LT"),
        (BASE.replace("LT/+47.1234", "LT/NaN"), "LT"),
        (BASE.replace("LT/+47.1234", "LT/4\u0667"), "LT"),  # non-ASCII digit
        (BASE.replace("SP/085", "SP/1_0"), "SP"),
        (BASE.replace("DA/20240105", "DA/20240100"), "DA"),
        (BASE.replace("TI/0615", "TI/615"), "TI"),
        (BASE.replace("TM/POS", "TM/pos"), "TM"),
        (BASE.replace("//ER//", "//LA/E4512//ER//"), "LA"),  # hemisphere on the wrong axis
        (BASE.replace("//ER//", "//LA/N9001//ER//"), "LA"),
        ("\ufeff" + BASE, "SR"),  # a byte-order mark is not whitespace
    ],
)
def test_refusals_name_the_field(line: str, field: str) -> None:
    with pytest.raises(NafError) as caught:
        parse_line(line)
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)
    _, errors = parse_lines([line])
    assert [e.field for e in errors] == [field]


def test_whitespace_endings_and_empty_values() -> None:
    base = parse_line(BASE)
    assert parse_line(" \t" + BASE + "\r\n") == base
    assert parse_line(BASE[: -len("//")]) == base  # //ER ending
    assert parse_line(BASE.replace("RC/FQWE", "RC/"))["ircs"] is None
    assert parse_line(BASE.replace("//ER//", "//LA/S0030//LO/W17959//ER//"))["latitude"] == -0.5
    assert parse_line(BASE.replace("LG/-003.4567", "LG/180"))["longitude"] == 180.0
    assert base["datetime_utc"] == datetime(2024, 1, 5, 6, 15, tzinfo=UTC)


def test_batch_parser_streams_chunks_and_skips_blank_lines() -> None:
    lines = [BASE + "\n", "   \n", BASE.replace("TI/0615", "TI/0616"), "garbage", BASE]
    frame, errors = parse_lines(iter(lines), first_line_number=10, chunk_lines=2)
    assert frame["line_number"].tolist() == [10, 12, 14]
    assert [(e.line_number, e.field) for e in errors] == [(13, "SR")]
    empty, none = parse_lines([])
    assert list(empty.columns) == list(POSITION_COLUMNS) and len(empty) == 0 and none == []


# --- the vectorised batch parser agrees with the one-record parser on arbitrary records ---

_CODES = ["TM", "DA", "TI", "IR", "XR", "RC", "NA", "FS", "FR", "AD", "TN", "LT", "LG"]
_CODES += ["LA", "LO", "SP", "CO", "MS", "RD", "ZZ", "TEST", "lt"]
_VALUES = st.one_of(
    st.sampled_from(
        [
            "POS",
            "MAN",
            "ENT",
            "EXI",
            "ACK",
            "20240229",
            "20230229",
            "20241231",
            "0000",
            "2359",
            "2400",
            "1260",
            "FRA",
            "X",
            "GBR",
            "ZZZ",
            "fra",
            "+47.5",
            "-3.25",
            ".5",
            "5.",
            "95",
            "-181",
            "360",
            "361",
            "-0",
            "N4512",
            "S9000",
            "N9001",
            "W17959",
            "E18100",
            "E4512",
            "SAT",
            "GSM",
            "FOO",
            "",
            "A/B",
            "1e2",
            "inf",
        ]
    ),  # fmt: skip
    st.text(st.sampled_from("0123456789.+-NSEWAZ /"), max_size=8),
)
_FIELDS = st.lists(st.tuples(st.sampled_from(_CODES), _VALUES), max_size=14)
_ENDINGS = st.sampled_from(["//ER//", "//ER", "//ER//\r\n", "", "//ER////SR//ER//"])


@st.composite
def _records(draw: st.DrawFn) -> str:
    fields = [("DA", "20240105"), ("TI", "0615"), ("LT", "47.5"), ("LG", "-3.5")]
    fields = draw(st.permutations(fields + draw(_FIELDS)))
    body = "//".join(f"{code}/{value}" for code, value in fields)
    start = draw(st.sampled_from(["//SR//", "//SR//", " //SR//", "//sr//", "/SR//"]))
    return start + body + draw(_ENDINGS)


@settings(max_examples=120, deadline=None)
@given(st.lists(_records(), min_size=1, max_size=12))
def test_batch_parser_equals_one_record_parser(lines: list[str]) -> None:
    frame, errors = parse_lines(lines, chunk_lines=5)
    parsed = {int(r["line_number"]): r for r in frame.to_dict("records")}
    refused = {e.line_number: e for e in errors}
    for number, line in enumerate(lines, start=1):
        try:
            want = parse_line(line)
        except NafError as error:
            assert number in refused and refused[number].message == str(error)
            continue
        row = parsed[number]
        got = {k: (None if _missing(v) else v) for k, v in row.items() if k != "line_number"}
        got["datetime_utc"] = row["datetime_utc"].to_pydatetime()
        assert got == want


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60))
def test_any_text_parses_or_raises_naf_error(text: str) -> None:
    with contextlib.suppress(NafError):
        parse_line("//SR//" + text + "//ER//")
    parse_lines([text, "//SR//" + text])


def test_bundled_sample_files_are_the_generator_output() -> None:
    from platform_assets.samples.positions import SAMPLE_DIR, sample_naf_files

    files = sample_naf_files()
    refused = 0
    for name, lines in files.items():
        path = SAMPLE_DIR / name
        assert path.read_text(encoding="utf-8") == "".join(line + "\n" for line in lines), name
        frame, errors = parse_lines(lines)
        refused += len(errors)
        assert len(frame) > 300
    assert refused == 3
