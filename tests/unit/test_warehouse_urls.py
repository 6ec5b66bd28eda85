"""How a DATABASE_URL is spelled for each client."""

import pytest

from resources.warehouse import DatabaseUrls, WarehouseError


@pytest.mark.parametrize(
    "raw",
    [
        "postgresql://u:p%40ss@db.example:5433/wh",
        "postgres://u:p%40ss@db.example:5433/wh",
        "postgresql+psycopg2://u:p%40ss@db.example:5433/wh",
        "postgresql+psycopg://u:p%40ss@db.example:5433/wh",
    ],
)
def test_every_spelling_gives_the_same_server_for_each_client(raw: str) -> None:
    urls = DatabaseUrls.parse(raw)
    assert urls.libpq == "postgresql://u:p%40ss@db.example:5433/wh"
    assert urls.sqlalchemy == "postgresql+psycopg://u:p%40ss@db.example:5433/wh"
    assert urls.dagster == "postgresql+psycopg2://u:p%40ss@db.example:5433/wh"


def test_unix_socket_urls_keep_their_host_directory() -> None:
    urls = DatabaseUrls.parse("postgresql://postgres:@/postgres?host=/tmp/pg")
    assert urls.for_database("fishnet").libpq == "postgresql://postgres:@/fishnet?host=%2Ftmp%2Fpg"


def test_other_databases_are_refused() -> None:
    with pytest.raises(WarehouseError, match="must point at PostgreSQL"):
        DatabaseUrls.parse("mysql://u@h/db")
