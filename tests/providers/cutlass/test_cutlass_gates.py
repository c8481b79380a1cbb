"""CPU tests of the gates (simulated sm80 / sm90 / sm100, no nvcc, no headers, CPU torch) and of the
configs can_implement refuses with a reason."""

import pytest
import torch

pytest.importorskip("qlinear_cutlass")

from qlinear import quant_key as qk  # noqa: E402
from qlinear.config import FP8ScaledMMLinearLayerConfig, Int8ScaledMMLinearLayerConfig  # noqa: E402
from qlinear.platform import Platform, simulate_platform  # noqa: E402
from qlinear_cutlass import gates  # noqa: E402
from qlinear_cutlass.fp8 import CutlassFP8ScaledMMLinearKernel as FP8  # noqa: E402
from qlinear_cutlass.fp8_block import CutlassFp8BlockScaledMMLinearKernel as BLOCK  # noqa: E402
from qlinear_cutlass.int8 import CutlassInt8ScaledMMLinearKernel as INT8  # noqa: E402

KERNELS = (FP8, INT8, BLOCK)
H200 = Platform("cuda", 90, "NVIDIA H200")  # real (not simulated): the toolchain and headers are checked too


def fp8(n=4096, k=4096, dt=torch.bfloat16, out=None, w=qk.kFp8StaticChannelSym, a=qk.kFp8DynamicTokenSym):
    return FP8ScaledMMLinearLayerConfig(w, a, (n, k), dt, out)


def int8(n=4096, k=4096, dt=torch.bfloat16, static=False, ch=True, sym=True):
    return Int8ScaledMMLinearLayerConfig(static, ch, sym, (n, k), dt)


@pytest.mark.parametrize("kc", KERNELS)
@pytest.mark.parametrize("preset,cc", [("sm80", 80), ("sm89", 89), ("sm100", 100), ("sm120", 120)])
def test_other_archs_refused(kc, preset, cc):
    with simulate_platform(preset):
        ok, why = kc.is_supported()
    assert not ok and why == f"sm_90a kernels: needs CUDA cc 9.0 exactly (Hopper), have {cc}"


@pytest.mark.parametrize("kc", KERNELS)
def test_not_nvidia(kc):
    for preset, word in (("cpu", "platform is cpu"), ("mi300", "platform is rocm"), ("xpu", "platform is xpu")):
        with simulate_platform(preset):
            ok, why = kc.is_supported()
        assert not ok and word in why


@pytest.mark.parametrize("kc", KERNELS)
def test_simulated_sm90_judges_the_device_only(kc, monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(gates, "find_nvcc", lambda: None)
    with simulate_platform("sm90"):
        assert kc.is_supported() == (True, None)


def test_real_platform_needs_cuda_torch(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    ok, why = FP8.is_supported(H200)
    assert not ok and "torch is a CPU build" in why


def test_real_platform_needs_nvcc(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(gates, "find_nvcc", lambda: None)
    ok, why = INT8.is_supported(H200)
    assert not ok and "nvcc not found" in why


def test_real_platform_needs_headers(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(gates, "find_nvcc", lambda: "/usr/bin/nvcc")
    monkeypatch.setenv("QLINEAR_CUTLASS_DIR", str(tmp_path))  # an empty tree: no cutlass.h
    ok, why = FP8.is_supported(H200)
    assert not ok and "CUTLASS headers not found" in why


def test_real_platform_all_present(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(gates, "find_nvcc", lambda: "/usr/bin/nvcc")
    (tmp_path / "include" / "cutlass").mkdir(parents=True)
    (tmp_path / "include" / "cutlass" / "cutlass.h").write_text("")
    (tmp_path / "tools" / "util" / "include" / "cutlass" / "util").mkdir(parents=True)
    (tmp_path / "tools" / "util" / "include" / "cutlass" / "util" / "packed_stride.hpp").write_text("")
    monkeypatch.setenv("QLINEAR_CUTLASS_DIR", str(tmp_path))
    assert gates.cutlass_include_dirs() == [str(tmp_path / "include"), str(tmp_path / "tools" / "util" / "include")]
    for kc in KERNELS:
        assert kc.is_supported(H200) == (True, None)
        assert kc.is_supported(Platform("cuda", 100, "NVIDIA B200"))[0] is False


@pytest.mark.parametrize("c", [fp8(), fp8(n=6144), fp8(n=28672, dt=torch.float16), fp8(k=14336),
                               fp8(w=qk.kFp8StaticTensorSym, a=qk.kFp8StaticTensorSym), fp8(a=qk.kFp8DynamicTensorSym),
                               fp8(out=torch.float16), fp8(n=16, k=16)], ids=str)
def test_fp8_can_implement(c):
    assert FP8.can_implement(c) == (True, None)


@pytest.mark.parametrize("c", [int8(), int8(static=True), int8(sym=False), int8(static=True, sym=False, ch=False),
                               int8(dt=torch.float16)], ids=str)
def test_int8_can_implement(c):
    assert INT8.can_implement(c) == (True, None)


@pytest.mark.parametrize("kc,c,word", [
    (FP8, fp8(n=255, k=512), "N=255 and K=512 must be multiples of 16"),
    (FP8, fp8(n=256, k=520), "multiples of 16 (TMA"),
    (INT8, int8(n=4104, k=4096), "multiples of 16"),
    (FP8, fp8(dt=torch.float32), "input dtype torch.float32 is not bfloat16/float16"),
    (FP8, fp8(out=torch.float32), "out_dtype torch.float32"),
    (INT8, int8(dt=torch.float32), "input dtype"),
    (FP8, FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (256, 512), torch.bfloat16),
     "fp8_block family"),
], ids=lambda v: str(v)[:30])
def test_can_implement_refuses_with_reason(kc, c, word):
    ok, why = kc.can_implement(c)
    assert not ok and word in why


def block(n=4096, k=4096, dt=torch.bfloat16, out=None):
    return FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (n, k), dt, out)


@pytest.mark.parametrize("c", [block(), block(n=28672), block(k=14336, dt=torch.float16), block(n=256, k=512)], ids=str)
def test_block_can_implement(c):
    assert BLOCK.can_implement(c) == (True, None)


@pytest.mark.parametrize("c,word", [
    (block(n=300, k=512), "N=300 and K=512 must be multiples of 128"),
    (block(n=256, k=520), "multiples of 128"),
    (block(dt=torch.float32), "input dtype"),
    (fp8(), "not a block-scaled FP8 layer"),
], ids=lambda v: str(v)[:30])
def test_block_refuses_with_reason(c, word):
    ok, why = BLOCK.can_implement(c)
    assert not ok and word in why


def test_registered_and_ranked_below_the_measured_kernels():
    from qlinear.registry import get_registry

    reg = get_registry()
    assert FP8.__name__ in [k.__name__ for k in reg.kernels("fp8")]
    assert INT8.__name__ in [k.__name__ for k in reg.kernels("int8")]
    assert BLOCK.__name__ in [k.__name__ for k in reg.kernels("fp8_block")]
    assert FP8.backend == INT8.backend == "cutlass" and FP8.priority < 17  # below torch / triton / fbgemm


def test_selection_on_simulated_h200_keeps_the_measured_kernels_first():
    from qlinear.selection import select

    with simulate_platform("sm90"):
        sel = select(fp8(), evaluate_all=True)
    names = [k.__name__ for k in sel.viable]
    assert "CutlassFP8ScaledMMLinearKernel" in names
    assert names[0] != "CutlassFP8ScaledMMLinearKernel" or len(names) == 1


def test_import_does_not_load_the_extension():
    import sys

    import qlinear_cutlass  # noqa: F401

    assert not any(name.startswith("qlinear_cutlass_") for name in sys.modules)
