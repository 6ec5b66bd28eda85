"""Batch helpers of the logbook loader that need no database."""

from __future__ import annotations

import gc

import pytest

from platform_assets.logbook.load import _cyclic_gc_paused


def test_the_cycle_collector_is_paused_for_a_batch_and_restored_after() -> None:
    assert gc.isenabled()
    with _cyclic_gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), _cyclic_gc_paused():
        raise RuntimeError("a batch that fails")
    assert gc.isenabled()


def test_a_collector_switched_off_by_the_caller_stays_off() -> None:
    gc.disable()
    try:
        with _cyclic_gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
