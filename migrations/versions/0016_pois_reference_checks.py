"""POI references checked once per statement instead of once per row.

A first load of 100,000 events writes about 500,000 referencing rows (address_poi twice,
activity, registered_poi). Declared foreign keys check each row with its own query (and a
FOR KEY SHARE lock of the parent): that made the COPYs themselves 2.5-3 times slower here
(benchmarks/pois.py). The same guarantees are now kept by statement-level triggers that check
all the rows of a statement in one join (transition tables):

- child side (`pois.check_references`, AFTER INSERT / AFTER UPDATE of address_poi, activity,
  registered_poi): every referenced id exists, or `foreign_key_violation`, checked by one probe
  per distinct id. Parents written by another transaction are then locked FOR KEY SHARE, as a
  foreign key does, so a concurrent DELETE waits and then fails; parents written by this
  transaction (a load's new rows, the POIs it just updated) need no lock: nobody else can see
  them before it commits.
- parent side (`pois.check_unreferenced`, AFTER DELETE of poi, address): no remaining row
  references a deleted id (a fresh snapshot: sees children committed meanwhile); ids never
  change (`pois.forbid_id_change`); TRUNCATE of a parent fails while children remain.

poi_history keeps its declared foreign key (a few rows per changed POI). The one difference
with declared keys: the checks are not deferrable, so a statement writing children must come
after the one writing their parents (the loader COPYs poi first, address before address_poi).

Revision ID: 0016_pois
Revises: 0015_positions
Create Date: 2026-12-03
"""

from alembic import op

revision = "0016_pois"
down_revision = "0015_positions"
branch_labels = None
depends_on = None

# (child table, column, parent table)
REFERENCES = (
    ("address_poi", "poi_id", "poi"),
    ("address_poi", "address_id", "address"),
    ("activity", "poi_id", "poi"),
    ("registered_poi", "poi_id", "poi"),
)
FOREIGN_KEYS = (
    ("address_poi", "address_poi_poi_id_fkey"),
    ("address_poi", "address_poi_address_id_fkey"),
    ("activity", "activity_poi_id_fkey"),
    ("registered_poi", "registered_poi_poi_id_fkey"),
)

FUNCTIONS = """
CREATE FUNCTION pois.check_references() RETURNS trigger
LANGUAGE plpgsql AS $$
-- AFTER INSERT/UPDATE ... FOR EACH STATEMENT, transition tables new_rows (and old_rows on
-- UPDATE: a reference an updated row already held is not checked again, as with a foreign key);
-- arguments: pairs (column, parent table)
DECLARE
    ids text;
    wanted bigint;
    missing bigint;
    others bigint;
    locked bigint;
    example text;
BEGIN
    FOR i IN 0 .. TG_NARGS - 1 BY 2 LOOP
        IF TG_OP = 'UPDATE' THEN
            ids := format('SELECT n.%1$I AS id FROM new_rows n WHERE n.%1$I IS NOT NULL '
                          'EXCEPT SELECT o.%1$I FROM old_rows o', TG_ARGV[i]);
        ELSE
            ids := format('SELECT DISTINCT n.%1$I AS id FROM new_rows n '
                          'WHERE n.%1$I IS NOT NULL', TG_ARGV[i]);
        END IF;
        -- one probe per distinct id: is it there, and was it written by another transaction?
        EXECUTE format(
            'SELECT count(*), count(*) FILTER (WHERE p.id IS NULL), '
            'count(*) FILTER (WHERE p.xmin <> pg_current_xact_id()::xid), '
            'min(n.id::text) FILTER (WHERE p.id IS NULL) '
            'FROM (%1$s) n LEFT JOIN pois.%2$I p ON p.id = n.id',
            ids, TG_ARGV[i + 1]) INTO wanted, missing, others, example;
        IF missing = 0 AND others > 0 THEN
            -- as a foreign key does: lock them, so that a concurrent DELETE waits for us (and
            -- then fails); one deleted meanwhile is not returned, and counts as missing
            EXECUTE format(
                'SELECT count(*) FROM (SELECT 1 FROM pois.%2$I p WHERE p.id IN '
                '(SELECT id FROM (%1$s) n) FOR KEY SHARE OF p) locked',
                ids, TG_ARGV[i + 1]) INTO locked;
            missing := wanted - locked;
        END IF;
        IF missing > 0 THEN
            RAISE foreign_key_violation USING
                MESSAGE = format('insert or update on table "%s" violates its reference to '
                                 '"%s": %s id(s) missing (e.g. %s = %s)', TG_TABLE_NAME,
                                 TG_ARGV[i + 1], missing, TG_ARGV[i],
                                 coalesce(example, 'deleted meanwhile')),
                TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE FUNCTION pois.check_unreferenced() RETURNS trigger
LANGUAGE plpgsql AS $$
-- AFTER DELETE ... FOR EACH STATEMENT, transition table old_rows;
-- arguments: pairs (child table, column)
DECLARE
    held text;
BEGIN
    FOR i IN 0 .. TG_NARGS - 1 BY 2 LOOP
        EXECUTE format(
            'SELECT c.%2$I::text FROM pois.%1$I c WHERE c.%2$I IN (SELECT o.id FROM old_rows o) '
            'LIMIT 1', TG_ARGV[i], TG_ARGV[i + 1]) INTO held;
        IF held IS NOT NULL THEN
            RAISE foreign_key_violation USING
                MESSAGE = format('delete on table "%s" violates the reference from "%s": '
                                 '%s.id = %s is still referenced', TG_TABLE_NAME, TG_ARGV[i],
                                 TG_TABLE_NAME, held),
                TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE FUNCTION pois.check_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
-- AFTER TRUNCATE: children truncated by the same command are already empty here
DECLARE
    held boolean;
BEGIN
    FOR i IN 0 .. TG_NARGS - 1 BY 2 LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM pois.%I)', TG_ARGV[i]) INTO held;
        IF held THEN
            RAISE foreign_key_violation USING
                MESSAGE = format('cannot truncate "%s": "%s" references it (truncate both)',
                                 TG_TABLE_NAME, TG_ARGV[i]);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE FUNCTION pois.forbid_id_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE foreign_key_violation USING
        MESSAGE = format('%s.id never changes (%s -> %s): other tables reference it',
                         TG_TABLE_NAME, OLD.id, NEW.id);
END
$$;
"""


def _children(parent: str) -> str:
    pairs = [f"'{child}', '{column}'" for child, column, p in REFERENCES if p == parent]
    return ", ".join(pairs)


def upgrade() -> None:
    op.execute(FUNCTIONS)
    for child in dict.fromkeys(child for child, _, _ in REFERENCES):
        args = ", ".join(f"'{c}', '{p}'" for t, c, p in REFERENCES if t == child)
        for event, tables in (
            ("INSERT", "NEW TABLE AS new_rows"),
            ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ):
            op.execute(
                f"CREATE TRIGGER {child}_references_{event.lower()} AFTER {event} "
                f"ON pois.{child} REFERENCING {tables} FOR EACH STATEMENT "
                f"EXECUTE FUNCTION pois.check_references({args})"
            )
    for parent in ("poi", "address"):
        op.execute(
            f"CREATE TRIGGER {parent}_unreferenced AFTER DELETE ON pois.{parent} "
            "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
            f"EXECUTE FUNCTION pois.check_unreferenced({_children(parent)})"
        )
        op.execute(
            f"CREATE TRIGGER {parent}_truncate AFTER TRUNCATE ON pois.{parent} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION pois.check_truncate({_children(parent)})"
        )
        op.execute(
            f"CREATE TRIGGER {parent}_id_fixed BEFORE UPDATE OF id ON pois.{parent} "
            "FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) "
            "EXECUTE FUNCTION pois.forbid_id_change()"
        )
    for table, name in FOREIGN_KEYS:
        op.execute(f"ALTER TABLE pois.{table} DROP CONSTRAINT {name}")


def downgrade() -> None:
    op.execute(
        "ALTER TABLE pois.address_poi ADD CONSTRAINT address_poi_poi_id_fkey "
        "FOREIGN KEY (poi_id) REFERENCES pois.poi (id)"
    )
    op.execute(
        "ALTER TABLE pois.address_poi ADD CONSTRAINT address_poi_address_id_fkey "
        "FOREIGN KEY (address_id) REFERENCES pois.address (id)"
    )
    op.execute(
        "ALTER TABLE pois.activity ADD CONSTRAINT activity_poi_id_fkey "
        "FOREIGN KEY (poi_id) REFERENCES pois.poi (id)"
    )
    op.execute(
        "ALTER TABLE pois.registered_poi ADD CONSTRAINT registered_poi_poi_id_fkey "
        "FOREIGN KEY (poi_id) REFERENCES pois.poi (id) DEFERRABLE INITIALLY DEFERRED"
    )
    for child in dict.fromkeys(child for child, _, _ in REFERENCES):
        for event in ("insert", "update"):
            op.execute(f"DROP TRIGGER {child}_references_{event} ON pois.{child}")
    for parent in ("poi", "address"):
        for suffix in ("unreferenced", "truncate", "id_fixed"):
            op.execute(f"DROP TRIGGER {parent}_{suffix} ON pois.{parent}")
    op.execute(
        "DROP FUNCTION pois.check_references(), pois.check_unreferenced(), "
        "pois.check_truncate(), pois.forbid_id_change()"
    )
