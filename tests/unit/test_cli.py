"""The command line explains itself."""

from pathlib import Path

import pytest

from platform_assets.cli import build_parser, main


@pytest.mark.parametrize(
    "command", [[], ["db"], ["env"], ["migrate"], ["demo"], ["dev"], ["feed"], ["feed", "replay"]]
)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "usage: fishnet" in out


def test_db_actions_are_listed() -> None:
    text = build_parser().format_help()
    for word in ("db", "env", "migrate", "demo", "dev"):
        assert word in text


def test_a_lost_embedded_server_is_explained_not_dumped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dagster_postgres.utils import DagsterPostgresException

    from platform_assets import cli

    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("FISHNET_STATE_DIR", str(tmp_path))  # no server was ever started there

    def dies(args: object) -> int:
        raise DagsterPostgresException("too many retries for DB connection")

    monkeypatch.setattr(cli, "_cmd_env", dies)  # the command fails as a dead server makes it
    assert cli.main(["env"]) == 2
    err = capsys.readouterr().err
    assert "embedded PostgreSQL" in err and "fishnet db start" in err
    assert "Traceback" not in err


def test_other_errors_are_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    from platform_assets import cli

    assert cli.explain_database_loss(ValueError("bad")) is None
