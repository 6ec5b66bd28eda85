"""The embedded default: started on demand, shared by processes, left running, stopped on request."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from resources.warehouse import embedded_server_uri, start_embedded, stop_embedded

START = (
    "from pathlib import Path; import sys; from resources.warehouse import start_embedded; "
    "print(start_embedded(Path(sys.argv[1])).libpq)"
)


@pytest.fixture
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # short path: the server's socket lives in its data directory
    path = Path(f"/tmp/fishnet-emb-{os.getpid()}")
    yield path
    stop_embedded(path)
    subprocess.run(["rm", "-rf", str(path)], check=False)


def test_processes_started_together_share_one_server_that_outlives_them(state: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", START, str(state)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    urls = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(urls) == 1  # one server, one warehouse database
    url = urls.pop()
    assert "/fishnet?" in url
    # the starting processes are gone; the server is still there
    assert embedded_server_uri(state) is not None
    with psycopg.connect(url) as conn:
        assert conn.execute("SHOW server_version").fetchone()[0].startswith("18")

    assert start_embedded(state).libpq == url  # reuse
    assert stop_embedded(state) is True
    assert embedded_server_uri(state) is None
    assert stop_embedded(state) is False
