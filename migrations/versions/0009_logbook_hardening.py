"""Logbook hardening: raw bytes of quarantined input, conflicting operation numbers.

- logbook_quarantine keeps exactly the bytes received (``raw_bytes``, bytea) and, for people, a
  text rendering that may be absent (``raw_message``: nothing readable, e.g. a corrupt archive
  member, whose bytes are the member's compressed stream). ``kind`` says why an item is there:
  ``parse`` (the message does not parse), ``unreadable`` (a file or archive member that could not
  be read: corrupt, encrypted, over the size or ratio cap; ``origin`` tells replay how to read the
  bytes again), ``conflict`` (a different message under an operation number already stored;
  ``operation_number`` and ``conflicts_with`` name the stored one).
- logbook_raw_messages.content_sha256: what a message re-delivered under a stored operation number
  is compared with (SHA-256 of its text as UTF-8, without padding nor XML declaration, as
  load.RawMessage.content_sha256 computes it), so an identical re-delivery is skipped (whatever
  its encoding) and a different one is quarantined as a conflict.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Whitespace and the inverted question mark some ERS senders pad messages with (parse._PADDING).
_PADDING = "E' \\t\\r\\n\\u00bf'"


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE logbook.logbook_raw_messages ADD COLUMN content_sha256 text;
        UPDATE logbook.logbook_raw_messages
        SET content_sha256 = encode(sha256(convert_to(btrim(regexp_replace(
            btrim(xml_message, {_PADDING}), '^<\\?xml[^>]*\\?>', ''), {_PADDING}), 'UTF8')), 'hex');
        ALTER TABLE logbook.logbook_raw_messages ALTER COLUMN content_sha256 SET NOT NULL;

        ALTER TABLE logbook.logbook_quarantine
            ALTER COLUMN raw_message DROP NOT NULL,
            ADD COLUMN kind text NOT NULL DEFAULT 'parse'
                CHECK (kind IN ('parse', 'unreadable', 'conflict')),
            ADD COLUMN origin jsonb,
            ADD COLUMN operation_number text,
            ADD COLUMN conflicts_with text;
        COMMENT ON COLUMN logbook.logbook_quarantine.raw_bytes IS
            'exactly the bytes received (for an unreadable archive member: its stored stream)';
        COMMENT ON COLUMN logbook.logbook_quarantine.origin IS
            'how replay reads raw_bytes again (zip method, CRC and size of a member; or a whole archive)';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        UPDATE logbook.logbook_quarantine SET raw_message = '' WHERE raw_message IS NULL;
        ALTER TABLE logbook.logbook_quarantine
            DROP COLUMN conflicts_with,
            DROP COLUMN operation_number,
            DROP COLUMN origin,
            DROP COLUMN kind,
            ALTER COLUMN raw_message SET NOT NULL;
        ALTER TABLE logbook.logbook_raw_messages DROP COLUMN content_sha256;
        """
    )
