"""The logbook inbox: files dropped by the national hub, zip archives or single XML messages."""

from __future__ import annotations

import bz2
import io
import lzma
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

from platform_assets.logbook.load import RawMessage
from platform_assets.ops.inbox_files import (  # noqa: F401 - re-exported for callers
    InboxFile,
    file_sha256,
    inbox_file_at,
    list_files,
    takes,
)

SUFFIXES = (".zip", ".xml")


def is_inbox_file(path: Path) -> bool:
    """A file the inbox takes: zip or XML, not hidden (partial uploads are dot-files)."""
    return takes(path, SUFFIXES)


def list_inbox(directory: Path) -> list[InboxFile]:
    """Inbox files in name order (hidden and partial uploads ignored)."""
    return list_files(directory, SUFFIXES)


# One message (a plain file or an archive member) is refused beyond this size, and a member
# inflating more than MAX_MEMBER_RATIO times its compressed size once past RATIO_FLOOR bytes (XML
# compresses 5-30 times; a zip bomb a thousand). An archive stops inflating members past the same
# ratio over its whole size. Members are streamed, so memory holds at most one cap per member.
MAX_MEMBER_BYTES = 64 * 1024 * 1024
MAX_MEMBER_RATIO = 200
RATIO_FLOOR = 1024 * 1024
_CHUNK = 1024 * 1024
_ENCRYPTED = 0x1  # general purpose flag bit 0
# Inflating a member raises any of these on damaged or unsupported data.
_MEMBER_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    RuntimeError,
    NotImplementedError,
    ValueError,
)


class _TooLarge(ValueError):
    """A member over the size or ratio cap."""


def read_messages(path: Path) -> Iterator[RawMessage]:
    """The messages of an inbox file: each XML member of a zip, or the file itself.

    Never raises for bad content: a file or member that cannot be read is yielded with its
    ``error`` set (and the bytes kept for it), so that ``ingest`` quarantines it and the other
    members and files still load.
    """
    if path.suffix.lower() == ".zip":
        try:
            handle = path.open("rb")
        except OSError as exc:
            yield RawMessage(path.name, path.name, b"", error=f"{path.name}: cannot open ({exc})")
            return
        with handle:
            yield from read_archive(path.name, handle)
        return
    try:
        size = path.stat().st_size
        if size > MAX_MEMBER_BYTES:
            yield RawMessage(
                path.name,
                path.name,
                b"",
                error=f"{path.name}: {size} bytes, over the {MAX_MEMBER_BYTES}-byte cap of one "
                "message (not read, not kept)",
            )
            return
        data = path.read_bytes()
    except OSError as exc:
        yield RawMessage(path.name, path.name, b"", error=f"{path.name}: cannot read ({exc})")
        return
    yield RawMessage(path.name, path.name, data)


def read_archive(name: str, handle: BinaryIO) -> Iterator[RawMessage]:
    """The XML members of the zip archive in ``handle`` (named ``name``), in member name order.

    An archive that cannot be opened is one unreadable item holding its bytes; a member that
    cannot be inflated (corrupt, encrypted, unsupported, over the caps) is one unreadable item
    holding its compressed bytes, with what replay needs to inflate them again.
    """
    try:
        archive = zipfile.ZipFile(handle)
    except _MEMBER_ERRORS as exc:
        handle.seek(0)
        data = handle.read(MAX_MEMBER_BYTES + 1)
        kept = data if len(data) <= MAX_MEMBER_BYTES else b""
        yield RawMessage(
            name,
            name,
            kept,
            error=f"{name}: not a readable zip archive ({exc})"
            + ("" if kept else " (over the size cap: bytes not kept)"),
            origin={"archive": "zip"} if kept else None,
        )
        return
    try:
        archive_size = handle.seek(0, io.SEEK_END)
    except OSError:
        archive_size = 0
    inflated = 0
    with archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            if info.is_dir() or not info.filename.lower().endswith(".xml"):
                continue
            if inflated > RATIO_FLOOR and inflated > MAX_MEMBER_RATIO * max(archive_size, 1):
                yield _unreadable_member(
                    name,
                    handle,
                    info,
                    f"the archive inflates beyond {MAX_MEMBER_RATIO} times its "
                    f"{archive_size} bytes (zip bomb?): member not inflated",
                )
                continue
            message = _read_member(name, archive, handle, info)
            inflated += len(message.data) if message.error is None else 0
            yield message


def _read_member(
    name: str, archive: zipfile.ZipFile, handle: BinaryIO, info: zipfile.ZipInfo
) -> RawMessage:
    """One member, streamed under the caps, or an unreadable item saying why."""
    if info.flag_bits & _ENCRYPTED:
        return _unreadable_member(name, handle, info, "encrypted member (password required)")
    if info.file_size > MAX_MEMBER_BYTES:
        return _unreadable_member(
            name,
            handle,
            info,
            f"declares {info.file_size} bytes, over the {MAX_MEMBER_BYTES}-byte cap of one "
            "message (zip bomb?)",
        )
    try:
        with archive.open(info) as stream:
            data = _read_capped(stream, info.compress_size)
    except (*_MEMBER_ERRORS, _TooLarge) as exc:
        reason = str(exc) or type(exc).__name__
        return _unreadable_member(name, handle, info, f"cannot be inflated: {reason}")
    return RawMessage(name, info.filename, data)


def _read_capped(stream: IO[bytes], compressed_size: int) -> bytes:
    """All of ``stream``, refusing it as soon as it passes the size or ratio cap."""
    buffer = bytearray()
    while chunk := stream.read(_CHUNK):
        buffer += chunk
        size = len(buffer)
        if size > MAX_MEMBER_BYTES:
            raise _TooLarge(f"inflates beyond the {MAX_MEMBER_BYTES}-byte cap of one message")
        if size > RATIO_FLOOR and size > MAX_MEMBER_RATIO * max(compressed_size, 1):
            raise _TooLarge(
                f"inflates beyond {MAX_MEMBER_RATIO} times its {compressed_size} compressed "
                "bytes (zip bomb?)"
            )
    return bytes(buffer)


def _unreadable_member(
    name: str, handle: BinaryIO, info: zipfile.ZipInfo, reason: str
) -> RawMessage:
    """A member that cannot be read, with its stored (compressed) bytes and, unless encrypted,
    the zip method, CRC and size that let replay inflate them again."""
    stored = _stored_bytes(handle, info)
    origin: dict[str, Any] | None = None
    if stored and not info.flag_bits & _ENCRYPTED:
        origin = {"zip_method": info.compress_type, "crc": info.CRC, "size": info.file_size}
    return RawMessage(
        name, info.filename, stored, error=f"{name}:{info.filename}: {reason}", origin=origin
    )


def _stored_bytes(handle: BinaryIO, info: zipfile.ZipInfo) -> bytes:
    """The member's data as stored in the archive (after its local header), or b"" if the
    header cannot be found: what an operator can still try to recover."""
    try:
        handle.seek(info.header_offset)
        header = handle.read(30)
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            return b""
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        handle.seek(info.header_offset + 30 + name_length + extra_length)
        return handle.read(min(info.compress_size, MAX_MEMBER_BYTES))
    except (OSError, ValueError, struct.error):
        return b""


def inflate_stored(raw: RawMessage) -> RawMessage:
    """Read an unreadable item again from its kept bytes (replay after a reader fix or a cap
    change): a member's stored stream is inflated under the caps and checked against its CRC; a
    whole archive is read again. Returns the message, or the item with its new error."""
    origin = raw.origin or {}
    if origin.get("archive") == "zip":
        raise ValueError("a whole archive is read again with read_archive, not inflate_stored")
    method = origin.get("zip_method")
    where = f"{raw.source_file}:{raw.member}"
    if method is None:  # encrypted, or nothing kept: nothing to try, the error stands
        return raw
    decompressors: dict[int, Callable[[], Any]] = {
        zipfile.ZIP_DEFLATED: lambda: zlib.decompressobj(-15),
        zipfile.ZIP_BZIP2: bz2.BZ2Decompressor,
    }
    try:
        if method == zipfile.ZIP_STORED:
            data = raw.data
            if len(data) > MAX_MEMBER_BYTES:
                raise _TooLarge(f"beyond the {MAX_MEMBER_BYTES}-byte cap of one message")
        elif method in decompressors:
            data = _inflate(decompressors[method](), raw.data)
        else:
            return _still_unreadable(raw, f"zip method {method} cannot be replayed")
        if len(data) != origin.get("size") or zlib.crc32(data) != origin.get("crc"):
            raise zipfile.BadZipFile(f"bad CRC-32 or size for {where}")
    except (*_MEMBER_ERRORS, _TooLarge) as exc:
        return _still_unreadable(raw, f"cannot be inflated: {exc or type(exc).__name__}")
    return RawMessage(raw.source_file, raw.member, data)


def _inflate(decompressor: Any, compressed: bytes) -> bytes:
    """``compressed`` through ``decompressor`` under the size and ratio caps."""
    buffer = bytearray()
    pending = compressed
    while True:
        chunk = decompressor.decompress(pending, _CHUNK)
        buffer += chunk
        size = len(buffer)
        if size > MAX_MEMBER_BYTES:
            raise _TooLarge(f"inflates beyond the {MAX_MEMBER_BYTES}-byte cap of one message")
        if size > RATIO_FLOOR and size > MAX_MEMBER_RATIO * max(len(compressed), 1):
            raise _TooLarge(f"inflates beyond {MAX_MEMBER_RATIO} times its compressed size")
        pending = getattr(decompressor, "unconsumed_tail", b"")
        if getattr(decompressor, "eof", False) or (not chunk and not pending):
            return bytes(buffer)
        if not pending and getattr(decompressor, "needs_input", False):
            return bytes(buffer)


def _still_unreadable(raw: RawMessage, reason: str) -> RawMessage:
    return RawMessage(
        raw.source_file,
        raw.member,
        raw.data,
        error=f"{raw.source_file}:{raw.member}: {reason}",
        origin=raw.origin,
    )


def read_again(raw: RawMessage) -> list[RawMessage]:
    """The messages an unreadable quarantined item yields when read again from its bytes."""
    if (raw.origin or {}).get("archive") == "zip":
        return list(read_archive(raw.source_file, io.BytesIO(raw.data)))
    return [inflate_stored(raw)]
