"""Platform gates, can_implement reasons and lazy import of the triton provider (no GPU needed)."""

import subprocess
import sys

import pytest
import torch

from qlinear import quant_key as qk
from qlinear.config import FP8ScaledMMLinearLayerConfig, Int8ScaledMMLinearLayerConfig, MPLinearLayerConfig
from qlinear.platform import simulate_platform
from qlinear.scalar_type import scalar_types
from qlinear_triton import base, qlinear_kernels
from qlinear_triton.fp8 import TritonFP8ScaledMMLinearKernel
from qlinear_triton.fp8_block import TritonFp8BlockScaledMMLinearKernel
from qlinear_triton.int8 import TritonInt8ScaledMMLinearKernel
from qlinear_triton.mp import TritonW4A16LinearKernel

FP8_KERNELS = (TritonFP8ScaledMMLinearKernel, TritonFp8BlockScaledMMLinearKernel)
OTHER = (TritonW4A16LinearKernel, TritonInt8ScaledMMLinearKernel)


def test_discovery_does_not_import_triton():
    code = ("import sys, qlinear_triton; ks = qlinear_triton.qlinear_kernels(); "
            "print(len(ks), 'triton' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["6", "False"]


def test_registered_through_entry_point():
    from qlinear.registry import get_registry

    names = {k.full_name() for k in get_registry().kernels()}
    assert {"triton.TritonW4A16LinearKernel", "triton.TritonInt8ScaledMMLinearKernel",
            "triton.TritonFP8ScaledMMLinearKernel", "triton.TritonFp8BlockScaledMMLinearKernel"} <= names


def test_sm90_supports_everything():
    with simulate_platform("sm90"):
        for k in qlinear_kernels():
            assert k.is_supported() == (True, None), k


def test_sm80_rejects_fp8_with_reason():
    with simulate_platform("sm80"):
        for k in FP8_KERNELS:
            ok, why = k.is_supported()
            assert not ok and why == "needs CUDA cc>=89 for FP8, have 80"
        for k in OTHER:
            assert k.is_supported() == (True, None)


def test_bare_capability_argument():
    with simulate_platform("sm90"):
        assert TritonFP8ScaledMMLinearKernel.is_supported(80)[0] is False
        assert TritonFP8ScaledMMLinearKernel.is_supported(89)[0] is True


def test_cpu_rejected():
    with simulate_platform("cpu"):
        for k in qlinear_kernels():
            ok, why = k.is_supported()
            assert not ok and "CUDA or ROCm" in why


def test_mi300():
    with simulate_platform("mi300"):
        for k in FP8_KERNELS:
            ok, why = k.is_supported()
            assert not ok and "ROCm" in why
        for k in OTHER:
            assert k.is_supported() == (True, None)


def test_triton_missing_reason(monkeypatch):
    monkeypatch.setattr(base, "triton_import_error", lambda: "ModuleNotFoundError: No module named 'triton'")
    with simulate_platform("sm90"):
        ok, why = TritonW4A16LinearKernel.is_supported()
    assert not ok and why == "triton not importable: ModuleNotFoundError: No module named 'triton'"


def _mp(wt=scalar_types.uint4b8, g=128, act=torch.bfloat16, n=256, k=512, zp=False, gidx=False):
    return MPLinearLayerConfig((k, n), (k, n), wt, act, g, zp, gidx)


@pytest.mark.parametrize("cfg,needle", [
    (_mp(wt=scalar_types.uint8b128), "4-bit only"),
    (_mp(act=torch.float32), "float16/bfloat16"),
    (_mp(g=16), "group_size 16"),
    (_mp(n=260), "N=260 is not a multiple of 8"),
])
def test_w4a16_rejections(cfg, needle):
    ok, why = TritonW4A16LinearKernel.can_implement(cfg)
    assert not ok and needle in why


@pytest.mark.parametrize("cfg", [_mp(), _mp(g=-1), _mp(g=512), _mp(g=32, zp=True, wt=scalar_types.uint4),
                                 _mp(g=256, gidx=True), _mp(act=torch.float16, g=64)])
def test_w4a16_accepts(cfg):
    assert TritonW4A16LinearKernel.can_implement(cfg) == (True, None)


def test_fp8_family_split():
    per_tok = FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (256, 512))
    block = FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (256, 512))
    assert TritonFP8ScaledMMLinearKernel.can_implement(per_tok) == (True, None)
    assert TritonFp8BlockScaledMMLinearKernel.can_implement(block) == (True, None)
    assert TritonFP8ScaledMMLinearKernel.can_implement(block)[0] is False
    assert TritonFp8BlockScaledMMLinearKernel.can_implement(per_tok)[0] is False


def test_int8_accepts_all_schemes():
    for st in (False, True):
        for ch in (False, True):
            for sym in (False, True):
                c = Int8ScaledMMLinearLayerConfig(st, ch, sym, (255, 513))
                assert TritonInt8ScaledMMLinearKernel.can_implement(c) == (True, None)


def test_selection_sm90_and_cpu():
    from qlinear.selection import select

    with simulate_platform("sm90"):
        assert select(_mp(), kernels=[TritonW4A16LinearKernel]).kernel is TritonW4A16LinearKernel
    with simulate_platform("cpu"):
        sel = select(_mp(), kernels=[TritonW4A16LinearKernel], raise_on_failure=False)
    assert sel.kernel is None and "CUDA or ROCm" in " ".join(sel.reasons.values())


def test_turing_rejected():
    with simulate_platform("sm75"):
        ok, why = TritonW4A16LinearKernel.is_supported()
    assert not ok and why == "needs CUDA cc>=80, have 75"
