"""Column schemas of the reference tables, as the Dagster catalog shows them (see migration 0002)."""

from platform_assets.table_metadata import Column

VESSELS: list[Column] = [
    ("vessel_id", "bigint", "registry key of the vessel (NAVIRES.ID_NAVIRE)"),
    ("cfr", "text", "Community Fleet Register number; joins positions and logbook"),
    ("mmsi", "text", "AIS Maritime Mobile Service Identity"),
    ("ircs", "text", "international radio call sign"),
    ("external_immatriculation", "text", "external marking painted on the hull"),
    ("vessel_name", "text", "name of the vessel"),
    ("flag_state", "text", "ISO alpha-3 flag state"),
    ("length", "double precision", "overall length (m)"),
    ("width", "double precision", "breadth (m)"),
    ("gauge", "double precision", "gross tonnage (GT)"),
    ("power", "double precision", "main engine power (kW)"),
    ("vessel_type", "text", "vessel type (trawler, liner, ...)"),
    ("sailing_category", "text", "navigation category allowed by the registry"),
    ("declared_fishing_gears", "text[]", "ISSCFG codes of the declared gears, in rank order"),
    ("licence_expiry_date", "date", "expiry of the latest fishing licence"),
    ("district_code", "text", "maritime district (quartier maritime) of registration"),
    ("registry_port_locode", "text", "UN/LOCODE of the registry port"),
    ("owner_name", "text", "owner (latest contact of role OWNER)"),
    ("owner_email", "text", "owner's e-mail"),
    ("owner_phone", "text", "owner's telephone"),
    ("operator_name", "text", "operator (latest contact of role OPERATOR)"),
    ("operator_email", "text", "operator's e-mail"),
    ("operator_phone", "text", "operator's telephone"),
    ("is_active", "boolean", "still in the registry's active fleet"),
]

SPECIES: list[Column] = [
    ("species_code", "text", "FAO 3-alpha code"),
    ("scientific_name", "text", "scientific name"),
    ("english_name", "text", "English name"),
    ("french_name", "text", "French name"),
    ("isscaap_group", "text", "ISSCAAP group of species"),
]

FISHING_GEAR_CODES: list[Column] = [
    ("gear_code", "text", "ISSCFG gear code"),
    ("gear_name", "text", "name of the gear"),
    ("gear_group", "text", "gear family (trawls, seines, lines, ...)"),
]

PORTS: list[Column] = [
    ("locode", "text", "UN/LOCODE of the port"),
    ("port_name", "text", "name of the port"),
    ("country_code_iso2", "text", "ISO alpha-2 country"),
    ("latitude", "double precision", "latitude (WGS84 degrees)"),
    ("longitude", "double precision", "longitude (WGS84 degrees)"),
    ("region", "text", "administrative region"),
    ("facade", "text", "maritime facade (MEMN, NAMO, SA, MED, ...)"),
    ("fao_areas", "text[]", "FAO areas the port opens on"),
    ("is_active", "boolean", "port still used by fishing vessels"),
]

DISTRICTS: list[Column] = [
    ("district_code", "text", "two-letter maritime district code"),
    ("district_name", "text", "name of the district"),
    ("department", "text", "department"),
    ("facade", "text", "maritime facade"),
]

FLEET_SEGMENTS: list[Column] = [
    ("year", "integer", "year of the control plan"),
    ("segment", "text", "segment code"),
    ("segment_name", "text", "segment name"),
    ("gears", "text[]", "gear codes of the segment"),
    ("fao_areas", "text[]", "FAO areas of the segment"),
    ("target_species", "text[]", "target species codes"),
    ("impact_risk_factor", "double precision", "impact risk factor of the control plan"),
]

ANCHORAGES: list[Column] = [
    ("h3", "text", "H3 cell (resolution 9) where a vessel counts as at port"),
    ("port_locode", "text", "nearest port of the cell"),
    ("distance_m", "double precision", "distance from the cell centre to the port (m)"),
    ("source", "text", "ports (k-ring of a port) or positions (vessels seen stopped there)"),
]

COLUMNS: dict[str, list[Column]] = {
    "vessels": VESSELS,
    "species": SPECIES,
    "fishing_gear_codes": FISHING_GEAR_CODES,
    "ports": PORTS,
    "districts": DISTRICTS,
    "fleet_segments": FLEET_SEGMENTS,
    "anchorages": ANCHORAGES,
}
