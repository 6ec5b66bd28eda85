"""Column schemas of the POI tables, as the Dagster catalog shows them (migration 0011)."""

from platform_assets.table_metadata import Column

TABLES = ("poi", "address", "activity", "address_poi", "registered_poi", "poi_history")

RAW_COLUMNS: list[Column] = [
    ("source", "text", "source name"),
    ("extraction_date", "date", "partition key (monthly table partitions)"),
    ("position", "integer", "order of the record in the extract"),
    ("original_id", "text", "the source's id of the record, when it has one"),
    ("record", "jsonb", "the record as received"),
    ("extracted_at", "timestamptz", "when it was stored"),
    ("run_id", "text", "Dagster run that extracted it"),
]
NORMALISED_COLUMNS: list[Column] = [
    ("source", "text", "source name"),
    ("original_id", "text", "the source's id"),
    ("extraction_date", "date", "extraction the record comes from"),
    ("content_hash", "text", "sha256 of the normalised record"),
    ("record", "jsonb", "RegisteredPoi as JSON (poi, addresses, activities)"),
]
TABLE_COLUMNS: dict[str, list[Column]] = {
    "poi": [
        ("id", "bigint", "POI id (sequence)"),
        ("kind", "text", "event or facility"),
        ("name", "text", "normalised display name"),
        ("description", "text", "cleaned description"),
        ("url", "text", "web page"),
        ("active", "boolean", "false once gone from its source (never deleted)"),
        ("created_at", "timestamptz", "first load"),
        ("updated_at", "timestamptz", "last change"),
    ],
    "address": [
        ("id", "bigint", "address id (sequence)"),
        ("latitude", "double precision", "WGS 84"),
        ("longitude", "double precision", "WGS 84"),
        ("street", "text", "street, when known"),
        ("postcode", "text", "5-digit postcode"),
        ("city", "text", "commune name"),
        ("insee_code", "text", "INSEE commune code (2A/2B in Corsica)"),
        ("label", "text", "one-line address"),
    ],
    "activity": [
        ("id", "bigint", "activity id (sequence)"),
        ("poi_id", "bigint", "the POI"),
        ("position", "smallint", "order within the POI"),
        ("sport", "text", "controlled vocabulary (running, trail_running, swimming...)"),
        ("name", "text", "race or activity name"),
        ("distance_km", "double precision", "race distance"),
        ("starts_on", "date", "race date"),
    ],
    "address_poi": [
        ("poi_id", "bigint", "the POI"),
        ("address_id", "bigint", "the address"),
        ("role", "text", "venue, start, finish..."),
    ],
    "registered_poi": [
        ("source", "text", "source name (key)"),
        ("original_id", "text", "the source's id (key)"),
        ("poi_id", "bigint", "the POI"),
        ("content_hash", "text", "sha256 of the normalised record"),
        ("raw_hash", "text", "fingerprint of raw record + transform code"),
        ("active", "boolean", "still in its source"),
        ("first_seen_at", "timestamptz", "first load"),
        ("valid_from", "timestamptz", "start of the current version"),
        ("deactivated_at", "timestamptz", "when it left its source"),
    ],
    "poi_history": [
        ("id", "bigint", "history row id"),
        ("poi_id", "bigint", "the POI"),
        ("source", "text", "source name"),
        ("original_id", "text", "the source's id"),
        ("content_hash", "text", "hash of the replaced version"),
        ("record", "jsonb", "the replaced version (poi, addresses, activities)"),
        ("valid_from", "timestamptz", "when that version started"),
        ("valid_to", "timestamptz", "when it was replaced"),
    ],
}
TABLE_DESCRIPTIONS = {
    "poi": "Points of interest (events and facilities) of every source; inactive when gone.",
    "address": "Geocoded addresses of the POIs.",
    "activity": "What can be done at each POI (races, sports).",
    "address_poi": "Which address each POI is at, and in which role.",
    "registered_poi": "Each POI as its source sees it: (source, original id), content hash.",
    "poi_history": "Replaced versions of the POIs, with their validity dates.",
}
