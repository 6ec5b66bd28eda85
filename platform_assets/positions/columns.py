"""Column names and dtypes shared by the positions modules and the storage layer.

Frames passed between parsing, enrichment, last positions and storage use these names; the
dtypes are the ones the pure functions produce (text is pandas' ``str`` dtype, missing = NA;
floats are float64 with NaN for null; instants are ``datetime64[us, UTC]``).
"""

from __future__ import annotations

#: A track is one exact (CFR, IRCS, external marking) triple; a missing identifier equals another
#: missing identifier (NULLS NOT DISTINCT), so the same CFR with two IRCS is two tracks.
TRACK_COLUMNS: tuple[str, ...] = (
    "internal_reference_number",
    "ircs",
    "external_reference_number",
)

#: What `naf.parse_lines` returns, in order, with dtypes.
POSITION_DTYPES: dict[str, str] = {
    "line_number": "int64",  # 1-based line of the record in its file (for quarantine/tracing)
    "internal_reference_number": "str",  # IR, the CFR in the EU
    "external_reference_number": "str",  # XR, external marking / side number
    "ircs": "str",  # RC, radio call sign
    "vessel_name": "str",  # NA, verbatim
    "flag_state": "str",  # FS as ISO alpha-2
    "from_country": "str",  # FR as ISO alpha-2
    "destination_country": "str",  # AD as ISO alpha-2
    "trip_number": "str",  # TN, leading zeros kept
    "datetime_utc": "datetime64[us, UTC]",  # DA + TI
    "latitude": "float64",  # LT or LA, decimal degrees north
    "longitude": "float64",  # LG or LO, decimal degrees east
    "speed": "float64",  # SP / 10, knots; NaN when absent
    "course": "float64",  # CO, degrees; NaN when absent
    "message_type": "str",  # TM: POS, MAN, ENT, EXI or NA
    "is_manual": "bool",  # TM == MAN
    "network_type": "str",  # MS: SATELLITE, CELLULAR or NA
}
POSITION_COLUMNS: tuple[str, ...] = tuple(POSITION_DTYPES)

#: Recommended natural key for idempotent ingestion (unique, NULLS NOT DISTINCT): the track, the
#: instant and the coordinates. Record metadata (RD/RT, FR/AD, RN) is left out on purpose: the same
#: position re-sent by another party or at another record time is still the same position.
NATURAL_KEY: tuple[str, ...] = (*TRACK_COLUMNS, "datetime_utc", "latitude", "longitude")

#: Columns `enrichment.enrich` needs in its input (others are ignored and not returned).
ENRICHMENT_INPUT_COLUMNS: tuple[str, ...] = (
    "id",
    *TRACK_COLUMNS,
    "datetime_utc",
    "latitude",
    "longitude",
)

#: Columns `enrichment.enrich` returns, with dtypes.
ENRICHED_DTYPES: dict[str, str] = {
    "id": "int64",
    "is_at_port": "bool",
    "meters_from_previous_position": "float64",  # NaN for a track's first position
    "time_since_previous_position": "float64",  # hours; NaN for the first position
    "average_speed": "float64",  # knots; NaN first / 0-over-0, inf for same-instant moves
    "is_fishing": "boolean",  # three-valued: NA = cannot be decided from the data
    "time_emitting_at_sea": "float64",  # hours
}
ENRICHED_COLUMNS: tuple[str, ...] = tuple(ENRICHED_DTYPES)
