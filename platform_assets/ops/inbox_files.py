"""Files waiting in an inbox folder, identified by their content hash (every file inbox uses it).

A sensor lists its inbox every tick: each file is hashed once per (path, size, mtime), so a tick
does not re-read the files it has already seen.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from platform_assets.ops.catalog import CatalogItem


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

    def catalog_item(self, repository: str, source: str) -> CatalogItem:
        """The file as a catalog item: identifier = file name, sub-identifier = content hash, as
        the inbox sensors look files up (`ingested_hashes`: by hash, whatever the name)."""
        return CatalogItem(
            repository=repository,
            source=source,
            identifier=self.path.name,
            sub_identifier=self.sha256,
            location=str(self.path),
            content_hash=self.sha256,
            size_bytes=self.size,
        )


def file_sha256(path: Path) -> str:
    """Hash of a file's bytes (as stored, compressed or not), streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=65536)
def _content_sha256(path: str, size: int, mtime_ns: int) -> str:
    """``file_sha256`` remembered per (path, size, mtime)."""
    return file_sha256(Path(path))


def takes(path: Path, suffixes: Collection[str]) -> bool:
    """A file of one of ``suffixes``, not hidden (partial uploads are dot-files)."""
    return path.is_file() and path.suffix.lower() in suffixes and not path.name.startswith(".")


def inbox_file_at(path: Path) -> InboxFile:
    """``path`` with its content hash and size."""
    stat = path.stat()
    return InboxFile(path, _content_sha256(str(path), stat.st_size, stat.st_mtime_ns), stat.st_size)


def list_files(directory: Path, suffixes: Collection[str]) -> list[InboxFile]:
    """Inbox files in name order (hidden and partial uploads ignored)."""
    if not directory.is_dir():
        return []
    return [inbox_file_at(p) for p in sorted(directory.iterdir()) if takes(p, suffixes)]
