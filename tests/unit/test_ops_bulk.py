"""The collector pause every domain's bulk parse, transform and load runs under."""

from __future__ import annotations

import gc

import pytest

from platform_assets.ops.bulk import gc_paused


def test_the_cycle_collector_is_paused_for_a_batch_and_restored_after() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():  # nested: the inner one leaves it paused
            pass
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("a batch that fails")
    assert gc.isenabled()


def test_a_collector_switched_off_by_the_caller_stays_off() -> None:
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_objects_frozen_by_someone_else_stay_frozen() -> None:
    """A preloading server freezes its imports: the pause must not unfreeze them."""
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with gc_paused():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
