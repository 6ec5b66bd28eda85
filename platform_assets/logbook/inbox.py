"""The logbook inbox: files dropped by the national hub, zip archives or single XML messages."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from platform_assets.logbook.load import RawMessage

SUFFIXES = (".zip", ".xml")


class InboxFileError(ValueError):
    """An inbox file that cannot be opened at all (its messages could not be read)."""


@dataclass(frozen=True)
class InboxFile:
    """A file waiting in the inbox, identified by its content hash."""

    path: Path
    sha256: str
    size: int

    @property
    def run_key(self) -> str:
        """One run per file content: a renamed copy is the same work, a new version is not."""
        return f"{self.path.name}:{self.sha256[:16]}"


def file_sha256(path: Path) -> str:
    """Hash of a file's bytes, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def list_inbox(directory: Path) -> list[InboxFile]:
    """Inbox files in name order (hidden and partial uploads ignored)."""
    if not directory.is_dir():
        return []
    files = [
        p
        for p in sorted(directory.iterdir())
        if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith(".")
    ]
    return [InboxFile(p, file_sha256(p), p.stat().st_size) for p in files]


def read_messages(path: Path) -> Iterator[RawMessage]:
    """The messages of an inbox file: each XML member of a zip, or the file itself."""
    if path.suffix.lower() == ".zip":
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise InboxFileError(f"{path.name}: not a readable zip archive ({exc})") from exc
        with archive:
            for info in sorted(archive.infolist(), key=lambda i: i.filename):
                if info.is_dir() or not info.filename.lower().endswith(".xml"):
                    continue
                yield RawMessage(path.name, info.filename, archive.read(info))
    else:
        yield RawMessage(path.name, path.name, path.read_bytes())
