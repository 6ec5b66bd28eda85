"""Reference file readers: the bundled data loads cleanly, and bad files fail with file + line."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platform_assets.reference.readers import (
    FACADES,
    ReferenceSourceError,
    default_data_dir,
    read_districts,
    read_fishing_gear_codes,
    read_fleet_segments,
    read_ports,
    read_species,
)

DATA = default_data_dir()

PORT_HEADER = (
    "locode,port_name,country_code_iso2,latitude,longitude,region,facade,fao_areas,is_active"
)
GOOD_PORT = "FRLRT,Lorient,FR,47.7347,-3.3614,Bretagne,NAMO,27.8.a;27.7.h,true"
OTHER_PORT = "FRBOL,Boulogne-sur-Mer,FR,50.7265,1.5985,Hauts-de-France,MEMN,27.7.d,true"

SEGMENT = """\
  - segment: T8-9
    segment_name: Bottom trawls
    gears: [OTB, OTT]
    fao_areas: ["27.8", "27.9"]
    target_species: [HKE]
    impact_risk_factor: 2.5
"""


# --- the bundled data -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def species() -> pd.DataFrame:
    return read_species(DATA / "species.csv")


@pytest.fixture(scope="module")
def gears() -> pd.DataFrame:
    return read_fishing_gear_codes(DATA / "fishing_gear_codes.csv")


@pytest.fixture(scope="module")
def ports() -> pd.DataFrame:
    return read_ports(DATA / "ports.csv")


@pytest.fixture(scope="module")
def districts() -> pd.DataFrame:
    return read_districts(DATA / "districts.csv")


@pytest.fixture(scope="module")
def segments() -> pd.DataFrame:
    return read_fleet_segments(DATA / "fleet_segments")


def test_default_data_dir_holds_the_bundled_files() -> None:
    names = {p.name for p in DATA.iterdir()}
    assert {"species.csv", "fishing_gear_codes.csv", "ports.csv", "districts.csv"} <= names
    assert (DATA / "fleet_segments" / "2025.yaml").is_file()


@pytest.mark.parametrize(
    ("fixture", "columns", "dtypes"),
    [
        (
            "species",
            ["species_code", "scientific_name", "english_name", "french_name", "isscaap_group"],
            ["object"] * 5,
        ),
        ("gears", ["gear_code", "gear_name", "gear_group"], ["object"] * 3),
        (
            "ports",
            [
                "locode",
                "port_name",
                "country_code_iso2",
                "latitude",
                "longitude",
                "region",
                "facade",
                "fao_areas",
                "is_active",
            ],
            ["object"] * 3 + ["float64"] * 2 + ["object"] * 3 + ["bool"],
        ),
        ("districts", ["district_code", "district_name", "department", "facade"], ["object"] * 4),
        (
            "segments",
            [
                "year",
                "segment",
                "segment_name",
                "gears",
                "fao_areas",
                "target_species",
                "impact_risk_factor",
            ],
            ["int64"] + ["object"] * 5 + ["float64"],
        ),
    ],
)
def test_bundled_tables_have_exact_columns_and_dtypes(
    request: pytest.FixtureRequest, fixture: str, columns: list[str], dtypes: list[str]
) -> None:
    frame: pd.DataFrame = request.getfixturevalue(fixture)
    assert list(frame.columns) == columns
    assert [str(t) for t in frame.dtypes] == dtypes
    assert len(frame) > 0


def test_bundled_sizes_are_realistic(
    species: pd.DataFrame,
    gears: pd.DataFrame,
    ports: pd.DataFrame,
    districts: pd.DataFrame,
    segments: pd.DataFrame,
) -> None:
    assert len(species) >= 150
    assert len(gears) >= 40
    assert len(ports) >= 80
    assert len(districts) >= 40
    assert set(segments["year"]) == {2025, 2026}


def test_well_known_ports_are_where_they_should_be(ports: pd.DataFrame) -> None:
    by_code = ports.set_index("locode")
    expected = {
        "FRBOL": ("Boulogne-sur-Mer", 50.73, 1.60, "MEMN"),
        "FRLRH": ("La Rochelle", 46.16, -1.19, "SA"),
        "FRLRT": ("Lorient", 47.73, -3.36, "NAMO"),
        "FRCOC": ("Concarneau", 47.87, -3.91, "NAMO"),
        "FRGVC": ("Le Guilvinec", 47.80, -4.28, "NAMO"),
        "FRSML": ("Saint-Malo", 48.64, -2.02, "NAMO"),
        "FRBES": ("Brest", 48.38, -4.49, "NAMO"),
        "FRSET": ("Sète", 43.40, 3.70, "MED"),
    }
    for locode, (name, lat, lon, facade) in expected.items():
        row = by_code.loc[locode]
        assert row["port_name"] == name
        assert row["latitude"] == pytest.approx(lat, abs=0.02)
        assert row["longitude"] == pytest.approx(lon, abs=0.02)
        assert row["facade"] == facade
    for foreign in ("ESVGO", "GBPHD", "IEKBS"):
        assert by_code.loc[foreign, "facade"] is None
    assert by_code.loc["FRLRT", "fao_areas"] == ["27.8.a", "27.7.h", "27.7.g", "27.6.a"]
    assert not ports["is_active"].all() and ports["is_active"].sum() > 80


def test_array_cells_are_lists_of_str(ports: pd.DataFrame, segments: pd.DataFrame) -> None:
    for cell in [*ports["fao_areas"], *segments["gears"], *segments["target_species"]]:
        assert isinstance(cell, list)
        assert all(isinstance(item, str) for item in cell)


def test_bundled_files_agree_with_each_other(
    species: pd.DataFrame,
    gears: pd.DataFrame,
    ports: pd.DataFrame,
    districts: pd.DataFrame,
    segments: pd.DataFrame,
) -> None:
    gear_codes = set(gears["gear_code"])
    species_codes = set(species["species_code"])
    segment_gears = {g for cell in segments["gears"] for g in cell}
    segment_species = {s for cell in segments["target_species"] for s in cell}
    assert segment_gears <= gear_codes, segment_gears - gear_codes
    assert segment_species <= species_codes, segment_species - species_codes
    assert set(districts["facade"]) <= FACADES
    assert set(ports["facade"].dropna()) <= set(districts["facade"])
    french = ports[ports["facade"].notna()]
    assert (french["locode"].str.len() == 5).all()


def test_fleet_segment_years_differ(segments: pd.DataFrame) -> None:
    by_year = {year: set(group["segment"]) for year, group in segments.groupby("year", sort=True)}
    assert {"T8-9", "L HKE", "PS BFT"} <= by_year[2025]
    assert by_year[2026] - by_year[2025]  # the 2026 plan added segments
    risk = segments.set_index(["year", "segment"])["impact_risk_factor"]
    assert risk[(2026, "DRB SCE")] > risk[(2025, "DRB SCE")]


# --- CSV errors -------------------------------------------------------------------------------


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (
            "FRLRT,Lorient,FR,abc,-3.36,Bretagne,NAMO,27.8.a,true",
            "bad float 'abc' in column latitude",
        ),
        ("FRLRT,Lorient,FR,47.7,-3.36,Bretagne,NAMO,27.8.a,maybe", "bad boolean 'maybe'"),
        (",Lorient,FR,47.7,-3.36,Bretagne,NAMO,27.8.a,true", "missing key locode"),
        ("FRLRT,,FR,47.7,-3.36,Bretagne,NAMO,27.8.a,true", "missing value port_name"),
        ("FRLRT,Lorient,FR,95.0,-3.36,Bretagne,NAMO,27.8.a,true", "95.0 out of range"),
        ("FRLRT,Lorient,FR,nan,-3.36,Bretagne,NAMO,27.8.a,true", "not a finite number"),
        ("frlrt,Lorient,FR,47.7,-3.36,Bretagne,NAMO,27.8.a,true", "bad UN/LOCODE 'frlrt'"),
        ("FRLRT,Lorient,ES,47.7,-3.36,Bretagne,NAMO,27.8.a,true", "does not match locode"),
        ("FRLRT,Lorient,FR,47.7,-3.36,Bretagne,NAM0,27.8.a,true", "unknown facade 'NAM0'"),
        ("FRLRT,Lorient,FR,47.7,-3.36,Bretagne,NAMO,27.8.a;;27.7.h,true", "empty item in list"),
        ("FRLRT,Lorient,FR,47.7,-3.36,Bretagne,NAMO,area 8,true", "bad FAO area 'area 8'"),
        ("FRLRT,Lorient,FR,47.7,-3.36,Bretagne,NAMO,27.8.a", "8 fields, the header has 9"),
        (GOOD_PORT + ",extra", "10 fields, the header has 9"),
    ],
)
def test_bad_port_row_names_file_line_and_reason(tmp_path: Path, row: str, reason: str) -> None:
    path = _write(tmp_path, "ports.csv", f"{PORT_HEADER}\n{OTHER_PORT}\n{row}\n")
    with pytest.raises(ReferenceSourceError) as error:
        read_ports(path)
    message = str(error.value)
    assert str(path) in message
    assert "line 3" in message
    assert reason in message


def test_line_numbers_count_the_header_and_quoted_newlines(tmp_path: Path) -> None:
    text = (
        "gear_code,gear_name,gear_group\n"
        'OTB,"Single boat bottom\notter trawls",trawls\n'
        "PS,Purse seines,\n"
    )
    path = _write(tmp_path, "gears.csv", text)
    with pytest.raises(ReferenceSourceError, match=r"line 4: missing value gear_group"):
        read_fishing_gear_codes(path)


def test_missing_columns_are_all_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "species.csv", "species_code,english_name\nCOD,Atlantic cod\n")
    with pytest.raises(ReferenceSourceError) as error:
        read_species(path)
    message = str(error.value)
    assert str(path) in message
    assert "missing columns: scientific_name, french_name, isscaap_group" in message


def test_empty_file_reports_every_column_missing(tmp_path: Path) -> None:
    path = _write(tmp_path, "districts.csv", "")
    with pytest.raises(ReferenceSourceError, match="missing columns: district_code, district_name"):
        read_districts(path)


def test_missing_file_is_a_reference_source_error(tmp_path: Path) -> None:
    with pytest.raises(ReferenceSourceError, match="cannot open"):
        read_species(tmp_path / "nope.csv")


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
def test_a_csv_in_another_encoding_names_the_file_line_and_column(
    tmp_path: Path, encoding: str
) -> None:
    text = (
        "district_code,district_name,department,facade\n"
        "LO,Lorient,Morbihan,NAMO\n"
        "GV,Le Guilvinec,Finistère,NAMO\n"
    )
    path = tmp_path / "districts.csv"
    path.write_bytes(text.encode(encoding))
    with pytest.raises(ReferenceSourceError) as error:
        read_districts(path)
    message = str(error.value)
    assert message.startswith(f"{path} line 3: not UTF-8 at column 23 (byte e8")
    assert "save the file as UTF-8" in message


def test_a_utf16_csv_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "districts.csv"
    path.write_bytes("district_code,district_name,department,facade\n".encode("utf-16"))
    with pytest.raises(ReferenceSourceError, match=r"districts\.csv line 1: the file is UTF-16"):
        read_districts(path)


def test_duplicate_keys_are_named_with_their_lines(tmp_path: Path) -> None:
    text = (
        "district_code,district_name,department,facade\n"
        "GV,Le Guilvinec,Finistère,NAMO\n"
        "LO,Lorient,Morbihan,NAMO\n"
        "GV,Guilvinec,Finistère,NAMO\n"
        "LO,Lorient bis,Morbihan,NAMO\n"
        "CC,Concarneau,Finistère,NAMO\n"
    )
    path = _write(tmp_path, "districts.csv", text)
    with pytest.raises(ReferenceSourceError) as error:
        read_districts(path)
    message = str(error.value)
    assert "duplicate keys (district_code)" in message
    assert "GV (line 2, line 4)" in message
    assert "LO (line 3, line 5)" in message
    assert "CC" not in message


def test_optional_values_become_none_and_extra_columns_are_ignored(tmp_path: Path) -> None:
    text = (
        "comment,species_code,scientific_name,english_name,french_name,isscaap_group\n"
        "x,COD,Gadus morhua,Atlantic cod,,\n"
    )
    frame = read_species(_write(tmp_path, "species.csv", text))
    assert list(frame.columns) == [
        "species_code",
        "scientific_name",
        "english_name",
        "french_name",
        "isscaap_group",
    ]
    assert frame.loc[0, "french_name"] is None
    assert frame.loc[0, "isscaap_group"] is None


def test_bom_blank_lines_and_boolean_spellings_are_accepted(tmp_path: Path) -> None:
    rows = [
        GOOD_PORT.replace("true", "TRUE"),
        "",
        "FRBOL,Boulogne-sur-Mer,FR,50.7265,1.5985,Hauts-de-France,MEMN,,no",
        "ESVGO,Vigo,ES,42.237,-8.726,Galicia,,27.9.a,1",
    ]
    path = tmp_path / "ports.csv"
    path.write_bytes(("\ufeff" + PORT_HEADER + "\n" + "\n".join(rows) + "\n").encode())
    frame = read_ports(path)
    assert frame["is_active"].tolist() == [True, False, True]
    assert frame["fao_areas"].tolist() == [["27.8.a", "27.7.h"], [], ["27.9.a"]]
    assert frame.loc[2, "facade"] is None


_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=30
).filter(lambda s: s.strip() == s and s != "")
_port = st.fixed_dictionaries(
    {
        "locode": st.from_regex(r"\AFR[A-Z2-9]{3}\Z"),
        "port_name": _text,
        "latitude": st.floats(-90, 90, allow_nan=False).map(lambda x: round(x, 6)),
        "longitude": st.floats(-180, 180, allow_nan=False).map(lambda x: round(x, 6)),
        "region": st.one_of(st.none(), _text),
        "facade": st.one_of(st.none(), st.sampled_from(sorted(FACADES))),
        "fao_areas": st.lists(st.from_regex(r"\A\d{2}(\.[0-9a-z]{1,2}){0,3}\Z"), max_size=4),
        "is_active": st.booleans(),
    }
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_port, max_size=8, unique_by=lambda r: r["locode"]))
def test_ports_round_trip_through_csv(tmp_path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PORT_HEADER.split(","))
    for r in rows:
        writer.writerow(
            [
                r["locode"],
                r["port_name"],
                "FR",
                repr(r["latitude"]),
                repr(r["longitude"]),
                r["region"] or "",
                r["facade"] or "",
                ";".join(r["fao_areas"]),
                "true" if r["is_active"] else "false",
            ]
        )
    path = _write(tmp_path, "ports.csv", buffer.getvalue())
    frame = read_ports(path)
    assert len(frame) == len(rows)
    for got, want in zip(frame.to_dict("records"), rows, strict=True):
        assert got["locode"] == want["locode"]
        assert got["port_name"] == want["port_name"]
        assert got["latitude"] == want["latitude"]
        assert got["longitude"] == want["longitude"]
        assert got["region"] == want["region"]
        assert got["facade"] == want["facade"]
        assert got["fao_areas"] == want["fao_areas"]
        assert got["is_active"] is want["is_active"]


# --- fleet segments ---------------------------------------------------------------------------


def _segments_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    directory = tmp_path / "fleet_segments"
    directory.mkdir()
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def test_year_comes_from_the_file_name_when_content_has_none(tmp_path: Path) -> None:
    directory = _segments_dir(tmp_path, {"2024.yaml": f"segments:\n{SEGMENT}"})
    frame = read_fleet_segments(directory)
    assert frame.to_dict("records") == [
        {
            "year": 2024,
            "segment": "T8-9",
            "segment_name": "Bottom trawls",
            "gears": ["OTB", "OTT"],
            "fao_areas": ["27.8", "27.9"],
            "target_species": ["HKE"],
            "impact_risk_factor": 2.5,
        }
    ]


def test_a_bare_list_file_is_accepted(tmp_path: Path) -> None:
    directory = _segments_dir(tmp_path, {"2024.yml": SEGMENT.replace("\n  ", "\n").lstrip()})
    assert read_fleet_segments(directory)["segment"].tolist() == ["T8-9"]


def test_year_from_content_when_the_name_has_none(tmp_path: Path) -> None:
    directory = _segments_dir(tmp_path, {"plan.yaml": f"year: 2023\nsegments:\n{SEGMENT}"})
    assert read_fleet_segments(directory)["year"].tolist() == [2023]


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("2025.yaml", f"year: 2024\nsegments:\n{SEGMENT}", "file name says year 2025"),
        ("plan.yaml", f"segments:\n{SEGMENT}", "no year"),
        (
            "2025.yaml",
            "segments:\n" + SEGMENT.replace('["27.8", "27.9"]', "[27.8, 27.10]"),
            "line 2: bad list item 27.8, 27.1 in column fao_areas",
        ),
        (
            "2025.yaml",
            "segments:\n" + SEGMENT.replace("impact_risk_factor: 2.5", "impact_risk_factor: high"),
            "line 2: bad float 'high' in column impact_risk_factor",
        ),
        (
            "2025.yaml",
            "segments:\n" + SEGMENT.replace("impact_risk_factor: 2.5", "impact_risk_factor: 7"),
            "line 2: 7.0 out of range [1, 4] in column impact_risk_factor",
        ),
        (
            "2025.yaml",
            "segments:\n" + SEGMENT.replace("    target_species: [HKE]\n", ""),
            "line 2: missing fields: target_species",
        ),
        (
            "2025.yaml",
            "segments:\n" + SEGMENT.replace("segment: T8-9", "segment: NO"),
            "line 2: bad text False in column segment: quote it",
        ),
        (
            "2025.yaml",
            "segments:\n" + SEGMENT.replace("[OTB, OTT]", "[OTB, ott]"),
            "bad gear code 'ott'",
        ),
        ("2025.yaml", "segments: [\n", "not valid YAML"),
        ("2025.yaml", "segments: 3\n", "expected a list of segments"),
        ("2025.yaml", "year: 2025\n", "missing field: segments"),
    ],
)
def test_bad_segment_file_names_file_line_and_reason(
    tmp_path: Path, name: str, text: str, reason: str
) -> None:
    directory = _segments_dir(tmp_path, {name: text})
    with pytest.raises(ReferenceSourceError) as error:
        read_fleet_segments(directory)
    message = str(error.value)
    assert str(directory / name) in message
    assert reason in message


def test_segment_lines_point_at_the_right_entry(tmp_path: Path) -> None:
    second = SEGMENT.replace("T8-9", "T7").replace("2.5", "x")
    directory = _segments_dir(tmp_path, {"2025.yaml": f"year: 2025\nsegments:\n{SEGMENT}{second}"})
    with pytest.raises(ReferenceSourceError, match=r"2025\.yaml line 9: bad float 'x'"):
        read_fleet_segments(directory)


def test_duplicate_segments_across_files_of_one_year_are_named(tmp_path: Path) -> None:
    directory = _segments_dir(
        tmp_path,
        {
            "2025.yaml": f"segments:\n{SEGMENT}",
            "extra.yaml": f"year: 2025\nsegments:\n{SEGMENT}",
        },
    )
    with pytest.raises(ReferenceSourceError) as error:
        read_fleet_segments(directory)
    assert re.search(
        r"duplicate keys \(year, segment\): 2025/T8-9 \(2025\.yaml line 2, extra\.yaml line 3\)",
        str(error.value),
    )


def test_same_segment_in_two_years_is_fine(tmp_path: Path) -> None:
    directory = _segments_dir(
        tmp_path, {"2025.yaml": f"segments:\n{SEGMENT}", "2026.yaml": f"segments:\n{SEGMENT}"}
    )
    frame = read_fleet_segments(directory)
    assert frame[["year", "segment"]].values.tolist() == [[2025, "T8-9"], [2026, "T8-9"]]


def test_directory_without_segment_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ReferenceSourceError, match="not a directory"):
        read_fleet_segments(tmp_path / "missing")
    empty = _segments_dir(tmp_path, {"README.md": "nothing"})
    with pytest.raises(ReferenceSourceError, match="no fleet segment files"):
        read_fleet_segments(empty)
