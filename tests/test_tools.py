"""tools/harness.py: the tuning tools' timing is qlinear.timing's, and it runs on CPU."""

import pathlib
import time

import pytest
import torch

ROOT = pathlib.Path(__file__).parents[1]


@pytest.fixture
def harness(monkeypatch):
    import importlib

    monkeypatch.syspath_prepend(str(ROOT))  # tools/ is a checkout directory, not an installed package
    return importlib.import_module("tools.harness")


def test_timer_modes(harness):
    calls = []
    once = harness.Timer("cpu", mode="once")
    assert once(lambda i: calls.append(i), copies=5) == 0.0 and calls == [0]  # one call, nothing timed
    timed = harness.Timer("cpu", max_time=0.01)
    calls.clear()
    us = timed(lambda i: (calls.append(i), time.sleep(1e-4)), copies=3)
    assert us >= 100 and set(calls) == {0, 1, 2}  # medians of real calls, rotating over the copies
    slowest_first = harness.Timer("cpu", max_time=0.01, stat="min", clock=time.thread_time)
    assert slowest_first(lambda i: sum(range(1000)), copies=2) >= 0
    with pytest.raises(ValueError, match="mode"):
        harness.Timer("cpu", mode="sometimes")


def test_rotation_and_layers(harness):
    from qlinear.nn import scheme_config
    from qlinear_emulation.kernels import EmulationInt8ScaledMMLinearKernel

    assert harness.copies_for(16 << 20, "cpu") == 6 and harness.copies_for(1 << 30, "cpu") == 6
    assert harness.copies_for(1 << 20, "cpu", max_copies=64) == 64
    c = scheme_config("int8-dynamic", 64, 128)
    params, layers, kernels = harness.make_layers(EmulationInt8ScaledMMLinearKernel, c, torch.randn(64, 128), 3)
    assert len(layers) == len(kernels) == 3 and layers[0].weight.data_ptr() != layers[1].weight.data_ptr()
    x = torch.randn(2, 128, dtype=torch.bfloat16)
    assert harness.rel_error(kernels[1].apply(layers[1], x), kernels[0].apply(layers[0], x)) == 0.0


def test_tools_use_no_path_hacks_or_private_tile_attributes():
    for path in (ROOT / "tools").glob("*.py"):
        text = path.read_text()
        assert "sys.path" not in text, path.name
        for private in ("._tile", "._tiles", "._kernel", "global "):
            assert private not in text, f"{path.name} uses {private!r}: use the kernels' public tuning hooks"
