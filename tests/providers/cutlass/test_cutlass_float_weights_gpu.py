"""GPU tests of the CUTLASS float-code weight-only kernels (NVFP4, MXFP4 on the W4A16 GEMM, MXFP8 on the
W8A16 one; H100/H200 only):
the conformance kit for every default config each accepts, larger layers (several N and K tiles, wide
layers, N not a multiple of the tile) at M up to 1024, every tile forced, every E2M1 / E4M3 code against
the format's decoder, bad inputs, CUDA-graph replay equal to eager and bit-identical repeats."""

import pytest
import torch

pytest.importorskip("qlinear_cutlass")

from qlinear import testing  # noqa: E402
from qlinear.config import MxFp4LinearLayerConfig, Mxfp8LinearLayerConfig, NvFp4LinearLayerConfig  # noqa: E402
from qlinear.layers import make_layer  # noqa: E402
from qlinear_cutlass import configs  # noqa: E402
from qlinear_cutlass.float_weights import CutlassMxFp4WeightOnlyLinearKernel as MX  # noqa: E402
from qlinear_cutlass.float_weights import CutlassMxfp8WeightOnlyLinearKernel as MX8  # noqa: E402
from qlinear_cutlass.float_weights import CutlassNvFp4WeightOnlyLinearKernel as NV  # noqa: E402


def _is_h100_class():
    return torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _is_h100_class(), reason="needs a cc 9.0 (Hopper) GPU")]
BF, FP = torch.bfloat16, torch.float16
MS = (1, 3, 16, 33, 64, 127)
LARGE_MS = (128, 255, 1024)
LARGER = {NV: [NvFp4LinearLayerConfig((1024, 2048)), NvFp4LinearLayerConfig((1536, 1024), FP),
               NvFp4LinearLayerConfig((400, 1024)), NvFp4LinearLayerConfig((16400, 256), FP)],
          MX: [MxFp4LinearLayerConfig((1024, 2048)), MxFp4LinearLayerConfig((272, 576)), MxFp4LinearLayerConfig((16384, 512))],
          MX8: [Mxfp8LinearLayerConfig((1024, 2048)), Mxfp8LinearLayerConfig((272, 576)), Mxfp8LinearLayerConfig((16384, 512))]}
KERNELS = (NV, MX, MX8)


def _cases(ms, larger=False, first=None):
    return [(kc, case) for kc in KERNELS
            for case in testing.cases_for(kc, ms=ms, configs=LARGER[kc][:first] if larger else None)
            if kc.can_implement(case.config)[0]]


def _id(p):
    return p.__name__.removeprefix("Cutlass").removesuffix("LinearKernel") if isinstance(p, type) else str(p)


@pytest.mark.parametrize("kc,case", _cases(MS), ids=_id)
def test_conformance(kc, case):
    testing.run_case(kc, case, device="cuda")


@pytest.mark.parametrize("kc,case", _cases(LARGE_MS, True), ids=_id)
def test_larger_layers(kc, case):
    testing.run_case(kc, case, device="cuda")


@pytest.mark.parametrize("tile", sorted(configs.W4A16_TILES))
@pytest.mark.parametrize("kc,case", _cases((3, 300), True, 1), ids=_id)
def test_every_tile_config(kc, case, tile, monkeypatch):
    monkeypatch.setenv("QLINEAR_CUTLASS_W4A16_TILE", tile)
    testing.run_case(kc, case, device="cuda")


@pytest.mark.parametrize("kc", KERNELS, ids=_id)
def test_kit_and_bad_inputs(kc):
    results = testing.check_kernel(kc, device="cuda", min_ran=2)
    accepted = sum(bool(kc.can_implement(c.config)[0]) for c in testing.cases_for(kc))
    assert sum(r.ran for r in results) == accepted
    testing.check_bad_inputs(kc, device="cuda")


def _layer(kc, c, m, seed=0):
    params, x, bias = testing.make_case_layer(testing.Case(c, m), "cuda", seed)
    layer = make_layer(c, params)
    k = kc.create(c)
    k.process_weights_after_loading(layer)
    return k, layer, x, bias, params


def _one_hot_rows(k_, layer, k, dt, rows):
    """The layer applied to the K x K identity, ``rows`` rows a call (16 and fewer: the decode kernel)."""
    eye = torch.eye(k, device="cuda", dtype=dt)
    return torch.cat([k_.apply(layer, eye[i:i + rows]) for i in range(0, k, rows)])


@pytest.mark.parametrize("rows", [256, 16, 5], ids=("gemm", "decode16", "decode5"))
@pytest.mark.parametrize("dt", [BF, FP], ids=("bf16", "fp16"))
def test_every_code_decodes_exactly(dt, rows):
    """One-hot activations read single weights back: every E2M1 code, in every k-block position and both
    rows of a pair, times its group scale (powers of two, so exact), equals the format's decoder."""
    from qlinear.formats.codes import e2m1_decode, pack_fp4

    n, k = 128, 256
    c = NvFp4LinearLayerConfig((n, k), dt)
    k_, layer, _, _, params = _layer(NV, c, 1)
    codes = torch.arange(n * k, device="cuda").reshape(n, k) % 16
    codes = (codes + torch.arange(n, device="cuda")[:, None]) % 16  # each code at many (row, k) places
    scale = torch.exp2(torch.randint(-3, 4, (n, k // 16), device="cuda").float())
    params = dict(params, weight=pack_fp4(codes.to(torch.uint8)), weight_scale=scale.to(torch.float8_e4m3fn),
                  weight_global_scale=torch.tensor(1.0, device="cuda"))
    layer = make_layer(c, params)
    k_ = NV.create(c)
    k_.process_weights_after_loading(layer)
    got = _one_hot_rows(k_, layer, k, dt, rows).float().t()  # [N, K]: weight (n, k)
    want = e2m1_decode(codes.to(torch.uint8)) * scale.repeat_interleave(16, 1)
    assert torch.equal(got, want)


@pytest.mark.parametrize("rows", [512, 16, 5], ids=("gemm", "decode16", "decode5"))
def test_every_e4m3_code_decodes_exactly(rows):
    """MXFP8: every finite E4M3 code at many places of the 8-bit words, times power-of-two E8M0 scales,
    read back exactly through one-hot activations."""
    from qlinear.formats.codes import e4m3_decode

    n, k = 128, 512
    c = Mxfp8LinearLayerConfig((n, k))
    _, _, _, _, params = _layer(MX8, c, 1)
    finite = torch.tensor([v for v in range(256) if v & 0x7F != 0x7F], device="cuda")
    idx = (torch.arange(n * k, device="cuda").reshape(n, k) + 7 * torch.arange(n, device="cuda")[:, None]) % finite.numel()
    codes = finite[idx].to(torch.uint8)
    scale = torch.randint(124, 131, (n, k // 32), device="cuda", dtype=torch.uint8)  # E8M0: 2^-3 .. 2^3
    layer = make_layer(c, dict(params, weight=codes.view(torch.float8_e4m3fn), weight_scale=scale))
    k_ = MX8.create(c)
    k_.process_weights_after_loading(layer)
    got = _one_hot_rows(k_, layer, k, torch.bfloat16, rows).float().t()
    want = e4m3_decode(codes) * torch.exp2(scale.float() - 127).repeat_interleave(32, 1)
    assert torch.equal(got, want)


@pytest.mark.parametrize("kc,c", [(NV, LARGER[NV][0]), (NV, LARGER[NV][1]), (MX, LARGER[MX][0]), (MX8, LARGER[MX8][0])],
                         ids=lambda p: _id(p) if isinstance(p, type) else p.describe())
def test_cuda_graph_replay_equals_eager_and_is_deterministic(kc, c):
    k, layer, x, bias, _ = _layer(kc, c, 200)
    eager = k.apply(layer, x, bias)
    assert torch.equal(eager, k.apply(layer, x, bias))  # bit-identical on repeat
    graph, out = testing.capture_graph(lambda: k.apply(layer, x, bias))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, eager)


def test_strided_rows_and_leading_dims():
    c = LARGER[NV][0]
    k, layer, x, bias, _ = _layer(NV, c, 96)
    kk = c.weight_shape[1]
    ref = k.apply(layer, x, bias)
    wide = torch.zeros(96, kk + 64, dtype=x.dtype, device="cuda")
    wide[:, 32:32 + kk] = x
    assert torch.equal(k.apply(layer, wide[:, 32:32 + kk], bias), ref)
    assert torch.equal(k.apply(layer, x.reshape(8, 12, kk), bias).reshape(96, -1), ref)
    testing.check_leading_dims(NV, c, device="cuda")


# ---- the decode kernel (csrc/float_decode.cuh): M <= 16 on the GEMM's own weight and packets -----------
DECODE = [(NV, NvFp4LinearLayerConfig((1024, 2048))), (NV, NvFp4LinearLayerConfig((1536, 1024), FP)),
          (MX, MxFp4LinearLayerConfig((1024, 2048))), (MX8, Mxfp8LinearLayerConfig((1024, 2048))),
          (MX8, Mxfp8LinearLayerConfig((16384, 576)))]


def _did(p):
    return _id(p) if isinstance(p, type) else p.describe()


@pytest.mark.parametrize("m", [1, 7, 9, 16])
@pytest.mark.parametrize("kc,c", DECODE, ids=_did)
def test_decode_against_emulation_and_the_gemm(kc, c, m):
    """Each M <= 16 goes through the decode kernel (counted), agrees with the emulated reference by the
    kit's tolerance and with the GEMM on the same layer."""
    testing.run_case(kc, testing.Case(c, m), device="cuda")
    k, layer, x, bias, _ = _layer(kc, c, m)
    calls, inner = [], k._decode
    k._decode = lambda *a: (calls.append(a[1].shape[0]), inner(*a))[1]
    got = k.apply(layer, x, bias)
    if m > k._decode_max_m:  # a wide layer's rows past the rule go to the GEMM
        assert calls == []
        return
    assert calls == [m]
    k._decode_max_m = 0
    gemm = k.apply(layer, x, bias)
    err = ((got.float() - gemm.float()).norm() / gemm.float().norm()).item()
    assert err < 1e-3, err  # the same products rounded the same way; only the fp32 summation order differs


@pytest.mark.parametrize("m", [1, 12])
@pytest.mark.parametrize("kc,c", [DECODE[0], DECODE[2], DECODE[3]], ids=_did)
def test_decode_splits_warps_rows_and_pdl_agree_and_repeat_bit_identical(kc, c, m):
    k, layer, x, bias, _ = _layer(kc, c, m)
    n = c.weight_shape[0]
    ref = None
    for splits in (0, 1, 3):
        for warps in (0, 4, 8):
            for rows in (0, 1, 2):
                for pdl in (True, False):
                    out = torch.empty(m, n, device="cuda", dtype=x.dtype)
                    k.run_decode(out, x, layer, bias, splits, warps, pdl, rows)
                    again = torch.empty_like(out)
                    k.run_decode(again, x, layer, bias, splits, warps, pdl, rows)
                    assert torch.equal(out, again), (splits, warps, rows, pdl)
                    # K slices added in a cluster's shared memory or through the workspace: the same sum, same order
                    k.run_decode(again, x, layer, bias, splits, warps, pdl, rows, cluster=False)
                    assert torch.equal(out, again), (splits, warps, rows, pdl, "workspace")
                    if ref is None:
                        ref = out
                    err = ((out.float() - ref.float()).norm() / ref.float().norm()).item()
                    assert err < 1e-3, (splits, warps, rows, pdl, err)


def test_decode_under_a_cuda_graph_equals_eager():
    kc, c = DECODE[0]
    k, layer, x, bias, _ = _layer(kc, c, 4)
    eager = k.apply(layer, x, bias)
    graph, out = testing.capture_graph(lambda: k.apply(layer, x, bias))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, eager)


def test_decode_refuses_what_it_cannot_take():
    kc, c = DECODE[0]
    k, layer, x, bias, _ = _layer(kc, c, 17)
    out = torch.empty(17, c.weight_shape[0], device="cuda", dtype=x.dtype)
    with pytest.raises(ValueError, match="M <= 16"):
        k.run_decode(out, x, layer, bias)
    with pytest.raises(RuntimeError, match="warps"):
        k.run_decode(out[:2], x[:2], layer, bias, 0, 5)
