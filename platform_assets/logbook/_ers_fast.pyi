"""Types of the compiled ERS walker (``_ers_fast.pyx``): the signature of ``ers.parse_ops``."""

from typing import Any

from lxml.etree import _Element

def parse_ops(ops: _Element) -> tuple[str, dict[str, Any], list[dict[str, Any]]]: ...
