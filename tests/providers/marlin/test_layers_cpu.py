"""The kernel classes' load-time code (pure torch) run on CPU on kit layers, then the kernel's
arithmetic replayed from the repacked tensors (emulate.py) against the weight-only reference. This
checks parameter names, unpacking, scale folding and layouts end to end, without a GPU."""

import pytest
import torch

from qlinear import testing
from qlinear.config import MPLinearLayerConfig
from qlinear.formats import reference_linear
from qlinear.formats.codes import e2m1_decode, e4m3_decode
from qlinear.layers import make_layer
from qlinear.scalar_type import scalar_types
from qlinear_marlin.fp import KERNELS as FLOAT_KERNELS
from qlinear_marlin.mp import MarlinMPLinearKernel
from qlinear_marlin.repack import zero_offset

from .emulate import emulate_tiles


def fp_raw(codes: torch.Tensor, bits: int, dtype: torch.dtype) -> torch.Tensor:
    """The kernels' fp_raw (csrc/marlin_mp.cuh) on CPU: the code's bits placed into a 16-bit value."""
    c = codes.to(torch.int32)
    lo = {(8, torch.float16): 7, (8, torch.bfloat16): 4, (4, torch.float16): 9, (4, torch.bfloat16): 6}[(bits, dtype)]
    h = ((c & 0x80) << 8) | ((c & 0x7F) << lo) if bits == 8 else ((c & 0x8) << 12) | ((c & 0x7) << lo)
    return h.to(torch.int16).view(dtype).double()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_float_code_bit_placement_is_exact(dtype):
    """Placed bits read as value * 2^-bias for every finite code (subnormals included)."""
    from qlinear_marlin.fp import _FP_BIAS

    e4m3 = torch.arange(256, dtype=torch.uint8)
    finite = (e4m3 & 0x7F) != 0x7F  # 0x7F / 0xFF are NaN in E4M3FN (weights never hold them)
    got = fp_raw(e4m3, 8, dtype) * 2.0 ** _FP_BIAS[(dtype, 8)]
    assert torch.equal(got[finite], e4m3_decode(e4m3, torch.float64)[finite])
    e2m1 = torch.arange(16, dtype=torch.uint8)
    assert torch.equal(fp_raw(e2m1, 4, dtype) * 2.0 ** _FP_BIAS[(dtype, 4)], e2m1_decode(e2m1, torch.float64))


@pytest.mark.parametrize("dtype,bits", [(torch.float16, 4), (torch.float16, 8), (torch.bfloat16, 4), (torch.bfloat16, 8)],
                         ids=["fp16-4bit", "fp16-8bit", "bf16-4bit", "bf16-8bit"])
@pytest.mark.parametrize("scales", ["e4m3", "e8m0", "tiny", "ones"])
def test_code_scales_weights_are_exact_and_in_range(dtype, bits, scales):
    """Every (code, scale) weight the kernel makes, placed code x stored scale rounded once to the
    16-bit type, times the factor, equals code x scale rounded once (exactly, for E4M3 / E8M0 / ones
    scales), and no stored scale or weight overflows."""
    from qlinear_marlin.fp import code_scales

    if scales == "e8m0" and dtype == torch.float16:
        pytest.skip("MX formats refuse float16 activations (E8M0 scales exceed its range)")

    gen = torch.Generator().manual_seed(1)
    s32 = {"e4m3": torch.tensor([448.0, 2.0 ** -9, 1.0, 3.5, 0.0234375]),
           "e8m0": torch.tensor([2.0 ** -20, 2.0 ** 3, 1.0, 2.0 ** -1]),
           "tiny": torch.rand(64, generator=gen) * 1e-3 + 1e-5,  # FP8 block scales
           "ones": torch.ones(4)}[scales]
    stored, factor = code_scales(s32, dtype, bits)
    assert stored.dtype == dtype and torch.isfinite(stored).all()
    codes = torch.arange(16 if bits == 4 else 256, dtype=torch.uint8)
    if bits == 8:
        codes = codes[(codes & 0x7F) != 0x7F]
    dec = (e2m1_decode if bits == 4 else e4m3_decode)(codes, torch.float64)
    w16 = (fp_raw(codes, bits, dtype)[:, None] * stored.double()[None, :]).to(dtype)  # one rounding
    assert torch.isfinite(w16).all()
    got = w16.double() * factor
    if scales != "tiny":  # exact scales: the product is exact
        assert torch.equal(got, dec[:, None] * s32.double()[None, :])
    else:  # fp32 block scales rounded to 16 bits: within the type's rounding (twice)
        want = dec[:, None] * s32.double()[None, :]
        eps = 2.0 ** -8 if dtype == torch.bfloat16 else 2.0 ** -11
        assert ((got - want).abs() <= 2.1 * eps * want.abs()).all()


def test_code_scales_refuse_non_finite():
    from qlinear_marlin.fp import code_scales

    with pytest.raises(ValueError, match="Inf/NaN"):
        code_scales(torch.tensor([1.0, float("inf")]), torch.float16, 4)


def _run_cpu(kernel_cls, case, **kw):
    params, x, bias = testing.make_case_layer(case, "cpu")
    c = case.config
    ref = reference_linear(c, params, x, bias, quantize_activation=False, dtype=torch.float64)
    layer = make_layer(c, params)
    k = kernel_cls.create(c)
    k.process_weights_after_loading(layer)
    return k, layer, x, bias, ref


def _check(out, ref, tol=1e-6):
    err = float((out - ref).norm() / ref.norm())
    assert err < tol, err


MP_CASES = [case for case in testing.cases_for(MarlinMPLinearKernel, ms=(3,))
            if MarlinMPLinearKernel.can_implement(case.config)[0]]
MP_CASES.append(testing.Case(MPLinearLayerConfig((2048, 256), (1024, 256), scalar_types.uint4, torch.float16, 32, True, True), 3))


@pytest.mark.parametrize("case", MP_CASES, ids=str)
def test_mp_layer_load_and_emulate(case):
    k, layer, x, bias, ref = _run_cpu(MarlinMPLinearKernel, case)
    c = case.config
    out = emulate_tiles(x, layer.weight_packed, layer.weight_scale,
                        zm=layer.weight_zero_point if c.zero_points else None,
                        tile_group=k.tile_group(layer), kidx=layer.qlinear_marlin_kidx,
                        group_k=layer.qlinear_marlin_group_k, zero_offset=zero_offset(c.act_type, c.bits))
    if bias is not None:
        out = out + bias.double()
    # the only differences: scales are stored in the activation dtype, as the reference reads them
    _check(out, ref)


FP_CASES = [(kc, case) for kc in FLOAT_KERNELS for case in testing.cases_for(kc, ms=(3,))
            if kc.can_implement(case.config)[0]]


@pytest.mark.parametrize("kc,case", FP_CASES, ids=lambda v: v.__name__ if isinstance(v, type) else str(v))
def test_float_layer_load_and_emulate(kc, case):
    k, layer, x, bias, ref = _run_cpu(kc, case)
    wname, sname = k._names
    out = emulate_tiles(x, getattr(layer, wname), getattr(layer, sname), col_scale=layer.qlinear_marlin_col_scale,
                        group_k=layer.qlinear_marlin_group_k, fmt=1)
    if bias is not None:
        out = out + bias.double()
    # group scales are rounded to the 16-bit activation dtype (exact for E4M3 / E8M0 scales)
    _check(out, ref, tol=4e-3)


def test_float_kernels_cover_every_family():
    fams = {kc.family for kc, _ in FP_CASES}
    assert fams == {"fp8", "fp8_block", "nvfp4", "mxfp4", "mxfp8"}


def test_run_picks_the_decode_kernel_and_refuses_it_where_it_does_not_apply(monkeypatch):
    """runtime.run: 4-bit codes with K a multiple of 128 take the decode kernel up to decode_max_m rows;
    a forced decode call that the kernel cannot take is refused in Python, before the extension."""
    from qlinear_marlin import runtime

    calls = []

    class Ext:  # records the binding's arguments; the decode mode is the 12th, the PDL flag the 14th, the warps the 16th
        def mp_gemm(self, x, *a):
            calls.append(a[10])
            assert a[12] == 0  # no PDL off CUDA
            assert a[14] == runtime.DECODE_WARPS  # 0 by default: the launcher's rule
            return torch.zeros(x.shape[0], 64, dtype=x.dtype)

    monkeypatch.setattr(runtime, "extension", lambda: Ext())
    monkeypatch.setattr(runtime, "cuda_sm_count", lambda device: 132)
    s = torch.zeros(1, 1, 8, 8, dtype=torch.bfloat16)
    for k, m, expect in ((128, 1, 1), (256, 16, 1), (256, 17, 0), (96, 1, 0)):
        w = torch.zeros(1, k // 16, 32, 4, dtype=torch.int32)
        runtime.run(torch.zeros(m, k, dtype=torch.bfloat16), 64, w, s, group_k=k, fmt=runtime.INT_CODES)
        assert calls[-1] == expect, (k, m)
    w8 = torch.zeros(1, 8, 32, 8, dtype=torch.int32)  # 8-bit integer codes: whole groups of 64 k
    runtime.run(torch.zeros(1, 128, dtype=torch.bfloat16), 64, w8, s, group_k=128, fmt=runtime.INT_CODES)
    assert calls[-1] == 1
    runtime.run(torch.zeros(1, 128, dtype=torch.bfloat16), 64, w8, s, group_k=128, fmt=runtime.INT_CODES,
                tile_group=torch.zeros(8, dtype=torch.int32))  # 8-bit act-order: the tile kernel
    assert calls[-1] == 0
    # float codes: 4-bit in groups of 16 (NVFP4), 32 (MX), 128 or per channel; 8-bit with K % 64 == 0
    for bits, k, group_k, expect in ((4, 128, 16, 1), (4, 256, 32, 1), (4, 256, 256, 1), (4, 384, 128, 1),
                                     (4, 192, 16, 0), (4, 256, 48, 0), (8, 64, 32, 1), (8, 192, 64, 1),
                                     (8, 256, 128, 1), (8, 96, 32, 0), (8, 128, 48, 0)):
        wf = torch.zeros(1, k // 16, 32, bits, dtype=torch.int32)
        runtime.run(torch.zeros(3, k, dtype=torch.bfloat16), 64, wf, s, group_k=group_k, fmt=runtime.FLOAT_CODES)
        assert calls[-1] == expect, (bits, k, group_k)
    n = len(calls)
    with pytest.raises(ValueError, match="decode kernels take"):
        runtime.run(torch.zeros(1, 96, dtype=torch.bfloat16), 64, torch.zeros(1, 6, 32, 4, dtype=torch.int32), s,
                    group_k=96, fmt=runtime.INT_CODES, decode=1)
    with pytest.raises(ValueError, match="decode kernels take"):
        runtime.run(torch.zeros(1, 128, dtype=torch.bfloat16), 64, torch.zeros(1, 8, 32, 8, dtype=torch.int32), s,
                    group_k=48, fmt=runtime.FLOAT_CODES, decode=1)
    assert len(calls) == n  # never reached the extension


def test_streamk_partition_arithmetic():
    """The decode kernel's stream-K deal (csrc/mp_decode.cuh: block b takes units [b*U/G, (b+1)*U/G),
    streamk_owner(u) = ((u + 1) * G - 1) / U, a tile's parts numbered from its first owner, at most
    ceil((cpt - 1) / floor(U / G)) + 1 parts per tile) replayed in Python: every (tile, chunk) unit is
    dealt once, a tile's parts are consecutive blocks numbered 0..n-1, and the bound holds."""
    import random

    def owner(u, units, blocks):
        return ((u + 1) * blocks - 1) // units

    rng = random.Random(0)
    cases = [(448, 32, 264), (96, 32, 264), (64, 32, 264), (64, 112, 264), (896, 32, 528), (1, 1, 264)]
    cases += [(rng.randint(1, 600), rng.randint(1, 120), rng.choice([132, 264, 528])) for _ in range(200)]
    for tiles, cpt, resident in cases:
        units = tiles * cpt
        blocks = min(resident, units)
        per_block = units // blocks
        bound = (cpt - 1 + per_block - 1) // per_block + 1
        seen = {}
        for b in range(blocks):
            u, end = b * units // blocks, (b + 1) * units // blocks
            assert end > u  # no block idles
            while u < end:
                tile, c_lo = divmod(u, cpt)
                c_hi = min(cpt, c_lo + (end - u))
                first, last = owner(tile * cpt, units, blocks), owner((tile + 1) * cpt - 1, units, blocks)
                assert first <= b <= last and last - first + 1 <= bound, (tiles, cpt, resident, tile)
                for c in range(c_lo, c_hi):
                    assert (tile, c) not in seen
                    seen[(tile, c)] = (b, b - first)
                u += c_hi - c_lo
        assert len(seen) == units
        for tile in range(tiles):  # parts of a tile: consecutive blocks, numbered 0..n-1 in chunk order
            parts = [seen[(tile, c)][1] for c in range(cpt)]
            assert parts == sorted(parts) and parts[0] == 0 and set(parts) == set(range(parts[-1] + 1))
