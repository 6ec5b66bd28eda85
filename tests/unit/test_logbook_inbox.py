"""The logbook inbox: which files a run takes, and hashing each file's content once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from platform_assets.logbook import inbox
from platform_assets.logbook.assets import _requested_files
from platform_assets.ops import inbox_files


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file whose bytes get hashed."""
    read: list[Path] = []
    real = inbox_files.file_sha256

    def counting(path: Path) -> str:
        read.append(path)
        return real(path)

    monkeypatch.setattr(inbox_files, "file_sha256", counting)
    return read


def test_the_inbox_lists_zip_and_xml_files_in_name_order(tmp_path: Path) -> None:
    for name in ["b.xml", "a.zip", ".partial.zip", "notes.txt", "C.XML"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "dir.zip").mkdir()

    assert [f.path.name for f in inbox.list_inbox(tmp_path)] == ["C.XML", "a.zip", "b.xml"]
    assert inbox.list_inbox(tmp_path / "absent") == []


def test_a_file_is_hashed_once_until_it_changes(tmp_path: Path, hashes: list[Path]) -> None:
    path = tmp_path / "m.xml"
    path.write_bytes(b"<OPS/>")
    first = inbox.inbox_file_at(path)
    assert inbox.inbox_file_at(path) == first
    assert hashes == [path]

    path.write_bytes(b"<OPS ON='1'/>")
    os.utime(path, ns=(1, 1))  # a new mtime even on a coarse clock
    changed = inbox.inbox_file_at(path)
    assert changed.sha256 != first.sha256
    assert hashes == [path, path]


def test_a_run_takes_the_named_files_only_and_names_what_is_missing(
    tmp_path: Path, hashes: list[Path]
) -> None:
    box, elsewhere = tmp_path / "inbox", tmp_path / "elsewhere"
    box.mkdir()
    elsewhere.mkdir()
    for name in ["a.zip", "b.zip", "c.xml"]:
        (box / name).write_bytes(name.encode())
    (elsewhere / "d.xml").write_bytes(b"d")

    files, missing = _requested_files(box, ["b.zip", str(elsewhere / "d.xml"), "z.zip", "b.zip"])

    assert [f.path for f in files] == [box / "b.zip", elsewhere / "d.xml"]
    assert missing == [str(box / "z.zip")]
    assert sorted(hashes) == sorted([box / "b.zip", elsewhere / "d.xml"])  # not the whole inbox


def test_a_run_without_names_takes_the_whole_inbox(tmp_path: Path) -> None:
    for name in ["a.zip", "b.xml"]:
        (tmp_path / name).write_bytes(b"x")
    files, missing = _requested_files(tmp_path, [])
    assert [f.path.name for f in files] == ["a.zip", "b.xml"] and missing == []
