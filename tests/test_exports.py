"""Each package's public API is its sorted ``__all__``, and every name in it exists."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = ("collector", "warehouse", "bandit", "serving")


@pytest.mark.parametrize("package", PACKAGES)
def test_all_is_sorted_and_importable(package: str) -> None:
    module = importlib.import_module(package)
    names = list(getattr(module, "__all__", []))
    assert names, f"{package} exports nothing"
    assert names == sorted(names, key=str), f"{package}.__all__ is not sorted"
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"{package}.__all__ names missing attributes: {missing}"


def test_pinned_public_names() -> None:
    import collector
    import warehouse

    assert {"Collector", "CollectorConfig", "load_catalog", "probe_endpoint",
            "StreamMeter", "make_session"} <= set(collector.__all__)
    assert {"Warehouse", "WarehouseConfig", "LiveStat", "ProbeResult", "Decision",
            "Feedback"} <= set(warehouse.__all__)
