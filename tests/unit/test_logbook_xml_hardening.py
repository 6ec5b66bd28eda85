"""XML input the parser must refuse or read right: no DTD is ever followed, no entity silently
shortens a value, and a message is decoded by its byte order mark or declaration.

"Nothing is opened" is checked with the resources themselves: a named pipe (a parser opening it
would wake the writer waiting on it) and a TCP listener (a connection would wait in its backlog).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from platform_assets.logbook import ers, parse
from platform_assets.logbook.parse import (
    LogbookParsingError,
    decode_xml,
    parse_message,
    xml_encoding,
)
from tests.unit.test_logbook_parse import DAT, envelope, ers_message, flux_message

REFUSED = "document type declaration"


@pytest.fixture(params=["compiled", "pure"])
def walker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the compiled ERS walker and again with the pure-Python one."""
    if request.param == "pure":
        monkeypatch.setattr(parse, "_parse_ers_ops", ers.parse_ops)
    return request.param


class WatchedPipe:
    """A FIFO with a writer waiting for a reader: ``opened`` is set once anything opens it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self.opened = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)
        self._thread.start()

    def _write(self) -> None:
        with open(self.path, "wb") as pipe:  # blocks until a reader opens the pipe
            self.opened.set()
            pipe.write(b'<!ENTITY leaked "from the pipe">')

    def release(self) -> None:
        """Unblock the waiting writer (as a reader of our own) so the thread ends."""
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            self._thread.join(timeout=10)
        finally:
            os.close(fd)


@pytest.fixture
def pipe(tmp_path: Path) -> Iterator[WatchedPipe]:
    watched = WatchedPipe(tmp_path / "dtd.pipe")
    yield watched
    watched.release()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    yield server
    server.close()


def _connections(server: socket.socket) -> int:
    count = 0
    while True:
        try:
            connection, _ = server.accept()
        except BlockingIOError:
            return count
        connection.close()
        count += 1


def _with_dtd(message: bytes, dtd: str) -> bytes:
    """``message`` with ``dtd`` right after its XML declaration (or at its start)."""
    if message.startswith(b"<?xml"):
        end = message.index(b"?>") + 2
        return message[:end] + dtd.encode() + message[end:]
    return dtd.encode() + message


def _hostile_dtds(pipe: Path, port: int) -> list[str]:
    return [
        f'<!DOCTYPE x SYSTEM "file://{pipe}">',
        f'<!DOCTYPE x [<!ENTITY % p SYSTEM "file://{pipe}"> %p;]>',
        f'<!DOCTYPE x [<!ENTITY e SYSTEM "file://{pipe}">]>',
        f'<!DOCTYPE x SYSTEM "http://127.0.0.1:{port}/x.dtd">',
        f'<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:{port}/p.dtd"> %p;]>',
        f'<!doctype x SYSTEM "file://{pipe}">',
    ]


@pytest.mark.parametrize("fmt", ["ERS", "FLUX", "FLUX in BASE64DATA", "ERS as UTF-16"])
def test_a_dtd_is_refused_and_nothing_it_names_is_opened(
    fmt: str, walker: str, pipe: WatchedPipe, listener: socket.socket
) -> None:
    base = ers_message(DAT) if fmt.startswith("ERS") else flux_message()
    for dtd in _hostile_dtds(pipe.path, listener.getsockname()[1]):
        message = _with_dtd(base, dtd)
        if fmt == "FLUX in BASE64DATA":
            message = envelope(message)
        elif fmt == "ERS as UTF-16":
            message = message.decode().replace('"UTF-8"', '"UTF-16"').encode("utf-16")
        with pytest.raises(LogbookParsingError, match=REFUSED) as raised:
            parse_message(message, source="inbox/m.xml")
        assert str(raised.value).startswith("inbox/m.xml: ")
    assert not pipe.opened.is_set(), "the parser opened the file the DTD names"
    assert _connections(listener) == 0, "the parser connected to the URL the DTD names"


def test_the_refusal_happens_before_any_parser_runs(
    monkeypatch: pytest.MonkeyPatch, pipe: WatchedPipe
) -> None:
    # Even a parser built with the options that load external DTDs is never handed the document.
    def parser_that_must_not_run(forced_utf8: bool = False):
        raise AssertionError("a document with a DTD reached the XML parser")

    monkeypatch.setattr(parse, "_parser", parser_that_must_not_run)
    with pytest.raises(LogbookParsingError, match=REFUSED):
        parse_message(_with_dtd(flux_message(), f'<!DOCTYPE x SYSTEM "file://{pipe.path}">'))


def test_an_internal_entity_is_an_error_not_a_shortened_value(walker: str) -> None:
    flux = flux_message().replace(b"<ram:Name>BATEAU</ram:Name>", b"<ram:Name>GO&e;LF</ram:Name>")
    flux = b'<!DOCTYPE rsm:FLUXFAReportMessage [<!ENTITY e "X">]>' + flux
    with pytest.raises(LogbookParsingError, match=REFUSED):
        parse_message(flux, source="f.xml")
    ers_text = ers_message(DAT).replace(b'NA="NAVIRE"', b'NA="NA&e;VIRE"')
    with pytest.raises(LogbookParsingError, match=REFUSED):
        parse_message(_with_dtd(ers_text, '<!DOCTYPE ers:OPS [<!ENTITY e "X">]>'))
    with pytest.raises(LogbookParsingError, match=REFUSED):
        parse_message(_with_dtd(ers_text, '<!DOCTYPE ers:OPS [<!ENTITY e "X">]>').decode())


# --- encodings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_a_wide_encoded_message_parses_like_its_utf8_original(walker: str, encoding: str) -> None:
    for original in (
        ers_message(DAT).replace(b'NA="NAVIRE"', 'NA="ÉTOILE D\'ARMOR"'.encode()),
        flux_message(),
    ):
        text = original.decode()
        declared = text.replace('encoding="UTF-8"', f'encoding="{encoding.upper()}"')
        if not declared.startswith("<?xml"):
            declared = f'<?xml version="1.0" encoding="{encoding.upper()}"?>' + declared
        data = declared.encode(encoding)  # "utf-16" and "utf-32" write a byte order mark
        assert parse_message(data) == parse_message(original)
        assert decode_xml(data) == declared


def test_a_declared_single_byte_encoding_is_honoured() -> None:
    original = ers_message(DAT).replace(b'NA="NAVIRE"', 'NA="ÉTOILE"'.encode())
    latin = original.decode().replace('"UTF-8"', '"ISO-8859-1"').encode("latin-1")
    assert xml_encoding(latin) == "iso8859-1"
    assert parse_message(latin).metadata["vessel_name"] == "ÉTOILE"
    assert decode_xml(latin) == original.decode().replace('"UTF-8"', '"ISO-8859-1"')


def test_a_dtd_hidden_by_a_declared_encoding_is_still_refused() -> None:
    # '+ADw-' is '<' in UTF-7: the check runs on what the parser would read, not on raw bytes.
    message = (
        b'<?xml version="1.0" encoding="UTF-7"?>+ADw-!DOCTYPE x SYSTEM "file:///etc/passwd"+AD4-'
        + ers_message(DAT).split(b"?>", 1)[1]
    )
    with pytest.raises(LogbookParsingError, match=REFUSED):
        parse_message(message)


def test_an_unknown_or_wrong_encoding_is_a_parsing_error() -> None:
    unknown = ers_message(DAT).replace(b'"UTF-8"', b'"X-NO-SUCH"')
    with pytest.raises(LogbookParsingError, match="unknown encoding 'X-NO-SUCH'"):
        parse_message(unknown, source="m.xml")
    odd = "\ufeff<a>x</a>".encode("utf-16-le") + b"\x00"  # odd length: a torn UTF-16 message
    with pytest.raises(LogbookParsingError, match="not valid utf-16"):
        parse_message(odd, source="m.xml")


def test_decoding_for_people_never_raises() -> None:
    assert decode_xml(b"<a>\xff\x00</a>", "replace") == "<a>\ufffd\x00</a>"
    assert decode_xml(b'<?xml version="1.0" encoding="nope"?><a/>', "replace").endswith("<a/>")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.sampled_from(["utf-8", "utf-16", "utf-16-be", "latin-1"]))
def test_any_bytes_under_any_declaration_parse_or_raise_parsing_error(
    body: bytes, encoding: str
) -> None:
    data = f'<?xml version="1.0" encoding="{encoding}"?>'.encode(encoding) + body
    with contextlib.suppress(LogbookParsingError):
        parse_message(data, source="fuzz")
    decode_xml(data, "replace")
