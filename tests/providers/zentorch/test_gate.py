"""Gates and selection: Zen CPU (or the override), zentorch importable, ops registered; per-layer
fall back through can_implement; zentorch is not imported when the provider loads."""

import subprocess
import sys

import pytest
import torch

import qlinear
from qlinear.config import Int8ScaledMMLinearLayerConfig, MPLinearLayerConfig
from qlinear.platform import simulate_platform
from qlinear.scalar_type import scalar_types as st
from qlinear_zentorch import gate
from qlinear_zentorch.int8 import ZentorchInt8ScaledMMLinearKernel
from qlinear_zentorch.mp import ZentorchWNA16LinearKernel

KERNELS = [ZentorchInt8ScaledMMLinearKernel, ZentorchWNA16LinearKernel]
W4 = MPLinearLayerConfig((512, 256), (512, 256), st.uint4b8, torch.bfloat16, 128, False, False)
I8 = Int8ScaledMMLinearLayerConfig(False, True, True, (256, 512), torch.bfloat16)

needs_zentorch = pytest.mark.skipif(gate.load_zentorch()[0] is None, reason="zentorch not installed")


@pytest.fixture
def no_zentorch(monkeypatch):
    """Make `import zentorch` fail (None in sys.modules), with the gate's cache cleared around it."""
    gate.load_zentorch.cache_clear()
    monkeypatch.setitem(sys.modules, "zentorch", None)
    yield
    monkeypatch.undo()
    gate.load_zentorch.cache_clear()


@needs_zentorch
@pytest.mark.parametrize("k", KERNELS, ids=lambda k: k.__name__)
def test_supported_on_zen(k):
    with simulate_platform("zen5") as p:
        assert k.is_supported() == (True, None)
        assert k.is_supported(p) == (True, None)


@pytest.mark.parametrize("k", KERNELS, ids=lambda k: k.__name__)
def test_rejected_on_intel_without_override(k):
    with qlinear.override_settings(zentorch_any_cpu=False), simulate_platform("cpu"):
        ok, why = k.is_supported()
    assert not ok
    assert why.startswith("not an AMD Zen CPU (Intel Xeon (simulated))") and "QLINEAR_ZENTORCH_ANY_CPU=1" in why


@needs_zentorch
@pytest.mark.parametrize("k", KERNELS, ids=lambda k: k.__name__)
def test_override_allows_other_x86(k):
    with qlinear.override_settings(zentorch_any_cpu=True), simulate_platform("cpu"):
        assert k.is_supported() == (True, None)


def test_override_is_read_from_the_environment(monkeypatch):
    from qlinear.settings import reload_settings

    monkeypatch.setenv("QLINEAR_ZENTORCH_ANY_CPU", "1")
    try:
        assert reload_settings().zentorch_any_cpu is True
    finally:
        monkeypatch.delenv("QLINEAR_ZENTORCH_ANY_CPU")
        reload_settings()


@pytest.mark.parametrize("preset", ["sm90", "mi300", "xpu"])
def test_rejected_off_cpu(preset):
    with qlinear.override_settings(zentorch_any_cpu=True), simulate_platform(preset):
        ok, why = ZentorchWNA16LinearKernel.is_supported()
    assert not ok and "run on CPU tensors" in why


def test_rejected_without_avx2():
    with simulate_platform("zen5", cpu_flags=frozenset({"sse4_2"})):
        ok, why = ZentorchInt8ScaledMMLinearKernel.is_supported()
    assert not ok and "AVX2" in why


@pytest.mark.parametrize("k", KERNELS, ids=lambda k: k.__name__)
def test_rejected_without_avx512(k):
    """An AVX2-only Zen 3 EPYC: zentorch 2.13's kernels crashed (SIGILL) or returned garbage there."""
    with simulate_platform("zen3"):
        ok, why = k.is_supported()
    assert not ok and why.startswith("CPU lacks avx512f, avx512_vnni, avx512_bf16 (AMD EPYC (Zen 3, simulated))"), why
    with simulate_platform("zen4") as p:
        assert gate.check_platform(p) == (True, None)  # Zen 4 has the AVX-512 subsets


@pytest.mark.parametrize("k", KERNELS, ids=lambda k: k.__name__)
def test_zentorch_missing(no_zentorch, k):
    with simulate_platform("zen5"):
        ok, why = k.is_supported()
    assert not ok and why.startswith("zentorch not importable: ModuleNotFoundError: import of zentorch halted")


@needs_zentorch
def test_missing_op_is_named(monkeypatch):
    monkeypatch.setattr(gate, "missing_ops", lambda names: [names[0]])
    with simulate_platform("zen5"):
        ok, why = ZentorchWNA16LinearKernel.is_supported()
    assert not ok and "lacks op(s) zentorch_woq_linear" in why


def test_kernels_say_no_with_a_reason():
    cases = {
        MPLinearLayerConfig((512, 256), (512, 256), st.uint8b128, torch.bfloat16, 128, False, False): "4-bit weights only",
        MPLinearLayerConfig((512, 256), (512, 256), st.uint4b8, torch.float16, 128, False, False): "bfloat16 only",
    }
    for c, why in cases.items():
        ok, reason = ZentorchWNA16LinearKernel.can_implement(c)
        assert not ok and why in reason
    assert ZentorchWNA16LinearKernel.can_implement(W4) == (True, None)
    ok, reason = ZentorchInt8ScaledMMLinearKernel.can_implement(Int8ScaledMMLinearLayerConfig(True, True, True, (256, 512)))
    assert not ok and "static" in reason
    ok, reason = ZentorchInt8ScaledMMLinearKernel.can_implement(Int8ScaledMMLinearLayerConfig(False, True, False, (256, 512)))
    assert not ok and "asymmetric" in reason
    assert ZentorchInt8ScaledMMLinearKernel.can_implement(I8) == (True, None)


def test_registered_with_priorities():
    """W8A8 outranks torch's CPU int8 (20); W4A16 ranks below torch's int4pack (20), faster at decode."""
    reg = qlinear.get_registry()
    info = reg.providers["zentorch"]
    assert info.ok, info.error
    assert set(info.kernels) == set(KERNELS)
    prio = {k.family: k.priority for k in KERNELS}
    assert all(k.provider == "zentorch" and k.backend == "zentorch" for k in KERNELS)
    assert prio == {"int8": 30, "mp": 15}


@needs_zentorch
def test_selected_on_zen_and_falls_back_per_layer():
    with simulate_platform("zen5"):
        # W4A16: torch's int4pack (priority 20) first where installed, zentorch next
        sel = qlinear.select(W4, evaluate_all=True)
        assert ZentorchWNA16LinearKernel in sel.viable
        assert sel.kernel is ZentorchWNA16LinearKernel or sel.kernel.priority > ZentorchWNA16LinearKernel.priority
        # an act-order layer int4pack can't take goes to zentorch
        act = MPLinearLayerConfig((512, 256), (512, 256), st.uint4b8, torch.bfloat16, 128, False, True)
        assert qlinear.select(act).kernel is ZentorchWNA16LinearKernel
        assert qlinear.select(I8).kernel is ZentorchInt8ScaledMMLinearKernel
        # a layer zentorch can't take goes to the next kernel (torch provider or emulation)
        w8 = MPLinearLayerConfig((512, 256), (512, 256), st.uint8b128, torch.bfloat16, 128, False, False)
        sel = qlinear.select(w8)
        assert sel.kernel is not ZentorchWNA16LinearKernel
        assert "4-bit weights only" in sel.reasons["zentorch.ZentorchWNA16LinearKernel"]


def test_not_selected_on_intel_without_override():
    with qlinear.override_settings(zentorch_any_cpu=False), simulate_platform("cpu"):
        sel = qlinear.select(W4, evaluate_all=True)
    assert sel.kernel is not ZentorchWNA16LinearKernel
    assert "not an AMD Zen CPU" in sel.reasons["zentorch.ZentorchWNA16LinearKernel"]


def test_import_does_not_import_zentorch():
    code = ("import sys, qlinear, qlinear_zentorch; qlinear.get_registry(); "
            "from qlinear_zentorch import int8, mp; "
            "assert 'zentorch' not in sys.modules, 'zentorch imported'; "
            "from qlinear.platform import simulate_platform\n"
            "with simulate_platform('cpu'): int8.ZentorchInt8ScaledMMLinearKernel.is_supported()\n"
            "assert 'zentorch' not in sys.modules, 'gate imported zentorch on a non-Zen CPU'")
    env = {k: v for k, v in __import__("os").environ.items() if k != "QLINEAR_ZENTORCH_ANY_CPU"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
