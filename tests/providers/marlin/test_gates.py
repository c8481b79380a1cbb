"""CPU tests of the gates: platform, torch build, nvcc, and the shapes/types can_implement refuses."""

import shutil

import pytest

import torch

from qlinear.config import MPLinearLayerConfig
from qlinear.platform import Platform, simulate_platform
from qlinear.scalar_type import scalar_types
from qlinear_marlin.mp import MarlinMPLinearKernel as K


def cfg(k=512, n=256, wt=scalar_types.uint4b8, dt=torch.bfloat16, g=128, zp=False, act=False, full_k=None):
    return MPLinearLayerConfig((full_k or k, n), (k, n), wt, dt, g, zp, act)


def test_not_cuda():
    with simulate_platform("cpu"):
        ok, why = K.is_supported()
    assert not ok and "platform is cpu" in why
    with simulate_platform("mi300"):
        assert "platform is rocm" in K.is_supported()[1]


def test_old_gpu():
    with simulate_platform("sm75"):
        ok, why = K.is_supported()
    assert not ok and why == "needs CUDA cc>=80, have 75"
    assert K.is_supported(75)[0] is False or "cc>=80" in K.is_supported(75)[1]


H100 = Platform("cuda", 90, "NVIDIA H100")  # a real (not simulated) platform: the toolchain is checked too


def test_simulated_sm90_judges_the_device_only(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)  # what `qlinear explain --platform sm90` asks on a CPU box
    with simulate_platform("sm90"):
        assert K.is_supported() == (True, None)


def test_cpu_torch_build(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    ok, why = K.is_supported(H100)
    assert not ok and "torch is a CPU build" in why


def test_nvcc_missing(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.delenv("CUDA_PATH", raising=False)
    ok, why = K.is_supported(H100)
    assert not ok and "nvcc not found" in why


def test_all_present(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    nvcc = tmp_path / "bin" / "nvcc"
    nvcc.parent.mkdir()
    nvcc.write_text("#!/bin/sh\n")
    nvcc.chmod(0o755)
    monkeypatch.setenv("CUDA_HOME", str(tmp_path))
    for cc in (80, 90, 100):
        assert K.is_supported(Platform("cuda", cc)) == (True, None)
    with simulate_platform("sm75"):
        assert K.is_supported()[0] is False


def test_float_kernels_share_the_gates(monkeypatch):
    from qlinear_marlin.fp import KERNELS

    monkeypatch.setattr(torch.version, "cuda", None)
    for kc in KERNELS:
        assert "torch is a CPU build" in kc.is_supported(H100)[1]
        with simulate_platform("sm75"):
            assert kc.is_supported() == (False, "needs CUDA cc>=80, have 75")


def test_selected_on_a_simulated_h100():
    """8-bit codes: marlin, or CUTLASS's W8A16 where it can build (the shipped H200 table measured it
    fastest over the mixed regime). 4-bit: triton's W4A16 ranks first where triton is importable
    (faster at every M on the H100, docs/gpu-results.md) and CUTLASS is left aside; marlin is the
    next viable kernel."""
    from qlinear.selection import select

    with simulate_platform("sm90"):
        sel8 = select(cfg(k=4096, n=4096, wt=scalar_types.uint8b128), evaluate_all=True)
        sel = select(cfg(k=4096, n=4096), evaluate_all=True)
    names8 = [k.__name__ for k in sel8.viable]
    assert "MarlinMPLinearKernel" in names8
    assert sel8.kernel.__name__ == ("CutlassW8A16LinearKernel" if "CutlassW8A16LinearKernel" in names8 else "MarlinMPLinearKernel")
    viable = [k.__name__ for k in sel.viable if not k.__name__.startswith("Cutlass")]
    assert "MarlinMPLinearKernel" in viable
    assert viable[0] in ("TritonW4A16LinearKernel", "MarlinMPLinearKernel")
    if viable[0] == "TritonW4A16LinearKernel":
        assert viable[1] == "MarlinMPLinearKernel"


@pytest.mark.parametrize("c", [
    cfg(), cfg(g=-1), cfg(g=32, dt=torch.float16), cfg(g=64), cfg(wt=scalar_types.uint4, zp=True),
    cfg(act=True), cfg(act=True, full_k=1024), cfg(k=4096, n=14336), cfg(k=48, n=64, g=16),
    cfg(wt=scalar_types.uint8b128), cfg(wt=scalar_types.uint8, zp=True, dt=torch.float16),
], ids=str)
def test_can_implement_yes(c):
    assert K.can_implement(c) == (True, None)


@pytest.mark.parametrize("c,word", [
    (cfg(n=96), "N=96 is not a multiple of 64"),
    (cfg(k=520, g=-1), "K=520 is not a multiple of 16"),
    (cfg(k=24 * 8, g=24), "group_size=24 is not a multiple of 16"),
    (cfg(dt=torch.float32), "float16 or bfloat16"),
], ids=lambda v: str(v)[:40])
def test_can_implement_no_with_reason(c, word):
    ok, why = K.can_implement(c)
    assert not ok and word in why


def test_create_refuses_bad_config():
    with pytest.raises(ValueError, match="N=96"):
        K.create(cfg(n=96))


def test_registered_as_provider():
    from qlinear.registry import get_registry

    names = [k.__name__ for k in get_registry().kernels("mp")]
    assert "MarlinMPLinearKernel" in names
