"""Reference gates (keys, drop guard) and where the sources are resolved from; no database."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetCheckSeverity

from platform_assets.reference.checks import DROP_CHECK, KEYS_CHECK, KeyRule, drop_check, key_check
from platform_assets.reference.readers import default_data_dir
from resources.reference_files import REFERENCE_FILES, ReferenceFilesResource
from resources.source_db import (
    EMBEDDED_SCHEMA,
    SCHEMA_ENV,
    URL_ENV,
    SourceDatabaseError,
    SourceDatabaseResource,
    read_only_statement,
)

# --- drop guard -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "current", "allow", "passed"),
    [
        (None, 10, False, True),  # first materialisation
        (0, 0, False, True),
        (100, 120, False, True),
        (100, 80, False, True),  # exactly 20% fewer is still fine
        (100, 79, False, False),
        (100, 0, False, False),
        (100, 79, True, True),
    ],
)
def test_drop_guard_threshold(
    previous: int | None, current: int, allow: bool, passed: bool
) -> None:
    result = drop_check(previous, current, allow_large_drop=allow)
    assert result.check_name == DROP_CHECK
    assert result.passed is passed
    assert result.severity == AssetCheckSeverity.ERROR
    assert result.metadata["row_count"].value == current


def test_drop_guard_explains_itself() -> None:
    blocked = drop_check(300, 200)
    assert blocked.description == (
        "200 rows, 33% fewer than the 300 of the previous materialisation (at most 20% allowed)"
    )
    assert blocked.metadata["previous_row_count"].value == 300
    assert blocked.metadata["drop_pct"].value == 33.3
    accepted = drop_check(300, 200, allow_large_drop=True)
    assert accepted.passed and "accepted because allow_large_drop is set" in (
        accepted.description or ""
    )
    assert drop_check(None, 5).metadata["previous_row_count"].value == "none"


# --- keys -------------------------------------------------------------------------------------


def test_unique_present_keys_pass() -> None:
    frame = pd.DataFrame({"locode": ["FRLRT", "FRCOC"], "port_name": ["Lorient", "Concarneau"]})
    result = key_check(frame, [KeyRule(("locode",))])
    assert result.check_name == KEYS_CHECK
    assert result.passed
    assert result.severity == AssetCheckSeverity.ERROR


def test_duplicated_and_missing_keys_fail_with_a_sample() -> None:
    frame = pd.DataFrame({"locode": ["FRLRT", "FRCOC", "FRLRT", None, "FRLRT"]})
    result = key_check(frame, [KeyRule(("locode",))])
    assert not result.passed
    assert result.metadata["locode null"].value == 1
    assert result.metadata["locode duplicated values"].value == 1
    assert result.metadata["duplicated sample"].value == [
        {"key": "locode", "value": "FRLRT", "rows": 3}
    ]
    assert result.description == (
        "1 rows without locode; 1 locode values on several rows (e.g. FRLRT)"
    )


def test_nullable_keys_must_only_be_unique_where_present() -> None:
    frame = pd.DataFrame({"vessel_id": [1, 2, 3, 4], "cfr": ["FRA1", None, None, "FRA1"]})
    rules = [KeyRule(("vessel_id",)), KeyRule(("cfr",), nullable=True)]
    result = key_check(frame, rules)
    assert not result.passed
    assert result.metadata["cfr null"].value == 0
    assert result.metadata["cfr duplicated values"].value == 1
    assert result.metadata["vessel_id duplicated values"].value == 0
    assert key_check(frame.iloc[:3], rules).passed


def test_composite_keys_repeat_only_as_a_whole() -> None:
    frame = pd.DataFrame({"year": [2025, 2026, 2026], "segment": ["T8-9", "T8-9", "T8-9"]})
    result = key_check(frame, [KeyRule(("year", "segment"))])
    assert not result.passed
    assert result.metadata["duplicated sample"].value == [
        {"key": "year+segment", "value": "2026/T8-9", "rows": 2}
    ]
    assert key_check(frame.iloc[:2], [KeyRule(("year", "segment"))]).passed


# --- reference files --------------------------------------------------------------------------


def test_files_default_to_the_bundled_data(monkeypatch: pytest.MonkeyPatch) -> None:
    for env, _ in REFERENCE_FILES.values():
        monkeypatch.delenv(env, raising=False)
    files = ReferenceFilesResource()
    for source, (_, name) in REFERENCE_FILES.items():
        path = files.path(source, default_data_dir())  # type: ignore[arg-type]
        assert path == default_data_dir() / name
        assert path.exists()


def test_a_field_beats_the_environment_which_beats_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    files = ReferenceFilesResource(ports_csv=str(tmp_path / "field.csv"))
    monkeypatch.setenv("REFERENCE_PORTS_CSV", str(tmp_path / "env.csv"))
    monkeypatch.setenv("REFERENCE_SPECIES_CSV", str(tmp_path / "species.csv"))
    assert files.path("ports_csv", default_data_dir()) == tmp_path / "field.csv"
    assert (
        files.path("species_csv", default_data_dir()) == tmp_path / "species.csv"
    )  # read when used


# --- the source database location -------------------------------------------------------------


@pytest.fixture
def no_source_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv(URL_ENV, raising=False)
    monkeypatch.delenv(SCHEMA_ENV, raising=False)
    return monkeypatch


def test_without_settings_the_source_is_the_embedded_schema(
    no_source_env: pytest.MonkeyPatch,
) -> None:
    location = SourceDatabaseResource().location()
    assert location.embedded
    assert location.schema == EMBEDDED_SCHEMA
    assert location.describe() == "oracle_source.NAVIRES"


def test_oracle_url_is_described_without_its_password(no_source_env: pytest.MonkeyPatch) -> None:
    url = "oracle+oracledb://fishnet:s3cret@db.example.org:1521/?service_name=NAVPRO"
    source = SourceDatabaseResource(url=url, schema_name="NAVPRO")
    described = source.describe()
    assert "s3cret" not in described
    assert described == (
        "oracle+oracledb://fishnet:***@db.example.org:1521/?service_name=NAVPRO NAVPRO.NAVIRES"
    )
    # without a schema, the Oracle user's own schema holds the tables
    assert SourceDatabaseResource(url=url).location().schema is None


def test_environment_fills_empty_fields_when_used(no_source_env: pytest.MonkeyPatch) -> None:
    source = SourceDatabaseResource()
    no_source_env.setenv(URL_ENV, "oracle+oracledb://u:p@h:1521/?service_name=S")
    no_source_env.setenv(SCHEMA_ENV, "FMC2")
    location = source.location()
    assert not location.embedded
    assert location.schema == "FMC2"
    assert location.vessels_table == "FMC2.NAVIRES"
    assert SourceDatabaseResource(schema_name="OTHER").location().schema == "OTHER"


def test_read_only_transaction_per_dialect() -> None:
    assert read_only_statement("oracle") == "SET TRANSACTION READ ONLY"
    assert "REPEATABLE READ" in read_only_statement("postgresql")
    with pytest.raises(SourceDatabaseError, match="Oracle or PostgreSQL"):
        read_only_statement("mysql")
