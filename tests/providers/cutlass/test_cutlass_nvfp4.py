"""CPU tests of the CUTLASS SM100 NVFP4 kernel's Python side (the kernel is UNVERIFIED: there is no
SM100 GPU here): the capability gate (simulated sm100 yes; sm90, sm120, CPU no, each with its reason),
the refusals, selection on a simulated B200, the weight-scale re-lay (the 128x4 layout, which
test_cutlass_compile.py proves equal to CUTLASS's SM100 scale-factor layout), and the whole
load-and-apply path through the conformance kit against a stand-in extension that reads the buffers
the way the CUDA code does: the quantizer writes codes and 128x4-laid scales (checked against the
format's reference quantizer), the GEMM decodes both operands and applies alpha and the bias."""

import pytest
import torch

pytest.importorskip("qlinear_cutlass")

from qlinear import select, simulate_platform, testing  # noqa: E402
from qlinear.config import NvFp4LinearLayerConfig  # noqa: E402
from qlinear.formats.codes import e2m1_decode, e4m3_decode, unpack_fp4  # noqa: E402
from qlinear.formats.micro import quantize_nvfp4  # noqa: E402
from qlinear.formats.swizzle import round_up, swizzle_128x4, unswizzle_128x4  # noqa: E402
from qlinear_cutlass import build  # noqa: E402
from qlinear_cutlass.nvfp4 import CutlassNvFp4LinearKernel as K  # noqa: E402

BF, FP = torch.bfloat16, torch.float16


@pytest.mark.parametrize("plat, ok, why", [
    ("sm100", True, None), ("sm90", False, "sm_100a kernels: needs CUDA cc 10.0 exactly"),
    ("sm120", False, "needs CUDA cc 10.0 exactly"), ("cpu", False, "needs an NVIDIA CUDA GPU"),
])
def test_gate(plat, ok, why):
    with simulate_platform(plat) as p:
        got, reason = K.is_supported(p)
    assert got == ok and (why is None or why in reason)


@pytest.mark.parametrize("cfg, why", [
    (NvFp4LinearLayerConfig((256, 528)), "K=528 must be a multiple of 64"),
    (NvFp4LinearLayerConfig((260, 512)), "N=260 must be a multiple of 8"),
    (NvFp4LinearLayerConfig((256, 512), torch.float32), "activation dtype torch.float32"),
    (NvFp4LinearLayerConfig((256, 512), BF, torch.float32), "out_dtype torch.float32"),
])
def test_refusals_name_the_reason(cfg, why):
    ok, reason = K.can_implement(cfg)
    assert not ok and why in reason


def test_usable_on_a_simulated_b200_only():
    c = NvFp4LinearLayerConfig((4096, 4096))
    name = K.full_name()
    with simulate_platform("sm100"):
        sel = select(c)
    assert sel.kernel is K or sel.reasons[name].startswith("available"), sel.explain()
    with simulate_platform("sm90"):
        sel = select(c)
    assert "needs CUDA cc 10.0 exactly" in sel.reasons[name], sel.explain()


class StandInNvFp4:
    def __init__(self):
        self.calls = 0

    def quant_nvfp4(self, x, gs, q, sf):
        m, k = x.shape
        assert x.dtype in (BF, FP) and x.stride(1) == 1 and k % 64 == 0 and x.data_ptr() % 16 == 0
        assert q.dtype == torch.uint8 and q.shape == (m, k // 2) and sf.dtype == torch.uint8 and sf.shape == (round_up(m, 128), k // 16)
        assert gs.dtype == torch.float32 and gs.numel() == 1
        codes, s, _ = quantize_nvfp4(x, gs)
        q.copy_(codes)
        sf.copy_(swizzle_128x4(s.view(torch.uint8)))  # the CUDA quantizer writes each scale at its 128x4 slot, zero padding

    def nvfp4_mm(self, out, xq, x_sf, w, w_sf, alpha, bias):
        self.calls += 1
        m, n, k = xq.shape[0], w.shape[0], xq.shape[1] * 2
        assert out.shape == (m, n) and out.dtype in (BF, FP) and w.dtype == torch.uint8 and w.is_contiguous()
        assert alpha.dtype == torch.float32 and alpha.numel() == 1

        def dec(codes, sf, rows):  # E2M1 x E4M3 block scale, no global scale (alpha carries both)
            s = e4m3_decode(unswizzle_128x4(sf, rows, k // 16).view(torch.float8_e4m3fn))
            return (e2m1_decode(unpack_fp4(codes)).view(rows, k // 16, 16) * s[..., None]).reshape(rows, k)

        r = (dec(xq, x_sf, m) @ dec(w, w_sf, n).t()) * alpha
        if bias is not None:
            assert bias.dtype == out.dtype and bias.numel() == n
            r = r + bias.float()
        out.copy_(r)


@pytest.fixture
def ext(monkeypatch):
    fake = StandInNvFp4()
    monkeypatch.setattr(build, "load_nvfp4_extension", lambda: fake)
    return fake


RUNNABLE = testing.gate_lifted(K)
LARGER = [NvFp4LinearLayerConfig((512, 1024)), NvFp4LinearLayerConfig((264, 256), FP), NvFp4LinearLayerConfig((256, 512), BF, FP)]


@pytest.mark.parametrize("case", [c for c in testing.cases_for(K, ms=(1, 33)) + testing.cases_for(K, ms=(130,), configs=LARGER)
                                  if K.can_implement(c.config)[0]], ids=str)
def test_conformance_through_the_stand_in(ext, case):
    testing.run_case(RUNNABLE, case, device="cpu")
    assert ext.calls == 1


def test_weight_scales_are_laid_out_128x4(ext):
    from qlinear.layers import make_layer

    c = NvFp4LinearLayerConfig((200, 512))
    params, _, _ = testing.make_case_layer(testing.Case(c, 1), "cpu")
    layer = make_layer(c, params)
    RUNNABLE.create(c).process_weights_after_loading(layer)
    sw = layer.weight_scale
    assert sw.shape == (256, 512 // 16) and sw.dtype == torch.uint8  # N padded to whole 128-row tiles, zeros
    assert torch.equal(unswizzle_128x4(sw, 200, 32), params["weight_scale"].view(torch.uint8))
    assert int(unswizzle_128x4(sw, 256, 32)[200:].count_nonzero()) == 0  # the padding rows hold zero scales
    assert torch.equal(layer.weight, params["weight"])  # codes stay [N, K/2], K-major
    want = 1.0 / (params["input_global_scale"].float() * params["weight_global_scale"].float())
    assert torch.equal(layer.alpha, want.reshape(1))


def test_bad_inputs(ext):
    testing.check_bad_inputs(RUNNABLE)
