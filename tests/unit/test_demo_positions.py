"""The demo moves the sample NAF days so that the last one is yesterday, and nothing else."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from platform_assets.demo.positions import shift_dates, write_samples
from platform_assets.samples.positions import SAMPLE_DIR


def test_dates_move_and_an_impossible_date_stays_impossible() -> None:
    line = "//SR//AD/FRA//RD/20250303//DA/20250303//TI/0640//LT/47.5//ER//"
    assert shift_dates(line, 2) == "//SR//AD/FRA//RD/20250305//DA/20250305//TI/0640//LT/47.5//ER//"
    bad = "//SR//DA/20250230//TI/0020//ER//"
    assert shift_dates(bad, 2) == bad  # still quarantined, as in the committed sample


def test_the_samples_end_the_day_before_today(tmp_path: Path) -> None:
    written = write_samples(tmp_path, date(2026, 12, 2))
    assert [p.name for p in written] == ["positions_2026-11-30.naf", "positions_2026-12-01.naf"]
    originals = sorted(SAMPLE_DIR.glob("*.naf"))
    for moved, original in zip(written, originals, strict=True):
        assert len(moved.read_text().splitlines()) == len(original.read_text().splitlines())
    assert "//DA/20261201//" in written[1].read_text()
    assert write_samples(tmp_path, date(2026, 12, 2)) == written  # idempotent
