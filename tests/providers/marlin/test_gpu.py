"""GPU tests: the conformance kit over every group size, both dtypes, act-order (full and row-parallel
slices), plus larger split-K shapes, repeated calls (bit-identical: no state, fixed order) and bad inputs."""

import pytest
import torch

from qlinear import testing
from qlinear.config import MPLinearLayerConfig
from qlinear.scalar_type import scalar_types
from qlinear_marlin.mp import MarlinMPLinearKernel as K

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

EXTRA = [
    MPLinearLayerConfig((4096, 4096), (4096, 4096), scalar_types.uint4b8, torch.bfloat16, 128, False, False),
    MPLinearLayerConfig((4096, 1024), (4096, 1024), scalar_types.uint4, torch.float16, 64, True, False),
    MPLinearLayerConfig((2048, 512), (2048, 512), scalar_types.uint4b8, torch.float16, -1, False, False),
    MPLinearLayerConfig((2048, 512), (2048, 512), scalar_types.uint4b8, torch.bfloat16, 32, False, True),
    MPLinearLayerConfig((1024, 192), (1024, 192), scalar_types.uint4, torch.bfloat16, 128, True, True),
    MPLinearLayerConfig((2048, 256), (1024, 256), scalar_types.uint4, torch.float16, 32, True, True),  # k-partition
]


@pytest.mark.parametrize("case", testing.cases_for(K), ids=str)
def test_conformance(case):
    testing.run_case(K, case, device="cuda")


@pytest.mark.parametrize("case", testing.cases_for(K, ms=(1, 16, 17, 50, 64, 65, 200), configs=EXTRA), ids=str)
def test_conformance_split_k_shapes(case):
    testing.run_case(K, case, device="cuda")


class TileMarlin(K):
    """The tile kernel at every M (4-bit codes take the decode kernel up to decode_max_m rows)."""

    decode_max_m = 0


@pytest.mark.parametrize("case", testing.cases_for(TileMarlin, ms=(1, 3, 16)), ids=str)
def test_conformance_tile_kernel_small_m(case):
    testing.run_case(TileMarlin, case, device="cuda")


@pytest.mark.parametrize("case", testing.cases_for(K, ms=(1, 2, 8, 9, 16), configs=EXTRA), ids=str)
@pytest.mark.parametrize("splits", [1, 3, 64])
@pytest.mark.parametrize("pdl,warps,streamk", [(True, 8, False), (False, 4, False), (True, 0, True)],
                         ids=["pdl-8warps", "nopdl-4warps", "pdl-streamk"])
def test_decode_kernel_pinned_splits(case, splits, pdl, warps, streamk, monkeypatch):
    """The decode kernels (4-bit: mp_decode.cuh, 8-bit: mp_decode_scaled.cuh) with K cut into 1, 3 or
    (capped) 64 slices: the slice edges fall inside groups and chunks, so every fold/boundary path
    runs; launched with and without programmatic dependent launch (PDL), blocks of 8 and 4 warps,
    stream-K (4-bit; the 8-bit kernel ignores it), act-order activations gathered by the extension's
    own kernel."""
    from qlinear_marlin import runtime

    run = runtime.run
    used = []

    def pinned(x, n, w, s, **kw):  # act-order pads groups: the packed K may not be whole chunks
        m = x.reshape(-1, x.shape[-1]).shape[0]
        dec = runtime.decode_applies(kw["fmt"], m, w.shape[-1], w.shape[1] * 16, kw["group_k"],
                                     kw.get("tile_group") is not None)
        used.append(dec)
        return run(x, n, w, s, **{**kw, "splits": splits, "decode": int(dec), "pdl": pdl, "warps": warps,
                                  "streamk": streamk})

    monkeypatch.setattr(runtime, "run", pinned)
    testing.run_case(K, case, device="cuda")
    if not any(used):
        pytest.skip(f"K={case.config.K} or its groups do not fit a decode kernel's chunks")


def test_decode_and_tile_kernels_agree():
    """Same layer, both kernels, M = 1..16: within the kit's tolerance of each other."""
    c = EXTRA[0]
    for m in (1, 5, 16):
        params, x, bias = testing.make_case_layer(testing.Case(c, m), "cuda")
        from qlinear.layers import make_layer

        layer = make_layer(c, params)
        k = K.create(c)
        k.process_weights_after_loading(layer)
        k.decode_max_m = 16
        dec = k.apply(layer, x, bias).float()
        k.decode_max_m = 0
        tile = k.apply(layer, x, bias).float()
        err = (dec - tile).norm() / tile.norm()
        assert err < 1e-2, f"M={m}: decode vs tile kernel relative error {err:.2e}"


@pytest.mark.parametrize("m", [1, 16])
def test_decode_chain_with_pdl_is_ordered(m, monkeypatch):
    """Each layer's input is the previous layer's output, eagerly and replayed in a CUDA graph: with
    programmatic dependent launch the next kernel starts early, so a read of x before the wait would
    see a stale input. The chain with PDL must equal it without, bit for bit."""
    from qlinear.layers import make_layer
    from qlinear_marlin import runtime

    c = EXTRA[0]  # 4096 x 4096: the output of one layer is the next one's input
    layers = []
    for seed in range(4):
        torch.manual_seed(seed)
        params, x, _ = testing.make_case_layer(testing.Case(c, m), "cuda")
        layer = make_layer(c, params)
        k = K.create(c)
        k.process_weights_after_loading(layer)
        layers.append((k, layer))

    def chain(pdl):
        monkeypatch.setattr(runtime, "PDL", int(pdl))
        y = x
        for k, layer in layers * 3:
            y = k.apply(layer, y, None)
            y = y / y.abs().amax().clamp_min(1e-3)  # keep the values in range over 12 layers
        return y

    ref = chain(False)
    assert torch.equal(chain(True), ref)
    torch.cuda.synchronize()
    out = {}
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        chain(True)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out["y"] = chain(True)
    for _ in range(3):
        g.replay()
        torch.cuda.synchronize()
        assert torch.equal(out["y"], ref)


class DenseMarlin(K):
    """The large-M path (our dequantizer + a dense GEMM) taken at every M."""

    dequant_min_m = 1


@pytest.mark.parametrize("case", testing.cases_for(DenseMarlin, ms=(1, 33)) + testing.cases_for(DenseMarlin, ms=(300,), configs=EXTRA), ids=str)
def test_conformance_dense_path(case):
    testing.run_case(DenseMarlin, case, device="cuda")


def test_large_m_default_path():
    case = testing.Case(EXTRA[3], K.dequant_min_m + 5)  # act-order, bf16, above the threshold
    testing.run_case(K, case, device="cuda")


def test_kit():
    results = testing.check_kernel(K, device="cuda")
    assert sum(r.ran for r in results) >= 40


def test_bad_inputs():
    testing.check_bad_inputs(K, device="cuda")


def test_repeated_calls_identical_and_leading_dims():
    c = EXTRA[0]
    case = testing.Case(c, 3)
    params, x, bias = testing.make_case_layer(case, "cuda")
    from qlinear.layers import make_layer

    layer = make_layer(c, params)
    k = K.create(c)
    k.process_weights_after_loading(layer)
    first = k.apply(layer, x, bias)
    for _ in range(5):  # split-K adds its slices in order and keeps no state: bit-identical calls
        assert torch.equal(k.apply(layer, x, bias), first)
    x3 = x.reshape(1, 3, -1)
    assert k.apply(layer, x3, bias).shape == (1, 3, c.N)
    assert k.apply(layer, x[:0]).shape == (0, c.N)


# ---- weight-only float formats (FP8, FP8 block, NVFP4, MXFP4, MXFP8) --------------------------------
from qlinear_marlin.fp import KERNELS as FLOAT_KERNELS  # noqa: E402

FLOAT_CASES = [(kc, case) for kc in FLOAT_KERNELS for case in testing.cases_for(kc, ms=(1, 7, 33, 300))]


@pytest.mark.parametrize("kc,case", FLOAT_CASES, ids=lambda v: v.__name__ if isinstance(v, type) else str(v))
def test_float_conformance(kc, case):
    testing.run_case(kc, case, device="cuda")


@pytest.mark.parametrize("kc", FLOAT_KERNELS, ids=lambda k: k.__name__)
def test_float_kit_and_bad_inputs(kc):
    testing.check_kernel(kc, device="cuda")
    testing.check_bad_inputs(kc, device="cuda")


@pytest.mark.parametrize("kc", FLOAT_KERNELS, ids=lambda k: k.__name__)
def test_float_dense_path(kc):
    dense = type("Dense" + kc.__name__, (kc,), {"dequant_min_m": 1})
    testing.check_kernel(dense, device="cuda", cases=testing.cases_for(dense, ms=(5,)))


@pytest.mark.parametrize("kc,case", [(kc, case) for kc in FLOAT_KERNELS for case in testing.cases_for(kc, ms=(1, 2, 9, 16))],
                         ids=lambda v: v.__name__ if isinstance(v, type) else str(v))
@pytest.mark.parametrize("splits", [1, 3, 64])
@pytest.mark.parametrize("pdl,warps", [(True, 8), (False, 4)], ids=["pdl-8warps", "nopdl-4warps"])
def test_float_decode_kernel_pinned_splits(kc, case, splits, pdl, warps, monkeypatch):
    """The float-code decode kernel (csrc/mp_decode_scaled.cuh) for every format, K cut into 1, 3 or
    (capped) 64 slices, with and without PDL, blocks of 8 and 4 warps."""
    from qlinear_marlin import runtime

    run = runtime.run
    used = []

    def pinned(x, n, w, s, **kw):
        m = x.reshape(-1, x.shape[-1]).shape[0]
        dec = runtime.decode_applies(kw["fmt"], m, w.shape[-1], w.shape[1] * 16, kw["group_k"], False)
        used.append(dec)
        return run(x, n, w, s, **{**kw, "splits": splits, "decode": int(dec), "pdl": pdl, "warps": warps})

    monkeypatch.setattr(runtime, "run", pinned)
    testing.run_case(kc, case, device="cuda")
    if not any(used):
        pytest.skip(f"K={case.config.K} or its groups do not fit the decode kernel's chunks")


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_float_code_weights_are_exact_on_gpu(bits, dtype):
    """The GPU's weights (dense dequant kernel: the GEMM's own placement + 16-bit multiply) equal the
    CPU's placed code x stored scale rounded once, bit for bit, for every code and E4M3-like scales
    (bfloat16 subnormal placements included: a flush to zero would show here)."""
    from qlinear_marlin import runtime
    from qlinear_marlin.fp import _FP_BIAS, code_scales
    from qlinear_marlin.repack import repack_codes, repack_group_values

    from .test_layers_cpu import fp_raw

    runtime.prepare(torch.device("cuda"))
    n, k, group_k = 128, 256, 32
    gen = torch.Generator().manual_seed(3)
    codes = torch.randint(0, 1 << bits, (n, k), generator=gen, dtype=torch.int32).to(torch.uint8)
    if bits == 8:
        codes[(codes & 0x7F) == 0x7F] = 0  # E4M3FN NaN codes never occur in weights
    codes[0, : 1 << bits] = torch.arange(1 << bits, dtype=torch.uint8)  # every code at least once
    e4m3_like = torch.tensor([448.0, 2.0 ** -9, 1.0, 3.5, 0.0234375, 96.0, 2.0 ** -6, 13.0])
    s32 = e4m3_like[torch.randint(0, 8, (n, k // group_k), generator=gen)]
    stored, _ = code_scales(s32, dtype, bits)
    want = (fp_raw(codes, bits, dtype) * stored.double().repeat_interleave(group_k, 1)).to(dtype)
    ext = runtime.extension()
    dense = ext.mp_dequant(repack_codes(codes, bits).cuda(), repack_group_values(stored).cuda(), None, None, None, group_k,
                           runtime.FLOAT_CODES)
    bad = (dense.cpu().view(torch.int16) != want.view(torch.int16)).nonzero()
    assert bad.numel() == 0, (f"{len(bad)} weights differ (placement bias 2^{_FP_BIAS[(dtype, bits)]}), first codes "
                              f"{codes[bad[:4, 0], bad[:4, 1]].tolist()}")
