"""What the real, installed providers pick on simulated machines (SM80, SM90, SM100, MI300, XPU,
Zen 5, another x86 CPU). The library-backed providers (fbgemm, flashinfer) are installed without
their libraries in CI, so they must be rejected with "not importable" and never break selection."""

import importlib.util

import pytest
import torch

import qlinear
from qlinear.nn import scheme_config
from qlinear.platform import simulate_platform
from qlinear.settings import override_settings

HAS = {m: importlib.util.find_spec(m) is not None for m in ("triton", "zentorch", "fbgemm_gpu", "flashinfer")}


@pytest.fixture(scope="module")
def providers():
    qlinear.reset_registry()
    reg = qlinear.get_registry()
    return {name for name, info in reg.providers.items() if info.ok}


def pick(preset, scheme, **settings):
    with simulate_platform(preset), override_settings(zentorch_any_cpu=False, **settings):
        sel = qlinear.select(scheme_config(scheme, 4096, 4096))
    return sel.kernel.full_name(), sel


def need(providers, *names, libs=()):
    missing = [n for n in names if n not in providers] + [l for l in libs if not HAS[l]]
    if missing:
        pytest.skip(f"needs {missing}")


@pytest.mark.parametrize("preset", ["sm80", "sm90", "sm100", "sm120", "mi300", "xpu", "zen5", "cpu"])
@pytest.mark.parametrize("scheme", ["w4a16-g128", "awq-g128", "int8-dynamic", "fp8-dynamic", "fp8-block", "nvfp4", "mxfp4", "mxfp8"])
def test_every_family_gets_a_kernel_with_reasons_everywhere(providers, preset, scheme):
    """Emulation is always there, so every layer gets a kernel on every machine, and every other
    kernel of the family says why it was not chosen."""
    need(providers, "emulation")
    name, sel = pick(preset, scheme)
    assert all(r for _, r in sel.rejected), sel.explain()
    if preset == "xpu":  # the xpu provider's torch-op kernels (no library needed) take W4A16 and FP8
        xpu_schemes = ("w4a16-g128", "awq-g128", "fp8-dynamic") if "xpu" in providers else ()
        assert name.startswith("xpu." if scheme in xpu_schemes else "emulation."), sel.explain()


def test_sm90(providers):
    need(providers, "marlin", "triton", "torch", libs=("triton",))
    # W4A16 on 4096x4096 (shipped H200 rows): at M <= 16 two decode kernels, marlin's and CUTLASS's on
    # its GEMM's weight, are within a few % (summed over M = 1 / 4 / 16: GPTQ 24.1 cutlass / 23.7 marlin
    # us, AWQ 23.2 / 22.9, act-order 26.2 / 29.6), so a layer declared for decode takes the table's
    # pick where CUTLASS can run (nvcc and the CUTLASS headers present), else marlin's; summed over M =
    # 1..2048 (the default mixed regime) and from M = 128 (prefill) CUTLASS, else triton
    name, sel = pick("sm90", "w4a16-g128")
    cutlass_runs = name.startswith("cutlass.") or sel.reasons.get("cutlass.CutlassW4A16LinearKernel", "").startswith("available")
    marlin, cutlass = "marlin.MarlinMPLinearKernel", "cutlass.CutlassW4A16LinearKernel"
    for scheme, measured in (("w4a16-g128", marlin), ("awq-g128", marlin), ("w4a16-g128-actorder", cutlass)):
        assert pick("sm90", scheme, regime="decode")[0] == (measured if cutlass_runs else marlin), scheme
    assert name == ("cutlass.CutlassW4A16LinearKernel" if cutlass_runs else "triton.TritonW4A16LinearKernel"), sel.explain()
    name, sel = pick("sm90", "w4a16-g128", regime="prefill")
    assert name == ("cutlass.CutlassW4A16LinearKernel" if cutlass_runs else "triton.TritonW4A16LinearKernel"), sel.explain()
    # 8-bit codes: CUTLASS's W8A16 (the only rows for group 128) where it runs, else marlin by priority
    assert pick("sm90", "w8a16")[0] == ("cutlass.CutlassW8A16LinearKernel" if cutlass_runs else "marlin.MarlinMPLinearKernel")
    name, sel = pick("sm90", "fp8-dynamic")
    if not HAS["fbgemm_gpu"]:
        assert name == "triton.TritonFP8ScaledMMLinearKernel"
        assert "fbgemm-gpu-genai not importable" in sel.reasons["fbgemm.FbgemmFp8RowwiseLinearKernel"]
    # INT8 and block FP8: the shipped H200 table measured cutlass fastest (summed over M) on the Llama
    # shapes; where cutlass cannot run (no nvcc, not installed) the priority order gives triton
    for scheme, fallback, measured in (("fp8-block", "triton.TritonFp8BlockScaledMMLinearKernel",
                                        "cutlass.CutlassFp8BlockScaledMMLinearKernel"),
                                       ("int8-dynamic", "triton.TritonInt8ScaledMMLinearKernel",
                                        "cutlass.CutlassInt8ScaledMMLinearKernel")):
        if scheme == "fp8-block" and HAS["flashinfer"]:
            continue
        name, sel = pick("sm90", scheme)
        cutlass_usable = "cutlass" in providers and measured not in sel.reasons
        assert name == (measured if cutlass_usable else fallback), sel.explain()
        with override_settings(use_tables=False):
            assert pick("sm90", scheme)[0] == fallback  # priority order without tables
    # the backend filter reaches any provider's kernels
    assert pick("sm90", "fp8-dynamic", linear_backend="torch")[0].startswith("torch.TorchCuda")


def test_sm80_has_no_fp8_tensor_cores(providers):
    need(providers, "marlin")
    name, sel = pick("sm80", "fp8-dynamic")
    assert name == "marlin.MarlinFP8ScaledMMLinearKernel"  # weight-only FP8, as vLLM does on Ampere
    for k in ("triton.TritonFP8ScaledMMLinearKernel", "torch.TorchCudaRowWiseFP8ScaledMMLinearKernel"):
        if k in sel.reasons:
            assert "89" in sel.reasons[k] or "90" in sel.reasons[k], sel.reasons[k]


def test_sm100_fp4(providers):
    need(providers, "marlin", "flashinfer")
    name, sel = pick("sm100", "nvfp4")
    if not HAS["flashinfer"]:
        assert "flashinfer not importable" in sel.reasons["flashinfer.FlashInferCutlassNvFp4LinearKernel"]
        if "cutlass" in providers:  # the cutlass provider's own SM100 W4A4 GEMM (22), needs no library
            assert name == "cutlass.CutlassNvFp4LinearKernel", sel.explain()
            name, sel = pick("sm100", "nvfp4", disabled_kernels=("cutlass.*",))
        # the weight-only fallback: marlin's (15), measured faster on the H200 than triton's (14)
        assert name == "marlin.MarlinNvFp4LinearKernel", sel.explain()


def test_rocm(providers):
    need(providers, "triton", "marlin", libs=("triton",))
    name, sel = pick("mi300", "w4a16-g128")
    assert name == "triton.TritonW4A16LinearKernel"
    name, sel = pick("mi300", "w8a16")  # 8-bit codes: triton declines, marlin says why it can't run
    assert "NVIDIA" in sel.reasons["marlin.MarlinMPLinearKernel"], sel.explain()


def test_cpus(providers):
    need(providers, "torch", "zentorch", libs=("zentorch",))
    assert pick("zen5", "int8-dynamic")[0] == "zentorch.ZentorchInt8ScaledMMLinearKernel"
    assert pick("zen5", "w4a16-g128")[0] == "torch.TorchCpuW4A16LinearKernel"
    assert pick("zen5", "w4a16-g128-actorder")[0] == "zentorch.ZentorchWNA16LinearKernel"
    # an Intel AMX CPU: the cpu provider's own AMX kernels when installed, else torch's
    amx = "cpu" in providers
    assert pick("cpu", "int8-dynamic")[0] == ("cpu.CpuAmxInt8ScaledMMLinearKernel" if amx else "torch.TorchCpuInt8ScaledMMLinearKernel")
    name, sel = pick("cpu", "int8-dynamic", disabled_kernels=("cpu.*",))
    assert name == "torch.TorchCpuInt8ScaledMMLinearKernel"
    assert "not an AMD Zen CPU" in sel.reasons["zentorch.ZentorchInt8ScaledMMLinearKernel"]
    # CPU _scaled_mm is slower than emulation
    assert pick("cpu", "fp8-dynamic")[0] == ("cpu.CpuAmxFP8ScaledMMLinearKernel" if amx else "emulation.EmulationFP8ScaledMMLinearKernel")
    if amx:  # no AMX on Zen: the cpu provider says so and the Zen picks above stand
        assert "amx_tile" in pick("zen5", "w4a16-g128")[1].reasons["cpu.CpuAmxWNA16LinearKernel"]
    _ = torch
