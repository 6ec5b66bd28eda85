"""Reading inbox files never raises on bad content: every unreadable file or archive member
becomes one item with its error and its bytes, and the other members are still read.

Archives are built byte by byte where ``zipfile`` will not write them (encrypted flag, a 1 GiB
member of zeros in about 1 MB): ``zip_archive`` writes local headers, central directory and end
record for members given as already-compressed streams.
"""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platform_assets.logbook import inbox
from platform_assets.logbook.inbox import read_again, read_archive, read_messages
from platform_assets.logbook.load import RawMessage, parse_batch
from platform_assets.samples.logbook import sample_messages

GOOD = [xml.encode() for _, xml in sample_messages(3, seed=5)]


@dataclass(frozen=True)
class Member:
    """An archive member as stored: name, zip method, stored bytes, CRC and size of the content."""

    name: str
    stored: bytes
    crc: int
    size: int
    method: int = zipfile.ZIP_DEFLATED
    flags: int = 0


def deflated(name: str, content: bytes) -> Member:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    stored = compressor.compress(content) + compressor.flush()
    return Member(name, stored, zlib.crc32(content), len(content))


def zeros_member(name: str, mebibytes: int) -> Member:
    """``mebibytes`` MiB of zeros in about a thousandth of that: one MiB of zeros compressed with a
    full flush is a self-contained block, repeated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    stored = block * mebibytes + compressor.flush()
    crc = 0
    zero = bytes(1 << 20)
    for _ in range(mebibytes):
        crc = zlib.crc32(zero, crc)
    return Member(name, stored, crc, mebibytes << 20)


def zip_archive(path: Path, members: list[Member]) -> Path:
    """Write ``members`` as a zip archive (no zip64: each member under 4 GiB)."""
    body, directory = bytearray(), bytearray()
    for member in members:
        name = member.name.encode()
        offset = len(body)
        body += struct.pack(
            "<4sHHHHHIIIHH",
            b"PK\x03\x04",
            20,
            member.flags,
            member.method,
            0,
            0x21,
            member.crc,
            len(member.stored),
            member.size,
            len(name),
            0,
        )
        body += name + member.stored
        directory += struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            20,
            20,
            member.flags,
            member.method,
            0,
            0x21,
            member.crc,
            len(member.stored),
            member.size,
            len(name),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        directory += name
    end = struct.pack(
        "<4sHHHHIIH",
        b"PK\x05\x06",
        0,
        0,
        len(members),
        len(members),
        len(directory),
        len(body),
        0,
    )
    path.write_bytes(bytes(body + directory + end))
    return path


def corrupted(member: Member) -> Member:
    """``member`` with its stored stream damaged in the middle."""
    stored = bytearray(member.stored)
    middle = len(stored) // 2
    stored[middle : middle + 8] = b"\xff" * 8
    return Member(member.name, bytes(stored), member.crc, member.size, member.method)


def _by_member(raws: list[RawMessage]) -> dict[str, RawMessage]:
    return {raw.member: raw for raw in raws}


# --- members that cannot be read --------------------------------------------------------------


def test_a_corrupt_member_is_one_item_and_the_other_members_are_read(tmp_path: Path) -> None:
    bad = corrupted(deflated("b.xml", GOOD[1] * 20))
    path = zip_archive(
        tmp_path / "mixed.zip", [deflated("a.xml", GOOD[0]), bad, deflated("c.xml", GOOD[2])]
    )
    raws = _by_member(list(read_messages(path)))

    assert list(raws) == ["a.xml", "b.xml", "c.xml"]
    assert (raws["a.xml"].data, raws["c.xml"].data) == (GOOD[0], GOOD[2])
    assert raws["a.xml"].error is None and raws["c.xml"].error is None
    item = raws["b.xml"]
    assert item.error is not None and item.error.startswith("mixed.zip:b.xml: cannot be inflated")
    assert item.data == bad.stored  # what was received, for an operator to recover
    assert item.origin == {"zip_method": zipfile.ZIP_DEFLATED, "crc": bad.crc, "size": bad.size}


def test_a_stored_member_with_a_bad_crc_is_one_item(tmp_path: Path) -> None:
    content = GOOD[0]
    damaged = Member("a.xml", content[:-3] + b"XXX", zlib.crc32(content), len(content), 0)
    raws = list(read_messages(zip_archive(tmp_path / "crc.zip", [damaged])))
    assert [r.error for r in raws] == [
        "crc.zip:a.xml: cannot be inflated: Bad CRC-32 for file 'a.xml'"
    ]


def test_an_encrypted_member_is_one_item_kept_but_not_replayable(tmp_path: Path) -> None:
    secret = deflated("secret.xml", GOOD[0])
    locked = Member(secret.name, secret.stored, secret.crc, secret.size, flags=0x1)
    path = zip_archive(tmp_path / "locked.zip", [locked, deflated("z.xml", GOOD[1])])
    raws = _by_member(list(read_messages(path)))

    assert raws["secret.xml"].error == "locked.zip:secret.xml: encrypted member (password required)"
    assert raws["secret.xml"].data == secret.stored and raws["secret.xml"].origin is None
    assert raws["z.xml"].data == GOOD[1]
    assert read_again(raws["secret.xml"]) == [raws["secret.xml"]]  # the error stands


def test_an_unreadable_archive_is_one_item_with_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "broken.zip"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    (item,) = read_messages(path)
    assert item.error is not None and item.error.startswith("broken.zip: not a readable zip")
    assert (item.member, item.data, item.origin) == (
        "broken.zip",
        path.read_bytes(),
        {"archive": "zip"},
    )
    assert read_again(item) == [item]  # read again from its bytes: the same item, same error


# --- zip bombs ----------------------------------------------------------------------------------


def test_a_zip_bomb_is_refused_from_its_declared_size_without_inflating(tmp_path: Path) -> None:
    bomb = zeros_member("bomb.xml", 1100)  # 1.07 GiB of zeros
    path = zip_archive(tmp_path / "bomb.zip", [bomb, deflated("ok.xml", GOOD[0])])
    assert path.stat().st_size < 1_500_000
    tracemalloc.start()
    try:
        raws = _by_member(list(read_messages(path)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < inbox.MAX_MEMBER_BYTES // 4, f"reading the bomb allocated {peak} bytes"
    assert f"over the {inbox.MAX_MEMBER_BYTES}-byte cap" in (raws["bomb.xml"].error or "")
    assert raws["bomb.xml"].data == bomb.stored  # its stored stream is kept (small)
    assert raws["ok.xml"].data == GOOD[0]


def test_a_member_inflating_beyond_the_ratio_is_stopped_while_streaming(tmp_path: Path) -> None:
    # Declares a size under the cap, so only the streaming check can stop it.
    zeros = zeros_member("zeros.xml", 48)
    path = zip_archive(tmp_path / "ratio.zip", [zeros])
    tracemalloc.start()
    try:
        (item,) = read_messages(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert item.error is not None and "times its" in item.error and "zip bomb" in item.error
    # Bounded by the ratio cap over the compressed size (plus a chunk or two), not by the 48 MiB.
    bound = max(inbox.RATIO_FLOOR, inbox.MAX_MEMBER_RATIO * len(zeros.stored)) + (4 << 20)
    assert peak < bound < 48 << 20, f"the stream was inflated whole ({peak} bytes)"


def test_an_archive_inflating_beyond_the_ratio_stops_inflating_members(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox, "RATIO_FLOOR", 1 << 16)
    monkeypatch.setattr(inbox, "MAX_MEMBER_RATIO", 50)
    members = [deflated(f"m{i:02}.xml", b"<a>" + b" " * 60_000 + b"</a>") for i in range(12)]
    raws = list(read_messages(zip_archive(tmp_path / "many.zip", members)))
    assert len(raws) == 12
    refused = [r for r in raws if r.error]
    assert refused and all(
        "the archive inflates beyond 50 times" in (r.error or "") for r in refused
    )
    assert raws[0].error is None


def test_a_member_refused_by_a_cap_loads_on_replay_once_the_cap_is_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = GOOD[0] * 400
    monkeypatch.setattr(inbox, "MAX_MEMBER_BYTES", len(content) - 1)
    (item,) = read_messages(zip_archive(tmp_path / "a.zip", [deflated("big.xml", content)]))
    assert item.error is not None and "cap" in item.error
    monkeypatch.setattr(inbox, "MAX_MEMBER_BYTES", 64 << 20)
    (again,) = read_again(item)
    assert (again.error, again.data, again.member) == (None, content, "big.xml")
    damaged = RawMessage(item.source_file, item.member, item.data[:-40], item.error, item.origin)
    (still,) = read_again(damaged)
    assert still.error is not None and still.data == damaged.data


# --- content the parser must then refuse, and its text ------------------------------------------


def test_a_nul_byte_member_is_read_then_refused_by_the_parser_and_shown_without_nul(
    tmp_path: Path,
) -> None:
    nul = GOOD[0].replace(b"<ers:DAT", b"\x00<ers:DAT", 1)
    path = zip_archive(tmp_path / "n.zip", [deflated("nul.xml", nul), deflated("ok.xml", GOOD[1])])
    parsed, failed = parse_batch(read_messages(path))
    assert [raw.member for raw, _ in parsed] == ["ok.xml"]
    ((raw, error),) = failed
    assert raw.data == nul and "n.zip:nul.xml" in error
    assert raw.display_text is not None and "\x00" not in raw.display_text


def test_a_utf16_message_keeps_its_bytes_and_stores_its_real_text(tmp_path: Path) -> None:
    text = (
        GOOD[0]
        .decode()
        .replace('encoding="UTF-8"', 'encoding="UTF-16"')
        .replace('EVL="', 'EVL="Étoile ')
    )
    (tmp_path / "m.xml").write_bytes(text.encode("utf-16"))
    (raw,) = read_messages(tmp_path / "m.xml")
    assert raw.data == text.encode("utf-16")
    assert raw.text == text
    parsed, failed = parse_batch([raw])
    assert not failed and parsed[0][1].metadata["software"].startswith("Étoile")


def test_a_file_over_the_cap_is_one_item_without_its_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox, "MAX_MEMBER_BYTES", 100)
    (tmp_path / "huge.xml").write_bytes(b"<a>" + b" " * 200 + b"</a>")
    (item,) = read_messages(tmp_path / "huge.xml")
    assert item.error is not None and "over the 100-byte cap" in item.error and item.data == b""


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_any_damage_to_an_archive_is_items_never_an_exception(data: st.DataObject) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, content in enumerate(GOOD):
            archive.writestr(f"m{index}.xml", content)
    raw = bytearray(buffer.getvalue())
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    items = list(read_archive("fuzz.zip", io.BytesIO(bytes(raw))))
    for item in items:
        assert item.error is not None or item.data in GOOD or item.member.endswith(".xml")
        if item.error is not None:
            assert item.error.startswith("fuzz.zip")
