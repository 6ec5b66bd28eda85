"""The command line explains itself."""

import pytest

from platform_assets.cli import build_parser, main


@pytest.mark.parametrize("command", [[], ["db"], ["env"], ["migrate"], ["demo"], ["dev"]])
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
