"""The NAF inbox read as Arrow lines: same lines, numbers and raw bytes as a plain split, and the
parser gives the same result on them as on Python strings."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from platform_assets.positions import naf
from platform_assets.positions.inbox import read_line_batches

GOOD = "//SR//TM/POS//IR/FRA000000001//DA/20240501//TI/1203//LT/47.5//LG/-3.1//NA/Élan//ER//"
LINES = [
    GOOD,
    "",
    "//SR//TM/POS//DA/2024//ER//",  # refused: the date
    GOOD.replace("1203", "1204") + "\r",  # CRLF: the parser strips the \r
    "   ",
    GOOD.replace("LT/47.5", "LT/47/5"),  # refused: a slash in a value
    GOOD.replace("1203", "1205"),
]


def _read(path: Path, block_bytes: int) -> list:
    return list(read_line_batches(path, block_bytes=block_bytes))


def test_lines_numbers_and_raw_bytes_match_a_plain_split(tmp_path: Path) -> None:
    body = "\n".join(LINES * 40).encode()
    path = tmp_path / "feed.naf"
    path.write_bytes(body)  # no final line break
    expected = body.split(b"\n")
    for block_bytes in (64, 1000, 1 << 20):
        batches = _read(path, block_bytes)
        assert all(isinstance(b.text, pa.Array) for b in batches)
        assert [b.first_line for b in batches] == list(
            pd.Series([0, *[len(b) for b in batches]]).cumsum().add(1)[:-1]
        )
        lines = [line for b in batches for line in b.lines]
        assert lines == [raw.decode() for raw in expected]
        raws = [b.raw(i) for b in batches for i in range(len(b))]
        assert raws == expected


def test_a_line_that_is_not_utf8_keeps_its_bytes_and_its_number(tmp_path: Path) -> None:
    bad = b"//SR//TM/POS//NA/\xff\xfe//ER//"
    path = tmp_path / "feed.naf"
    path.write_bytes(GOOD.encode() + b"\n" + bad + b"\n" + GOOD.encode() + b"\n")
    (batch,) = _read(path, 1 << 20)
    assert len(batch) == 3
    assert batch.undecodable == {1: bad}
    assert batch.lines == [GOOD, "", GOOD]
    assert batch.raw(1) == bad


def test_parsing_arrow_lines_equals_parsing_python_strings() -> None:
    lines = LINES * 30
    from_strings = naf.parse_lines(lines, first_line_number=7, chunk_lines=50)
    from_arrow = naf.parse_lines(
        pa.array(lines, pa.large_string()), first_line_number=7, chunk_lines=50
    )
    pd.testing.assert_frame_equal(from_arrow[0], from_strings[0])
    assert from_arrow[1] == from_strings[1]
    assert len(from_strings[0]) == 3 * 30
    assert {e.line_number for e in from_arrow[1]} == {
        7 + k * len(LINES) + i for k in range(30) for i in (2, 5)
    }
