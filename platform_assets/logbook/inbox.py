"""The logbook inbox: files dropped by the national hub, zip archives or single XML messages."""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=65536)
def _content_sha256(path: str, size: int, mtime_ns: int) -> str:
    """``file_sha256`` remembered per (path, size, mtime): the sensor lists the inbox every tick
    and must not re-read every file it already hashed."""
    return file_sha256(Path(path))


def is_inbox_file(path: Path) -> bool:
    """A file the inbox takes: zip or XML, not hidden (partial uploads are dot-files)."""
    return path.is_file() and path.suffix.lower() in SUFFIXES and not path.name.startswith(".")


def inbox_file_at(path: Path) -> InboxFile:
    """``path`` with its content hash and size."""
    stat = path.stat()
    return InboxFile(path, _content_sha256(str(path), stat.st_size, stat.st_mtime_ns), stat.st_size)


def list_inbox(directory: Path) -> list[InboxFile]:
    """Inbox files in name order (hidden and partial uploads ignored)."""
    if not directory.is_dir():
        return []
    return [inbox_file_at(p) for p in sorted(directory.iterdir()) if is_inbox_file(p)]


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
