"""CPU tests of the one-time repack: round trip through an independent reader, a hand-built layout,
act-order planning, and an emulation of the kernel's arithmetic against the format reference."""

import pytest
import torch

from qlinear.config import MPLinearLayerConfig
from qlinear.formats.int_pack import dequantize_wna16, quantize_wna16, unpack_along, act_order_g_idx
from qlinear.scalar_type import scalar_types
from qlinear_marlin.repack import MAGIC, act_order_plan, repack_codes, repack_group_values, repack_wna16, zero_offset

from .emulate import emulate_decode, emulate_gemm, unrepack_codes, unrepack_codes_as_a, unrepack_group_values


@pytest.mark.parametrize("bits", [4, 8])
def test_codes_round_trip(bits):
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, 1 << bits, (128, 48), generator=g)
    w = repack_codes(codes, bits)
    assert w.shape == (2, 3, 32, bits) and w.dtype == torch.int32
    assert torch.equal(unrepack_codes(w), codes)


def test_hand_built_layout_8bit():
    codes = torch.zeros(64, 16, dtype=torch.int64)
    codes[0, 0], codes[0, 1], codes[0, 8], codes[0, 9] = 0x11, 0x22, 0x33, 0xFF  # column 0: lane 0, word 0
    codes[63, 15] = 0x80  # column 63 = 8*7 + 7 -> word 7, g=7; row 15 = 8 + 2*3 + 1 -> t=3, byte 3 (b1 high)
    w = repack_codes(codes, 8).to(torch.int64) & 0xFFFFFFFF
    # byte0 = row 2t, byte1 = row 2t+8, byte2 = row 2t+1, byte3 = row 2t+9
    assert int(w[0, 0, 0, 0]) == 0x11 | (0x33 << 8) | (0x22 << 16) | (0xFF << 24)
    assert int(w[0, 0, 31, 7]) == 0x80 << 24
    assert int(w.sum()) == int(w[0, 0, 0, 0] + w[0, 0, 31, 7])


def test_hand_built_layout():
    # code = (row % 16) ^ (column % 16) style markers for a single 16x64 tile; check words by hand
    n, k = 64, 16
    codes = torch.zeros(n, k, dtype=torch.int64)
    codes[0, 0], codes[0, 1], codes[0, 8], codes[0, 9] = 1, 2, 3, 4  # column 0: lane 0 (g=0,t=0), word 0, h=0
    codes[8, 0], codes[8, 1] = 5, 6  # column 8: lane 0, word 0, h=1 (registers 2, 3)
    codes[17, 2] = 7  # column 17 = 16*1 + 1 -> j=1, g=1; row 2 -> t=1, lane 5; register 0 low half
    codes[63, 15] = 15  # column 63 = 16*3 + 8 + 7 -> j=3, h=1, g=7; row 15 -> t=3, b1 high -> lane 31, nibble 7
    w = repack_codes(codes).to(torch.int64) & 0xFFFFFFFF
    # lane 0 word 0: nibble0=1 (k0), nibble4=2 (k1), nibble1=3 (k8), nibble5=4 (k9), nibble2=5, nibble6=6
    assert int(w[0, 0, 0, 0]) == (1 << 0) | (2 << 16) | (3 << 4) | (4 << 20) | (5 << 8) | (6 << 24)
    assert int(w[0, 0, 5, 1]) == 7
    assert int(w[0, 0, 31, 3]) == 15 << 28
    assert int(w.sum()) == int(w[0, 0, 0, 0] + w[0, 0, 5, 1] + w[0, 0, 31, 3])


def test_group_values_round_trip():
    v = torch.randn(192, 5)
    s = repack_group_values(v)
    assert s.shape == (5, 3, 8, 8)
    assert torch.equal(unrepack_group_values(s), v)
    # entry [grp, nt, g, 2j+h] is column 64nt + 16j + 8h + g
    assert s[2, 1, 3, 5] == v[64 + 16 * 2 + 8 * 1 + 3, 2]


def test_repack_rejects_bad_shapes():
    with pytest.raises(ValueError, match="codes.shape"):
        repack_codes(torch.zeros(60, 16, dtype=torch.int64))
    with pytest.raises(ValueError, match="codes"):
        repack_codes(torch.full((64, 16), 16))
    with pytest.raises(ValueError, match="bits"):
        repack_codes(torch.zeros(64, 16, dtype=torch.int64), 2)
    with pytest.raises(ValueError, match="scales.shape"):
        repack_group_values(torch.zeros(96, 2))


def test_act_order_plan_full_groups_no_padding():
    gi = act_order_g_idx(256, 64, torch.Generator().manual_seed(0))
    plan = act_order_plan(gi, 4)
    assert plan.kp == 256 and not bool(plan.is_pad.any())
    assert torch.equal(gi[plan.kidx].long(), plan.row_group)
    assert torch.equal(plan.tile_group.long(), torch.arange(16) // 4)
    assert sorted(plan.kidx.tolist()) == list(range(256))
    assert plan.uniform_rows == 64  # sorted, the groups are plain groups of 64: no per-tile lookup
    codes = torch.randint(0, 16, (64, 256))
    rep = repack_wna16(codes, torch.rand(64, 4), None, gi, 64, torch.float16)
    assert rep.tile_group is None and rep.group_k == 64 and rep.kidx is not None


def test_act_order_plan_unequal_groups_keep_the_tile_lookup():
    gi = torch.cat([torch.full((48,), 0), torch.full((16,), 1), torch.full((64,), 2)])[torch.randperm(128)]
    plan = act_order_plan(gi, 3)
    assert plan.uniform_rows == 0
    rep = repack_wna16(torch.randint(0, 16, (64, 128)), torch.rand(64, 3), None, gi, 64, torch.float16)
    assert rep.tile_group is not None and rep.group_k == 128


def test_act_order_plan_uneven_groups_pads_to_tiles():
    # a row-parallel slice: groups hold 20, 0, 5, 39 channels
    gi = torch.cat([torch.full((20,), 0), torch.full((5,), 2), torch.full((39,), 3)])[torch.randperm(64)]
    plan = act_order_plan(gi, 4)
    assert plan.kp == 32 + 0 + 16 + 48
    assert plan.tile_group.tolist() == [0, 0, 2, 3, 3, 3]
    assert plan.uniform_rows == 0
    real = ~plan.is_pad
    assert int(real.sum()) == 64 and sorted(plan.kidx[real].tolist()) == list(range(64))
    assert torch.equal(gi[plan.kidx[real]].long(), plan.row_group[real])


CASES = [
    (scalar_types.uint4b8, False, -1, False, torch.float16),
    (scalar_types.uint4b8, False, 32, False, torch.bfloat16),
    (scalar_types.uint4b8, False, 64, False, torch.float16),
    (scalar_types.uint4b8, False, 128, True, torch.bfloat16),
    (scalar_types.uint4, True, 128, False, torch.bfloat16),
    (scalar_types.uint4, True, 32, False, torch.float16),
    (scalar_types.uint4, True, 64, True, torch.float16),
    (scalar_types.uint4, True, -1, False, torch.bfloat16),
    (scalar_types.uint8b128, False, 128, False, torch.bfloat16),
    (scalar_types.uint8b128, False, -1, False, torch.float16),
    (scalar_types.uint8b128, False, 64, True, torch.bfloat16),
    (scalar_types.uint8, True, 32, False, torch.bfloat16),
    (scalar_types.uint8, True, 128, True, torch.float16),
]


def _repacked_case(wt, zp, gs, act, dt, seed):
    """A random 128 x 256 layer quantized in the format, its float64 reference weight, its repack and
    zero points, and a 5-row activation from the same generator."""
    n, k = 128, 256
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=gen) * 0.05
    gi = act_order_g_idx(k, gs, gen) if act else None
    p = quantize_wna16(w, wt, gs, zp, gi, scale_dtype=dt)
    ref_w = dequantize_wna16(wt, p["weight_packed"], p["weight_scale"], p.get("weight_zero_point"), p.get("weight_g_idx"),
                             gs, torch.float64)
    bits = wt.size_bits
    codes = unpack_along(p["weight_packed"], bits, 1)
    zeros = unpack_along(p["weight_zero_point"], bits, 0)[:n] if zp else None
    rep = repack_wna16(codes, p["weight_scale"], zeros, p.get("weight_g_idx"), gs, dt, bits)
    return rep, ref_w, zeros, torch.randn(5, k, generator=gen).to(dt)


@pytest.mark.parametrize("wt,zp,gs,act,dt", CASES, ids=lambda v: str(getattr(v, "name", v)))
def test_emulated_kernel_matches_reference(wt, zp, gs, act, dt):
    rep, ref_w, zeros, x = _repacked_case(wt, zp, gs, act, dt, 3)
    bits = wt.size_bits
    if zp:  # the stored offset must be exact in the 16-bit type
        assert torch.equal(unrepack_group_values(rep.zm).double(), zeros.double() + zero_offset(dt, bits))
    out = emulate_gemm(x, rep, zero_offset(dt, bits))
    ref = x.double() @ ref_w.t()
    assert torch.allclose(out, ref, rtol=1e-9, atol=1e-9)


def test_emulated_kernel_uneven_act_order_groups():
    # groups of unequal size (a row-parallel rank's slice of an act-order layer): pads must add nothing
    n, k, gs = 64, 96, 32
    gen = torch.Generator().manual_seed(4)
    w = torch.randn(n, k, generator=gen) * 0.05
    gi = torch.cat([torch.full((40,), 0), torch.full((24,), 1), torch.full((32,), 2)])[torch.randperm(k, generator=gen)]
    codes = torch.randint(0, 16, (n, k), generator=gen)
    scales = torch.rand(n, 3, generator=gen).to(torch.bfloat16) * 0.1
    zeros = torch.randint(0, 16, (n, 3), generator=gen)
    rep = repack_wna16(codes, scales, zeros, gi, gs, torch.bfloat16)
    assert rep.w.shape[1] * 16 == 48 + 32 + 32  # 40 -> 48 rows, 24 -> 32, 32 -> 32
    x = torch.randn(3, k, generator=gen).to(torch.bfloat16)
    wd = (codes.double() - zeros.double()[:, gi]) * scales.double()[:, gi]
    assert torch.allclose(emulate_gemm(x, rep, zero_offset(torch.bfloat16, 4)), x.double() @ wd.t(), rtol=1e-9, atol=1e-9)
    _ = w


@pytest.mark.parametrize("wt,zp,gs,act,dt", [c for c in CASES if c[0].size_bits == 4], ids=lambda v: str(getattr(v, "name", v)))
def test_decode_kernel_reading_matches_reference(wt, zp, gs, act, dt):
    """The decode kernel reads each tile-layout word as an A fragment (columns as mma rows): that reading
    gives back every code, and its arithmetic (sums of x * (MAGIC + code) folded per group) is the layer's."""
    rep, ref_w, _, x = _repacked_case(wt, zp, gs, act, dt, 5)
    assert torch.equal(unrepack_codes_as_a(rep.w), unrepack_codes(rep.w))
    out = emulate_decode(x, rep, MAGIC[dt])
    ref = x.double() @ ref_w.t()
    assert torch.allclose(out, ref, rtol=1e-9, atol=1e-9)
