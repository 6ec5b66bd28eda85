"""Parsing ahead of the load (``ingestion.BlockReader``) and the vectorised key helpers."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from platform_assets.positions import store
from platform_assets.positions.enrichment import key_positions
from platform_assets.positions.inbox import inbox_file_at
from platform_assets.positions.ingestion import BlockReader
from platform_assets.positions.store.load import _same

LINE = "//SR//TM/POS//IR/FRA{n:09d}//DA/20240501//TI/{hh:02d}{mm:02d}//LT/47.5//LG/-3.1//ER//"


def _write(path: Path, count: int, bad: int | None = None) -> Path:
    lines = [LINE.format(n=k % 7, hh=k // 60 % 24, mm=k % 60) for k in range(count)]
    if bad is not None:
        lines[bad] = "//SR//TM/POS//DA/2024//ER//"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_block_reader_hands_each_file_its_own_blocks_in_order(tmp_path: Path) -> None:
    files = [
        inbox_file_at(_write(tmp_path / "a.naf", 30_000, bad=5)),
        inbox_file_at(_write(tmp_path / "b.naf", 0)),
        inbox_file_at(_write(tmp_path / "c.naf", 10)),
    ]
    with BlockReader(files) as reader:
        per_file = [list(reader.blocks()) for _ in files]
    assert [sum(b.lines for b in blocks) for blocks in per_file] == [30_000, 1, 10]
    first = per_file[0]
    assert {b.source_file for b in first} == {"a.naf"}
    assert sum(len(b.frame) for b in first) == 29_999
    assert [q.line_number for b in first for q in b.bad] == [6]
    # the frame is already in the table's types: the load does not normalise it again
    pd.testing.assert_frame_equal(first[0].frame, store.normalise_parsed(first[0].frame))


def test_block_reader_raises_a_read_error_where_it_happened(tmp_path: Path) -> None:
    good = inbox_file_at(_write(tmp_path / "a.naf", 10))
    gone = inbox_file_at(_write(tmp_path / "b.naf", 10))
    gone.path.unlink()
    with BlockReader([good, gone]) as reader:
        assert sum(b.lines for b in reader.blocks()) == 10
        with pytest.raises(FileNotFoundError):
            list(reader.blocks())


def test_block_reader_stops_when_the_consumer_leaves_early(tmp_path: Path) -> None:
    files = [inbox_file_at(_write(tmp_path / f"{k}.naf", 100)) for k in range(20)]
    before = threading.active_count()
    with BlockReader(files) as reader:
        next(iter(reader.blocks()))
    assert threading.active_count() == before


def test_key_positions_finds_each_key_or_minus_one() -> None:
    table = pd.Series(["a", "b", "c"], dtype="str")
    keys = pd.Series(["c", "x", "a", "a", "b"], dtype="str")
    assert key_positions(keys, table).tolist() == [2, -1, 0, 0, 1]
    assert key_positions(keys.iloc[:0], table).tolist() == []
    assert key_positions(keys, table.iloc[:0]).tolist() == [-1] * 5


def test_same_takes_missing_as_equal_to_missing_only() -> None:
    flags = pd.Series(pd.array([True, None, False, None], dtype="boolean"))
    other = pd.Series(pd.array([True, None, True, False], dtype="boolean"))
    assert _same(flags, other).tolist() == [True, True, False, False]
    numbers = pd.Series([1.0, np.nan, 2.0, np.nan, np.inf])
    assert _same(numbers, pd.Series([1.0, np.nan, 3.0, 1.0, np.inf])).tolist() == [
        True,
        True,
        False,
        False,
        True,
    ]
