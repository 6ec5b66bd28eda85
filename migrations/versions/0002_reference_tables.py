"""Reference tables of the fisheries-monitoring system.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE reference.vessels (
            vessel_id bigint PRIMARY KEY,
            cfr text,
            mmsi text,
            ircs text,
            external_immatriculation text,
            vessel_name text,
            flag_state text,
            length double precision,
            width double precision,
            gauge double precision,
            power double precision,
            vessel_type text,
            sailing_category text,
            declared_fishing_gears text[],
            licence_expiry_date date,
            district_code text,
            registry_port_locode text,
            owner_name text,
            owner_email text,
            owner_phone text,
            operator_name text,
            operator_email text,
            operator_phone text,
            is_active boolean NOT NULL
        );
        CREATE INDEX vessels_cfr_idx ON reference.vessels (cfr);
        CREATE INDEX vessels_ircs_idx ON reference.vessels (ircs);
        CREATE INDEX vessels_external_immatriculation_idx ON reference.vessels (external_immatriculation);

        CREATE TABLE reference.species (
            species_code text PRIMARY KEY,
            scientific_name text,
            english_name text,
            french_name text,
            isscaap_group text
        );

        CREATE TABLE reference.fishing_gear_codes (
            gear_code text PRIMARY KEY,
            gear_name text NOT NULL,
            gear_group text
        );

        CREATE TABLE reference.ports (
            locode text PRIMARY KEY,
            port_name text NOT NULL,
            country_code_iso2 text,
            latitude double precision,
            longitude double precision,
            region text,
            facade text,
            fao_areas text[],
            is_active boolean NOT NULL
        );

        CREATE TABLE reference.districts (
            district_code text PRIMARY KEY,
            district_name text NOT NULL,
            department text,
            facade text
        );

        CREATE TABLE reference.fleet_segments (
            year integer NOT NULL,
            segment text NOT NULL,
            segment_name text,
            gears text[],
            fao_areas text[],
            target_species text[],
            impact_risk_factor double precision,
            PRIMARY KEY (year, segment)
        );

        CREATE TABLE reference.anchorages (
            h3 text PRIMARY KEY,
            port_locode text,
            distance_m double precision,
            source text NOT NULL
        );
        """
    )


def downgrade() -> None:
    for table in (
        "anchorages",
        "fleet_segments",
        "districts",
        "ports",
        "fishing_gear_codes",
        "species",
        "vessels",
    ):
        op.execute(f"DROP TABLE IF EXISTS reference.{table}")
