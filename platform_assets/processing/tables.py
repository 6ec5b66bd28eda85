"""SQLAlchemy Core handles on the processing tables the Dagster layer writes (schema: migrations)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

input_table = sa.Table(
    "input",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("product_type", sa.Text, nullable=False),
    sa.Column("catalogue_id", sa.Text, nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("path", sa.Text),
    sa.Column("measurement_date", sa.DateTime(timezone=True)),
    sa.Column("publication_date", sa.DateTime(timezone=True)),
    sa.Column("tile", sa.Text),
    sa.Column(
        "harvested_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("source_product_id", sa.BigInteger),
    schema="processing",
)

harvest_cursor = sa.Table(
    "harvest_cursor",
    metadata,
    sa.Column("source", sa.Text, primary_key=True),
    sa.Column("published_after", sa.DateTime(timezone=True)),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    schema="ops",
)
