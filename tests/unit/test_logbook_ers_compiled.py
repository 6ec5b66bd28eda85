"""The compiled ERS walker (``_ers_fast.pyx``) against its reference, ``ers.parse_ops``.

Both must give the same output, or raise the same error, for every tree: the corpus, hand-written
edge cases of the lxml tree (empty and namespaced attributes, comments, entities, DTD defaults)
and generated ERS-shaped trees.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lxml import etree

from platform_assets.logbook import ers, parse
from tests.unit.test_logbook_corpus import CORPUS, MANIFEST
from tests.unit.test_logbook_parse import (
    DAT,
    ERS_ATTRIBUTES,
    FAR,
    FIELD_VALUES,
    PNO,
    ers_log,
    ers_message,
    ers_messages,
)


def _compiled_walker() -> ModuleType | None:
    """The compiled walker; None when not built (comparisons skip, the install test fails)."""
    try:
        return importlib.import_module("platform_assets.logbook._ers_fast")
    except ImportError:
        return None


_ers_fast = _compiled_walker()


def test_the_install_compiled_the_ers_walker() -> None:
    # The install (uv sync / pip install) compiles it with the machine's C compiler; without one
    # parsing still works, 4x slower on ERS, and this test says so instead of hiding it.
    assert parse.ERS_COMPILED, (
        "platform_assets/logbook/_ers_fast.pyx was not compiled: install a C compiler and the "
        "Python headers, then `uv sync --reinstall-package fishnet-platform`"
    )


def _outcome(parse_ops: Callable[[Any], Any], root: etree._Element) -> tuple:
    """What ``parse_ops`` makes of ``root``: ('ok', result) or ('error', type, text)."""
    try:
        return ("ok", parse_ops(root))
    except Exception as exc:  # noqa: BLE001 - the comparison is the point
        return ("error", type(exc), str(exc))


def assert_same(root: etree._Element) -> tuple:
    if _ers_fast is None:
        pytest.skip("the compiled walker is not built (see test_the_install_compiled_...)")
    compiled = _outcome(_ers_fast.parse_ops, root)
    assert compiled == _outcome(ers.parse_ops, root)
    return compiled


def tree(message: bytes | str, parser: etree.XMLParser | None = None) -> etree._Element:
    """The tree the logbook parser builds (or ``parser``'s)."""
    if isinstance(message, str):
        message = message.encode()
    return etree.fromstring(message, parser or parse._parser())


def _corpus_ers_messages() -> list[Any]:
    if not MANIFEST.is_file():
        return [pytest.param(None, id="corpus-absent")]
    files = json.loads(MANIFEST.read_text())["files"]
    return [pytest.param(e["message"], id=e["message"]) for e in files if e["subset"] == "ers"]


@pytest.mark.parametrize("name", _corpus_ers_messages())
def test_corpus_messages_walk_the_same(name: str | None) -> None:
    if name is None:
        pytest.skip(f"logbook corpus not found at {CORPUS} (set LOGBOOK_CORPUS_DIR)")
    data = (CORPUS / name).read_bytes().strip(b" \t\r\n\xc2\xbf")
    try:
        root = tree(data)
    except etree.XMLSyntaxError:
        pytest.skip("not XML: rejected before any walk")
    if etree.QName(root).localname == "OPS":
        assert_same(root)


def test_a_full_message_walks_the_same_and_parses() -> None:
    outcome = assert_same(tree(ers_message(f'<ers:DAT TM="CU">{ers_log(FAR + PNO)}</ers:DAT>')))
    assert outcome[0] == "ok"
    assert [r["log_type"] for r in outcome[1][2]] == ["FAR", "PNO"]


EMPTY_TIME = FAR.replace(' TI="', ' TI="" XTI="')
TWO_POS = FAR.replace("<ers:POS", "<ers:POS/><ers:POS")
TWO_RAS = FAR.replace("<ers:RAS", "<ers:RAS/><ers:RAS")
TWO_PRO = FAR.replace("<ers:PRO", "<ers:PRO/><ers:PRO")
ECPS = (
    '<ers:ECPS DA="2024-01-01" TI="09:00"><ers:GEA GE="GNS"/><ers:POS LT="1" LG="2"/>'
    '<ers:EDCI SE="F" CA="15"><ers:SPE SN="DCO"/>{extra}</ers:EDCI></ers:ECPS>'
)
CRO = (
    '<ers:CRO><ers:COE DA="2024-01-01" TI="09:00" TS="SOL"><ers:RAS FA="27"/></ers:COE>'
    '<ers:COX DA="2024-01-01" TI="11:00"><ers:POS LT="1" LG="2"/></ers:COX>{extra}</ers:CRO>'
)


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(f"<ers:DAT>{ers_log(EMPTY_TIME)}</ers:DAT>", id="empty-attribute"),
        pytest.param(DAT.replace('RN="', 'ers:RN="x" RN="', 1), id="namespaced-attribute"),
        pytest.param(f"<ers:DAT>{ers_log(TWO_POS)}</ers:DAT>", id="two-pos"),
        pytest.param(f"<ers:DAT>{ers_log(TWO_RAS)}</ers:DAT>", id="two-ras"),
        pytest.param(f"<ers:DAT>{ers_log(TWO_PRO)}</ers:DAT>", id="two-pro"),
        pytest.param(f"<ers:DAT>{ers_log(ECPS.format(extra=''))}</ers:DAT>", id="ecps"),
        pytest.param(
            f"<ers:DAT>{ers_log(ECPS.format(extra='<ers:SPE/>'))}</ers:DAT>", id="two-spe"
        ),
        pytest.param(f"<ers:DAT>{ers_log(CRO.format(extra=''))}</ers:DAT>", id="cro"),
        pytest.param(f"<ers:DAT>{ers_log(CRO.format(extra='<ers:COE/>'))}</ers:DAT>", id="two-coe"),
        pytest.param(f"<ers:DAT>{ers_log('<ers:XYZ/>')}</ers:DAT>", id="unknown-entry"),
        pytest.param("<ers:DAT/><ers:DAT/>", id="two-operations"),
        pytest.param("<ers:DAT><ers:LOG/></ers:DAT>", id="log-without-ers"),
        pytest.param(f"<ers:DAT>{ers_log('<ers:TRA/><ers:RLC/>')}</ers:DAT>", id="type-only"),
        pytest.param("<ers:DAT/>", id="no-ers"),
        pytest.param("<ers:RET ON='X' RS='001' RE='bad'/>", id="ret"),
        pytest.param("<ers:DEL RN='X'/>", id="del"),
        pytest.param("<ers:QUE/>", id="que"),
        pytest.param("<ers:RSP/>", id="rsp"),
    ],
)
def test_edge_cases_walk_the_same(operation: str) -> None:
    assert_same(tree(ers_message(operation)))


@pytest.mark.parametrize("attributes", ['ON=""', 'XON="1"'], ids=["empty", "absent"])
def test_a_missing_operation_number_is_the_same_error(attributes: str) -> None:
    outcome = assert_same(tree(ers_message(DAT, attributes)))
    assert outcome[0] == "error" and "operation number" in outcome[2]


def test_comments_and_processing_instructions_count_as_lxml_counts_them() -> None:
    # The logbook parser drops them; a tree from another parser keeps them, and ers.py then
    # counts them as children (lxml's el[:]): the compiled walker must count the same way.
    keeping = etree.XMLParser(remove_comments=False, remove_pis=False)
    for where in ("<!-- c --><ers:DAT", "<?pi x?><ers:DAT"):
        message = ers_message(f'<ers:DAT TM="CU">{ers_log(FAR)}</ers:DAT>').decode()
        assert_same(tree(message.replace("<ers:DAT", where, 1), keeping))
    spe_comment = FAR.replace("<ers:RAS", "<!-- note --><ers:RAS")
    assert (
        assert_same(tree(ers_message(f"<ers:DAT>{ers_log(spe_comment)}</ers:DAT>"), keeping))[0]
        == "ok"
    )


def test_a_document_with_a_dtd_is_left_to_the_reference() -> None:
    # DTD attribute defaults and entities change what lxml's get() returns: the compiled walker
    # hands such documents to ers.py, so both agree.
    message = ers_message(f"<ers:DAT>{ers_log(FAR)}</ers:DAT>").decode()
    message = message.replace(
        "<ers:OPS",
        '<!DOCTYPE ers:OPS [<!ATTLIST ers:OPS TS CDATA "1"><!ENTITY v "FRA">]><ers:OPS',
        1,
    ).replace('FS="FRA"', 'FS="&v;"')
    outcome = assert_same(tree(message))
    assert outcome[0] == "ok"
    assert outcome[1][1]["flag_state"] == "FRA"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ers_messages())
def test_any_ers_shaped_tree_walks_the_same(message: str) -> None:
    try:
        root = tree(message)
    except etree.XMLSyntaxError:
        assume(False)
    assert_same(root)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(ERS_ATTRIBUTES), FIELD_VALUES, max_size=8))
def test_any_field_values_walk_the_same(values: dict[str, str]) -> None:
    message = ers_message(f'<ers:DAT TM="CU">{ers_log(FAR + PNO)}</ers:DAT>').decode()
    for name, value in values.items():
        message = message.replace(f' {name}="', f' {name}="{_escaped(value)}" X{name}="', 1)
    try:
        root = tree(message)
    except etree.XMLSyntaxError:
        assume(False)
    assert_same(root)


def _escaped(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
