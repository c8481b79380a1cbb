"""GPU tests of the CUTLASS mixed-input kernels, W4A16 and W8A16 (H100/H200 only): the conformance kit
for every default config each accepts, larger layers at M in 64, 127, 256, 1024, every tile forced,
act-order, bad inputs, CUDA-graph replay equal to eager, strided x rows."""

import pytest
import torch

pytest.importorskip("qlinear_cutlass")

from qlinear import testing  # noqa: E402
from qlinear.config import MPLinearLayerConfig  # noqa: E402
from qlinear.layers import make_layer  # noqa: E402
from qlinear.scalar_type import scalar_types  # noqa: E402
from qlinear_cutlass import configs  # noqa: E402
from qlinear_cutlass.w4a16 import CutlassW4A16LinearKernel as W4  # noqa: E402
from qlinear_cutlass.w4a16 import CutlassW8A16LinearKernel as W8  # noqa: E402


def _is_h100_class():
    return torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _is_h100_class(), reason="needs a cc 9.0 (Hopper) GPU")]
U4B8, U4, U8B128 = scalar_types.uint4b8, scalar_types.uint4, scalar_types.uint8b128
BF, FP = torch.bfloat16, torch.float16
MS = (1, 7, 33, 64, 127)
LARGE_MS = (64, 127, 256, 1024)


def _mp(n, k, wt, dt, g, zp=False, gidx=False):
    return MPLinearLayerConfig((k, n), (k, n), wt, dt, g, zp, gidx)


# Several N tiles, many K tiles; GPTQ / AWQ, bf16 / fp16, groups 64 / 128 / channel, act-order.
LARGER = [_mp(1024, 2048, U4B8, BF, 128), _mp(1536, 1024, U4, FP, 64, True), _mp(512, 4096, U4B8, FP, -1),
          _mp(2048, 512, U4, BF, -1, True), _mp(768, 2048, U4B8, BF, 128, gidx=True), _mp(1024, 1024, U4, FP, 128, True, True),
          _mp(400, 1024, U4B8, BF, 128), _mp(272, 576, U4, FP, -1, True),  # N not a multiple of the 128-row tile; K of 9 K tiles
          _mp(16384, 512, U4B8, BF, 128), _mp(16400, 256, U4, FP, 64, True)]  # wide layers: the 256-row tiles
LARGER8 = [_mp(1024, 2048, U8B128, BF, 128), _mp(1536, 1024, U8B128, FP, 64), _mp(512, 4096, U8B128, FP, -1),
           _mp(768, 2048, U8B128, BF, 128, gidx=True), _mp(400, 1024, U8B128, BF, -1), _mp(16400, 256, U8B128, FP, 128)]
KERNELS = [(W4, LARGER), (W8, LARGER8)]


def _cases(ms, larger=False, first=None):
    """(kernel, case) pairs: the kit's default configs, or (``larger``) each kernel's larger layers
    (the first ``first`` of them)."""
    return [(kc, case) for kc, layers in KERNELS
            for case in testing.cases_for(kc, ms=ms, configs=layers[:first] if larger else None)]


def _id(p):
    return p.__name__.removeprefix("Cutlass").removesuffix("LinearKernel") if isinstance(p, type) else str(p)


@pytest.mark.parametrize("kc,case", _cases(MS), ids=_id)
def test_conformance(kc, case):
    testing.run_case(kc, case, device="cuda")


@pytest.mark.parametrize("kc,case", _cases(LARGE_MS, True), ids=_id)
def test_larger_layers(kc, case):
    testing.run_case(kc, case, device="cuda")


@pytest.mark.parametrize("tile", sorted(configs.W4A16_TILES))
@pytest.mark.parametrize("kc,case", _cases((3, 127, 300), True, 2), ids=_id)
def test_every_tile_config(kc, case, tile, monkeypatch):
    monkeypatch.setenv("QLINEAR_CUTLASS_W4A16_TILE", tile)
    testing.run_case(kc, case, device="cuda")


@pytest.mark.parametrize("kc", [W4, W8], ids=_id)
def test_kit_and_bad_inputs(kc):
    results = testing.check_kernel(kc, device="cuda", min_ran=4)
    accepted = sum(bool(kc.can_implement(c.config)[0]) for c in testing.cases_for(kc))
    assert sum(r.ran for r in results) == accepted  # every accepted kit case ran
    testing.check_bad_inputs(kc, device="cuda")


def _layer(c, m, seed=0, kc=W4):
    params, x, bias = testing.make_case_layer(testing.Case(c, m), "cuda", seed)
    layer = make_layer(c, params)
    k = kc.create(c)
    k.process_weights_after_loading(layer)
    return k, layer, x, bias


@pytest.mark.parametrize("kc,c", [(W4, LARGER[0]), (W4, LARGER[1]), (W4, LARGER[4]), (W8, LARGER8[0]), (W8, LARGER8[3])],
                         ids=lambda p: _id(p) if isinstance(p, type) else p.describe())
def test_cuda_graph_replay_equals_eager_and_is_deterministic(kc, c):
    k, layer, x, bias = _layer(c, 200, kc=kc)
    eager = k.apply(layer, x, bias)
    assert torch.equal(eager, k.apply(layer, x, bias))  # bit-identical on repeat
    graph, out = testing.capture_graph(lambda: k.apply(layer, x, bias))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, eager)


def test_strided_rows_and_leading_dims():
    c = LARGER[0]
    k, layer, x, bias = _layer(c, 96)
    ref = k.apply(layer, x, bias)
    wide = torch.zeros(96, c.K + 64, dtype=x.dtype, device="cuda")
    wide[:, 32:32 + c.K] = x
    assert torch.equal(k.apply(layer, wide[:, 32:32 + c.K], bias), ref)  # a column slice (strided rows)
    assert torch.equal(k.apply(layer, x.reshape(8, 12, c.K), bias).reshape(96, -1), ref)
    testing.check_leading_dims(W4, c, device="cuda")


@pytest.mark.parametrize("dt", (BF, FP), ids=("bf16", "fp16"))
@pytest.mark.parametrize("k", (512, 14336, 28672, 40000))  # 28672 / 40000: a row past 48 KB (the opt-in), K > 32767
def test_act_order_gathers_equal_index_select(k, dt):
    """Both gathers (csrc/act_order_gather.cuh: a thread per element, blocks per row staged in shared
    memory) move x[:, perm] exactly: contiguous and strided rows, an x the staged kernel cannot take
    (not 16-byte aligned: the per-element kernel runs instead), M 1 / 33 / 64 (a row split over 7 / 4
    blocks from K = 14336), 256 (one block a row, the indices read a batch ahead) and 257 / 300 (without)."""
    from qlinear_cutlass.build import load
    from qlinear_cutlass.w4a16_layout import gather_index

    ext = load(f"w4a16-{'bf16' if dt == BF else 'fp16'}")
    gen = torch.Generator(device="cuda").manual_seed(k)
    perm = torch.randperm(k, device="cuda", generator=gen)
    index = gather_index(perm)
    for m in (1, 33, 64, 256, 257, 300):
        wide = torch.randn(m, k + 72, device="cuda", dtype=dt, generator=gen)
        for x in (wide[:, :k].contiguous(), wide[:, 64:64 + k], wide[:, 1:1 + k]):  # contiguous, strided, misaligned
            ref = x[:, perm]
            for staged in (False, True):
                out = torch.full_like(ref, float("nan"))
                ext.w4a16_gather(out, x, index, True, staged)
                assert torch.equal(out, ref), (m, x.stride(0), x.data_ptr() % 16, staged)


# ---- the decode kernel (csrc/w4a16_decode.cuh): M <= 16 on the GEMM's own weight ---------------
# one and two 8-row halves of x (M 9..16), groups 64 (a fold per half chunk) / 128 / channel, AWQ zero
# terms, act-order, both dtypes, K cut into many chunks, a Llama-3-8B down projection; 4- and 8-bit codes
DECODE_MS = (1, 3, 8, 9, 16)
DECODE_LAYERS = [c for c in LARGER if configs.w4a16_decode_applies(1, c.N, c.K, c.effective_group_size)] + [
    _mp(4096, 14336, U4B8, BF, 128), _mp(1024, 4096, U4, FP, 64, True)]
DECODE_LAYERS8 = [c for c in LARGER8 if configs.w4a16_decode_applies(1, c.N, c.K, c.effective_group_size, 8)] + [
    _mp(4096, 14336, U8B128, BF, -1), _mp(1024, 4096, U8B128, FP, 64, gidx=True), _mp(512, 576, U8B128, BF, 64)]
DECODE = [(W4, c) for c in DECODE_LAYERS] + [(W8, c) for c in DECODE_LAYERS8]


def _decode_id(p):
    return _id(p) if isinstance(p, type) else str(testing.Case(p, 0)).rsplit("-M", 1)[0]  # e.g. mp-uint4b8-g128-bfloat16-N1024K2048


def _count_decode(k):
    calls = []
    inner = k._decode_raw
    k._decode_raw = lambda *a: (calls.append(a[0].shape[0]), inner(*a))[1]
    return calls


def test_decode_layers_cover_every_kind():
    for layers in (DECODE_LAYERS, DECODE_LAYERS8):
        kinds = {(c.act_type, c.effective_group_size == c.K, c.group_size, c.zero_points, c.has_g_idx) for c in layers}
        assert {g for _, _, g, _, _ in kinds} >= {64, 128, -1} and {dt for dt, *_ in kinds} == {BF, FP}
        assert any(a for *_, a in kinds)
        assert any(z for *_, z, _ in kinds) == (layers is DECODE_LAYERS)  # 8-bit codes are symmetric only


@pytest.fixture
def decode_every_n(monkeypatch):
    """The decode kernel for every M <= 16 it takes, wide layers too (whose calls at M > 8 go to the GEMM);
    settled when a layer loads, so layers built after this fixture."""
    monkeypatch.setattr(configs, "w4a16_decode_max_m", lambda n, k, bits=4: 16)


@pytest.mark.parametrize("kc,case", [(kc, case) for kc, c in DECODE for case in testing.cases_for(kc, ms=DECODE_MS, configs=[c])],
                         ids=_id)
def test_decode_kernel_against_emulation(kc, case, decode_every_n):
    testing.run_case(kc, case, device="cuda")


@pytest.mark.parametrize("m", DECODE_MS)
@pytest.mark.parametrize("kc,c", DECODE, ids=_decode_id)
def test_decode_agrees_with_the_gemm(kc, c, m, decode_every_n):
    k, layer, x, bias = _layer(c, m, kc=kc)
    calls = _count_decode(k)
    dec = k.apply(layer, x, bias)
    assert calls == [m]  # the decode kernel took the call
    k._decode_max_m = 0  # the GEMM on the same layer
    gemm = k.apply(layer, x, bias)
    assert calls == [m]  # ... and the GEMM this one
    torch.testing.assert_close(dec.float(), gemm.float(), rtol=2e-2, atol=2e-2 * gemm.float().abs().max().item())


@pytest.mark.parametrize("m", (1, 16))
@pytest.mark.parametrize("kc,c", [(W4, _mp(2048, 4096, U4, BF, 128, True)), (W8, _mp(2048, 4096, U8B128, BF, 128))], ids=_decode_id)
def test_decode_splits_warps_rows_and_pdl_agree_and_repeat_bit_identical(kc, c, m):
    from qlinear_cutlass.w4a16 import decode_workspace

    k, layer, x, bias = _layer(c, m, kc=kc)
    ws, cnt = decode_workspace(x.device, 64 * m * c.N, 2 * c.N // 64)
    zero = getattr(layer, k.w_zp_name) if k.w_zp_name else None
    args = (x, layer.weight_packed, layer.weight_scale, zero, bias.to(x.dtype) if bias is not None else None, ws, cnt, 128)
    outs = {}
    for splits in (1, 3, 32, 0):
        for warps in (4, 8):
            for pdl in (False, True):
                for rows in (1, 2):
                    out = torch.empty(m, c.N, dtype=x.dtype, device="cuda")
                    k._decode(out, *args, splits, warps, pdl, rows)
                    again = torch.empty_like(out)
                    k._decode(again, *args, splits, warps, pdl, rows)
                    assert torch.equal(out, again), (splits, warps, pdl, rows)  # deterministic
                    # K slices added in a cluster's shared memory or through the workspace: the same sum, same order
                    k._decode(again, *args, splits, warps, pdl, rows, False)
                    assert torch.equal(out, again), (splits, warps, pdl, rows, "workspace")
                    assert not cnt.any()  # the counters are left zeroed
                    outs[splits, warps, pdl, rows] = out.float()
    ref = outs[1, 8, False, 1]
    for key, out in outs.items():
        torch.testing.assert_close(out, ref, rtol=1e-2, atol=1e-2 * ref.abs().max().item(), msg=str(key))


def test_decode_refuses_what_it_cannot_take():
    c = DECODE_LAYERS[0]
    k, layer, x, bias = _layer(c, 17)
    ws = torch.zeros(1 << 20, device="cuda")
    cnt = torch.zeros(4096, dtype=torch.int32, device="cuda")
    out = torch.empty(17, c.N, dtype=x.dtype, device="cuda")
    with pytest.raises(ValueError, match="M <= 16"):
        k._decode(out, x, layer.weight_packed, layer.weight_scale, None, None, ws, cnt, c.effective_group_size, 0, 0, True)
    with pytest.raises(ValueError, match="ws: expected a contiguous float32"):
        k._decode(out[:1], x[:1], layer.weight_packed, layer.weight_scale, None, None, cnt, cnt, c.effective_group_size, 0, 0,
                  True)
    with pytest.raises(ValueError, match="warps"):
        k._decode(out[:1], x[:1], layer.weight_packed, layer.weight_scale, None, None, ws, cnt, c.effective_group_size, 0, 5,
                  True)


@pytest.mark.parametrize("gidx", (False, True), ids=("plain", "act-order"))
@pytest.mark.parametrize("m", (1, 9))
@pytest.mark.parametrize("kc,wt", [(W4, U4B8), (W8, U8B128)], ids=("W4A16", "W8A16"))
def test_decode_under_a_cuda_graph_chain(kc, wt, m, gidx):
    """Four layers, each fed the previous one's output (PDL launches in a row; act-order: gather then
    decode kernel, both PDL), replayed from a graph: equal to eager, bit for bit."""
    c = _mp(1024, 1024, wt, BF, 128, gidx=gidx)
    layers = [_layer(c, m, seed=i, kc=kc) for i in range(4)]
    x0 = layers[0][2]

    def chain():
        h = x0
        for k, layer, _, bias in layers:
            h = k.apply(layer, h, bias) * 0.05
        return h

    eager = chain()
    graph, out = testing.capture_graph(chain)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, eager)
