"""GPU tests of the cutlass provider (H100/H200 only): the conformance kit for every kernel, every tile
configuration and M in 1, 16, 33, 128, 1024; the quantizers against the reference bit for bit; bad
inputs; CUDA-graph capture."""

import pytest
import torch

pytest.importorskip("qlinear_cutlass")

from qlinear import quant_key as qk, testing  # noqa: E402
from qlinear.config import FP8ScaledMMLinearLayerConfig as FP8C, Int8ScaledMMLinearLayerConfig as I8C  # noqa: E402
from qlinear.formats.fp8 import quantize_fp8_activation  # noqa: E402
from qlinear.formats.int8 import quantize_int8_activation  # noqa: E402
from qlinear.layers import make_layer  # noqa: E402
from qlinear_cutlass.fp8 import CutlassFP8ScaledMMLinearKernel as FP8  # noqa: E402
from qlinear_cutlass.fp8_block import CutlassFp8BlockScaledMMLinearKernel as BLOCK  # noqa: E402
from qlinear_cutlass.int8 import CutlassInt8ScaledMMLinearKernel as INT8  # noqa: E402


def _is_h100_class():
    return torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _is_h100_class(), reason="needs a cc 9.0 (Hopper) GPU")]
MS = (1, 16, 33, 128, 1024)
KERNELS = (FP8, INT8, BLOCK)

# Larger layers than the kit's defaults: several N tiles, K of many 128-wide steps, fp16 output.
EXTRA_FP8 = [FP8C(w, a, nk, dt) for w, a, nk, dt in (
    (qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (1024, 2048), torch.bfloat16),
    (qk.kFp8StaticTensorSym, qk.kFp8StaticTensorSym, (1536, 1024), torch.float16),
    (qk.kFp8StaticChannelSym, qk.kFp8DynamicTensorSym, (512, 4096), torch.bfloat16),
    (qk.kFp8StaticTensorSym, qk.kFp8DynamicTokenSym, (2048, 512), torch.float16),
)]
EXTRA_INT8 = [I8C(st, ch, sym, nk, dt) for st, ch, sym, nk, dt in (
    (False, True, True, (1024, 2048), torch.bfloat16),
    (False, True, False, (1024, 2048), torch.bfloat16),
    (True, False, False, (1536, 1024), torch.float16),
    (True, True, True, (512, 4096), torch.float16),
)]

EXTRA_BLOCK = [FP8C(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, nk, dt) for nk, dt in (
    ((1024, 2048), torch.bfloat16), ((1536, 1024), torch.float16), ((512, 4096), torch.bfloat16))]


@pytest.mark.parametrize("kc,case", [(kc, c) for kc in KERNELS for c in testing.cases_for(kc, ms=MS)],
                         ids=lambda v: v.__name__ if isinstance(v, type) else str(v))
def test_conformance(kc, case):
    testing.run_case(kc, case, device="cuda")


@pytest.mark.parametrize("tile", ["small", "mid", "large"])
@pytest.mark.parametrize("kc,case", [(FP8, c) for c in testing.cases_for(FP8, ms=(1, 33, 300), configs=EXTRA_FP8)]
                         + [(INT8, c) for c in testing.cases_for(INT8, ms=(1, 33, 300), configs=EXTRA_INT8)]
                         + [(BLOCK, c) for c in testing.cases_for(BLOCK, ms=(1, 33, 300), configs=EXTRA_BLOCK)],
                         ids=lambda v: v.__name__ if isinstance(v, type) else str(v))
def test_every_tile_config(kc, case, tile, monkeypatch):
    monkeypatch.setenv("QLINEAR_CUTLASS_TILE", tile)
    testing.run_case(kc, case, device="cuda")


@pytest.mark.parametrize("kc", KERNELS, ids=lambda k: k.__name__)
def test_kit_and_bad_inputs(kc):
    results = testing.check_kernel(kc, device="cuda", min_ran=8)
    # every kit case the kernel accepts must have run (a case skipped at run time would hide a failure)
    accepted = sum(bool(kc.can_implement(c.config)[0]) for c in testing.cases_for(kc))
    assert sum(r.ran for r in results) == accepted
    testing.check_bad_inputs(kc, device="cuda")


def _ext():
    from qlinear_cutlass.build import load_extension

    return load_extension()


@pytest.mark.parametrize("dt", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("m,k", [(1, 4096), (37, 14336), (300, 512)])
def test_quantizers_match_the_reference(m, k, dt):
    ext = _ext()
    x = (torch.randn(m, k, device="cuda") * 3).to(dt)
    x[0, :5] = 0  # a row with zeros (and for m=1 the only row)
    xc = x.cpu()
    # FP8 per token, with and without the upper bound
    for ub in (None, torch.tensor([2.0], device="cuda")):
        q, s = torch.empty(m, k, dtype=torch.float8_e4m3fn, device="cuda"), torch.empty(m, device="cuda")
        ext.quant_per_token(x, q, s, None, ub)
        rq, rs = quantize_fp8_activation(xc, "token", scale_ub=None if ub is None else ub.cpu())
        assert torch.equal(s.cpu(), rs.reshape(-1)) and torch.equal(q.cpu().view(torch.uint8), rq.view(torch.uint8))
    # FP8 per tensor (dynamic and static)
    q, s, amax = (torch.empty(m, k, dtype=torch.float8_e4m3fn, device="cuda"), torch.empty(1, device="cuda"),
                  torch.empty(1, device="cuda"))
    ext.quant_per_tensor_fp8(x, q, s, amax)
    rq, rs = quantize_fp8_activation(xc, "tensor")
    assert torch.equal(s.cpu(), rs) and torch.equal(q.cpu().view(torch.uint8), rq.view(torch.uint8))
    st = torch.tensor([0.01], device="cuda")  # small: many values saturate
    ext.quant_static(x, q, st, None)
    rq, _ = quantize_fp8_activation(xc, "tensor", scale=st.cpu())
    assert torch.equal(q.cpu().view(torch.uint8), rq.view(torch.uint8))
    # INT8 per token, symmetric and asymmetric
    for sym in (True, False):
        q, s = torch.empty(m, k, dtype=torch.int8, device="cuda"), torch.empty(m, device="cuda")
        zp = None if sym else torch.empty(m, dtype=torch.int32, device="cuda")
        ext.quant_per_token(x, q, s, zp, None)
        rq, rs, rzp = quantize_int8_activation(xc, sym)
        assert torch.equal(s.cpu(), rs.reshape(-1)) and torch.equal(q.cpu(), rq)
        if not sym:
            assert torch.equal(zp.cpu(), rzp.reshape(-1))
    # INT8 static, with a zero point
    s1, z1 = torch.tensor([0.02], device="cuda"), torch.tensor([7], dtype=torch.int32, device="cuda")
    q = torch.empty(m, k, dtype=torch.int8, device="cuda")
    ext.quant_static(x, q, s1, z1)
    rq, _, _ = quantize_int8_activation(xc, False, scale=s1.cpu(), zero_point=z1.cpu())
    assert torch.equal(q.cpu(), rq)
    # FP8 1 x 128 groups, scales written group-major into a padded [K/128, M_pad]
    mp = m + 3
    q = torch.empty(mp, k, dtype=torch.float8_e4m3fn, device="cuda")
    s_t = torch.full((k // 128, mp), -1.0, device="cuda")
    ext.quant_per_group_fp8(x, q, s_t)
    rq, rs = quantize_fp8_activation(xc, "group")
    assert torch.equal(s_t[:, :m].t().cpu(), rs) and torch.equal(q[:m].cpu().view(torch.uint8), rq.view(torch.uint8))
    assert (s_t[:, m:] == -1).all()  # the padding columns are left alone


def _layer(kc, c, m, seed=0):
    params, x, bias = testing.make_case_layer(testing.Case(c, m), "cuda", seed)
    layer = make_layer(c, params)
    k = kc.create(c)
    k.process_weights_after_loading(layer)
    return k, layer, x, bias


@pytest.mark.parametrize("kc,c", [(FP8, EXTRA_FP8[0]), (INT8, EXTRA_INT8[1])], ids=["fp8", "int8-asym"])
def test_cuda_graph_replay_matches_eager_and_calls_are_repeatable(kc, c):
    k, layer, x, bias = _layer(kc, c, 16)
    eager = k.apply(layer, x, bias)
    assert torch.equal(k.apply(layer, x, bias), eager)  # no state between calls, fixed reduction order
    static_x = x.clone()
    g, out = testing.capture_graph(lambda: k.apply(layer, static_x, bias))  # warmed on a side stream
    assert torch.equal(out, eager)
    static_x.copy_(x * 0.5)
    g.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, k.apply(layer, x * 0.5, bias))


def test_fp8_input_uses_input_scale_and_leading_dims():
    c = FP8C(qk.kFp8StaticChannelSym, qk.kFp8StaticTensorSym, (512, 1024), torch.bfloat16)
    k, layer, x, bias = _layer(FP8, c, 6)
    ref = k.apply(layer, x, bias)
    q, _ = quantize_fp8_activation(x.float(), "tensor", scale=layer.input_scale)
    assert torch.equal(k.apply(layer, q, bias), ref)
    assert k.apply(layer, x.reshape(2, 3, -1), bias).shape == (2, 3, 512)
    assert k.apply(layer, x[:0]).shape == (0, 512)
