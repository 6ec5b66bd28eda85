"""Catalogue items the harvester rejected, kept (raw + reason) for people and for replay.

The harvest window moves past a rejected item (the rest must go on), so without this table it
would never be fetched again. Every harvest re-reads the unresolved ones; those that now parse
become inputs and are marked resolved.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE processing.rejected_catalogue_item (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            source text NOT NULL,               -- the harvest source key (collection + filter)
            raw_sha256 text NOT NULL,
            item_id text,                       -- the item's Id when it has a usable one
            raw jsonb NOT NULL,                 -- the item exactly as the catalogue returned it
            reason text NOT NULL,
            first_seen_at timestamptz NOT NULL DEFAULT now(),
            last_attempt_at timestamptz NOT NULL DEFAULT now(),
            attempts integer NOT NULL DEFAULT 1,
            resolved_at timestamptz,
            input_id bigint REFERENCES processing.input (id),
            UNIQUE (source, raw_sha256)
        );
        CREATE INDEX rejected_catalogue_item_open_idx
            ON processing.rejected_catalogue_item (source) WHERE resolved_at IS NULL;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS processing.rejected_catalogue_item")
