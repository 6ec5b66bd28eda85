"""References between the POI tables, checked per statement (migration 0016): what declared foreign
keys guaranteed still holds, including against a concurrent delete."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from resources.warehouse import WarehouseResource


@pytest.fixture
def conn(warehouse: WarehouseResource):
    with warehouse.connect(autocommit=True) as connection:
        yield connection


def new_poi(conn: psycopg.Connection, name: str = "Trail") -> int:
    return conn.execute(
        "INSERT INTO pois.poi (kind, name) VALUES ('event', %s) RETURNING id", (name,)
    ).fetchone()[0]


def new_address(conn: psycopg.Connection) -> int:
    return conn.execute(
        "INSERT INTO pois.address (latitude, longitude) VALUES (45.9, 6.1) RETURNING id"
    ).fetchone()[0]


def add_activity(conn: psycopg.Connection, poi_id: int) -> None:
    conn.execute(
        "INSERT INTO pois.activity (poi_id, position, sport) VALUES (%s, 0, 'running')", (poi_id,)
    )


def test_a_row_referencing_a_missing_parent_is_refused(conn: psycopg.Connection) -> None:
    poi_id, address_id = new_poi(conn), new_address(conn)
    with pytest.raises(errors.ForeignKeyViolation, match="activity"):
        add_activity(conn, poi_id + 1000)
    with pytest.raises(errors.ForeignKeyViolation, match="address"):
        conn.execute(
            "INSERT INTO pois.address_poi (poi_id, address_id) VALUES (%s, %s)",
            (poi_id, address_id + 1000),
        )
    with pytest.raises(errors.ForeignKeyViolation, match="registered_poi"):
        conn.execute(
            "INSERT INTO pois.registered_poi (source, original_id, poi_id, content_hash) "
            "VALUES ('events', 'x', %s, 'h')",
            (poi_id + 1000,),
        )
    add_activity(conn, poi_id)  # an existing parent is fine
    with pytest.raises(errors.ForeignKeyViolation):
        conn.execute("UPDATE pois.activity SET poi_id = %s", (poi_id + 1000,))


def test_parents_and_children_written_in_one_transaction_pass(conn: psycopg.Connection) -> None:
    with conn.transaction():
        poi_id, address_id = new_poi(conn), new_address(conn)
        conn.execute(
            "INSERT INTO pois.address_poi (poi_id, address_id) VALUES (%s, %s)",
            (poi_id, address_id),
        )
        add_activity(conn, poi_id)
    assert conn.execute("SELECT count(*) FROM pois.address_poi").fetchone()[0] == 1


def test_a_referenced_parent_cannot_be_deleted_renumbered_or_truncated(
    conn: psycopg.Connection,
) -> None:
    poi_id, address_id = new_poi(conn), new_address(conn)
    conn.execute(
        "INSERT INTO pois.address_poi (poi_id, address_id) VALUES (%s, %s)", (poi_id, address_id)
    )
    with pytest.raises(errors.ForeignKeyViolation, match="still referenced"):
        conn.execute("DELETE FROM pois.poi WHERE id = %s", (poi_id,))
    with pytest.raises(errors.ForeignKeyViolation, match="still referenced"):
        conn.execute("DELETE FROM pois.address WHERE id = %s", (address_id,))
    with pytest.raises(errors.ForeignKeyViolation, match="never changes"):
        conn.execute("UPDATE pois.poi SET id = id + 1000 WHERE id = %s", (poi_id,))
    with pytest.raises(errors.ForeignKeyViolation, match="truncate"):
        conn.execute("TRUNCATE pois.poi CASCADE")  # poi_history only: address_poi still holds it
    conn.execute("UPDATE pois.poi SET name = 'Renamed'")  # other columns change freely
    conn.execute("DELETE FROM pois.address_poi")
    conn.execute("DELETE FROM pois.address WHERE id = %s", (address_id,))
    conn.execute("TRUNCATE pois.poi, pois.activity, pois.registered_poi, pois.address_poi CASCADE")


def test_a_child_insert_locks_its_parent_against_a_concurrent_delete(
    warehouse: WarehouseResource, conn: psycopg.Connection
) -> None:
    poi_id = new_poi(conn)  # committed: written by another transaction than the insert below
    with warehouse.connect(autocommit=True) as deleter:
        deleter.execute("SET lock_timeout = '300ms'")
        with conn.transaction():
            add_activity(conn, poi_id)
            with pytest.raises(errors.LockNotAvailable):  # the insert holds FOR KEY SHARE
                deleter.execute("DELETE FROM pois.poi WHERE id = %s", (poi_id,))
        with pytest.raises(errors.ForeignKeyViolation):  # committed: the child is seen
            deleter.execute("DELETE FROM pois.poi WHERE id = %s", (poi_id,))


def test_a_child_of_a_parent_deleted_meanwhile_is_refused(
    warehouse: WarehouseResource, conn: psycopg.Connection
) -> None:
    poi_id = new_poi(conn)
    with warehouse.connect(autocommit=True) as deleter:
        with deleter.transaction():
            deleter.execute("DELETE FROM pois.poi WHERE id = %s", (poi_id,))
            conn.execute("SET lock_timeout = '300ms'")
            with pytest.raises(errors.LockNotAvailable):  # waits for the deleter
                add_activity(conn, poi_id)
        with pytest.raises(errors.ForeignKeyViolation):  # the delete committed
            add_activity(conn, poi_id)


def test_the_orm_declares_the_foreign_keys_the_database_has(warehouse: WarehouseResource) -> None:
    import sqlalchemy as sa

    from platform_assets.pois.orm import Base

    inspector = sa.inspect(warehouse.engine)
    for table in Base.metadata.sorted_tables:
        in_db = {
            (tuple(fk["constrained_columns"]), fk["referred_table"])
            for fk in inspector.get_foreign_keys(table.name, schema="pois")
        }
        declared = {((fk.parent.name,), fk.column.table.name) for fk in table.foreign_keys}
        assert in_db == declared, table.name


def test_an_update_keeping_its_reference_does_not_lock_the_parent(
    warehouse: WarehouseResource, conn: psycopg.Connection
) -> None:
    poi_id = new_poi(conn)
    add_activity(conn, poi_id)
    with warehouse.connect(autocommit=True) as other:
        other.execute("SET lock_timeout = '300ms'")
        with conn.transaction():
            conn.execute("UPDATE pois.activity SET name = 'Renamed'")  # same poi_id: no lock
            # a FOR UPDATE of the parent would wait on a FOR KEY SHARE lock; it does not
            other.execute("SELECT 1 FROM pois.poi WHERE id = %s FOR UPDATE", (poi_id,))
