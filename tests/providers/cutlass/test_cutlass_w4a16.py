"""CPU tests of the CUTLASS W4A16 kernel's Python side: the int4 re-lay (a bijection, the documented
atom, the int4 shift), the scale / zero tables, act-order, the gates and reasons, the tile buckets,
and the whole load-and-apply path through the conformance kit against a stand-in ``w4a16_mm`` that
decodes the re-laid buffers the way the CUDA kernel does (its arithmetic is checked on the GPU in
test_cutlass_w4a16_gpu.py). The C++ side of the layout is compared in test_cutlass_compile.py."""

import pytest
import torch

pytest.importorskip("qlinear_cutlass")

from qlinear import testing  # noqa: E402
from qlinear.config import MPLinearLayerConfig  # noqa: E402
from qlinear.formats.int_pack import pack_along  # noqa: E402
from qlinear.scalar_type import scalar_types  # noqa: E402
from qlinear_cutlass import build, configs  # noqa: E402
from qlinear_cutlass import w4a16_layout as L  # noqa: E402
from qlinear_cutlass.w4a16 import CutlassW4A16LinearKernel  # noqa: E402

U4B8, U4 = scalar_types.uint4b8, scalar_types.uint4
BF, FP = torch.bfloat16, torch.float16


# ---- the re-lay ------------------------------------------------------------------------------
@pytest.mark.parametrize("n,k", [(16, 16), (32, 64), (48, 128), (256, 512)])
def test_reorder_is_a_bijection_and_round_trips(n, k):
    off = L.reorder_offsets(n, k)
    assert torch.equal(off.reshape(-1).sort().values, torch.arange(n * k))
    codes = torch.randint(0, 16, (n, k), dtype=torch.uint8, generator=torch.Generator().manual_seed(n + k))
    packed = L.reorder_int4(codes)
    assert packed.dtype == torch.uint8 and packed.shape == (n * k // 2,)
    assert torch.equal(L.unreorder_int4(packed, n, k), codes)
    # the per-atom gather is the documented map: element (n, k) at offset reorder_offsets[n, k]
    flat = torch.stack([packed & 0xF, packed >> 4], 1).reshape(-1)
    assert torch.equal(flat[off.reshape(-1)].reshape(n, k), codes)


def test_reorder_atom_is_the_wgmma_fragment_order():
    off = L.reorder_offsets(32, 32)
    # one thread's 8 values of a 16x16 k-block (row n, columns {0,1,8,9} of two k-halves...) are one
    # 32-bit word (8 consecutive nibbles), interleaved [0,2,4,6,1,3,5,7] for the lop3 converter
    word = [int(off[0, kk]) for kk in (0, 1, 2, 3, 4, 5, 6, 7)]
    assert word == [0, 4, 8, 12, 16, 20, 24, 28]
    assert [int(off[0, kk]) for kk in (8, 9)] == [2, 6]
    assert int(off[8, 0]) == 1 and int(off[1, 0]) == 32  # rows 0 / 8 interleave, rows step 32
    # thread (row 0) owns offsets 0..7 exactly: columns 0, 8 / 1, 9 / ... in value-shuffled order
    own = sorted((int(off[r, c]), c) for r in (0, 8) for c in range(16) if int(off[r, c]) < 8)
    assert [o for o, _ in own] == list(range(8))
    # atoms: N-fastest, 256 elements each
    assert int(off[16, 0]) == 256 and int(off[0, 16]) == 16 * 32


def test_reorder_refuses_partial_atoms():
    with pytest.raises(ValueError, match="N=24 must be a multiple of 16"):
        L.reorder_offsets(24, 32)


def test_weight_int4_shifts_codes_to_signed():
    n, k = 32, 64
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, 16, (n, k), dtype=torch.int32, generator=g)
    buf = L.weight_int4(pack_along(codes, 4, 1))
    nib = L.unreorder_int4(buf, n, k).to(torch.int32)
    signed = torch.where(nib >= 8, nib - 16, nib)  # int4 two's complement
    assert torch.equal(signed, codes - 8)
    perm = torch.randperm(k, generator=g)
    nib = L.unreorder_int4(L.weight_int4(pack_along(codes, 4, 1), perm), n, k).to(torch.int32)
    assert torch.equal(torch.where(nib >= 8, nib - 16, nib), codes[:, perm] - 8)


def test_scale_and_zero_tables():
    n, groups = 16, 4
    g = torch.Generator().manual_seed(2)
    s = torch.rand(n, groups, generator=g).to(BF) + 0.01
    z = torch.randint(0, 16, (n, groups), dtype=torch.int32, generator=g)
    st = L.scale_table(s, FP)
    assert st.shape == (groups, n) and st.is_contiguous() and st.dtype == FP and torch.equal(st, s.to(FP).t())
    zt = L.zero_table(pack_along(z, 4, 0), s, BF)
    assert zt.shape == (groups, n) and zt.is_contiguous()
    assert torch.equal(zt, ((8 - z).float() * s.float()).to(BF).t())
    # (q - 8) * s + (8 - z) * s == (q - z) * s
    q = torch.randint(0, 16, (n, groups), dtype=torch.int32, generator=g)
    assert torch.allclose((q - 8).double() * s.double() + (8 - z).double() * s.double(), (q - z).double() * s.double())


def test_act_order_perm():
    k, group = 256, 64
    gi = torch.arange(k) // group
    p = torch.randperm(k, generator=torch.Generator().manual_seed(3))
    perm = L.act_order_perm(gi[p], k, group)
    assert torch.equal(gi[p][perm], gi)
    uneven = gi.clone()
    uneven[0] = 1
    with pytest.raises(ValueError, match="weight_g_idx"):
        L.act_order_perm(uneven, k, group)


# ---- gates ------------------------------------------------------------------------------------
def _mp(n=256, k=512, wt=U4B8, dt=BF, g=128, zp=False, gidx=False, out=None, full_k=None):
    return MPLinearLayerConfig((full_k or k, n), (k, n), wt, dt, g, zp, gidx, out)


@pytest.mark.parametrize("c,ok,why", [
    (_mp(), True, None),
    (_mp(wt=U4, zp=True, g=64, dt=FP), True, None),
    (_mp(g=-1), True, None),
    (_mp(k=576, g=-1), True, None),  # channelwise: K a multiple of 64 is enough
    (_mp(gidx=True), True, None),
    (_mp(g=32), False, "multiple of 64"),
    (_mp(n=200), False, "N=200"),
    (_mp(k=520, g=-1), False, "K=520"),
    (_mp(wt=scalar_types.uint8b128), False, "not 4-bit"),
    (_mp(dt=torch.float32), False, "bfloat16/float16"),
    (_mp(out=torch.float32), False, "out_type"),
    (_mp(gidx=True, full_k=1024), False, "row slice"),
])
def test_can_implement(c, ok, why):
    got, reason = CutlassW4A16LinearKernel.can_implement(c)
    assert got is ok
    if why:
        assert why in reason


def test_tile_buckets(monkeypatch):
    assert [configs.w4a16_tile_for(m) for m in (1, 64, 65, 128, 512, 513, 4096)] == [0, 0, 1, 1, 1, 2, 2]
    monkeypatch.setenv("QLINEAR_CUTLASS_W4A16_TILE", "mid")
    assert configs.w4a16_forced() == configs.MID
    monkeypatch.setenv("QLINEAR_CUTLASS_W4A16_TILE", "huge")
    with pytest.raises(ValueError, match="QLINEAR_CUTLASS_W4A16_TILE"):
        configs.w4a16_forced()


# ---- the load-and-apply path through a stand-in extension --------------------------------------
class StandInW4A16:
    """``w4a16_mm`` in torch, with ``csrc/w4a16_binding.cpp``'s checks, decoding the re-laid buffers
    the way the kernel does: int4 * scale (+ zero) rounded to the activation dtype, fp32 sums."""

    def __init__(self):
        self.calls = []

    def w4a16_mm(self, out, x, w, scale, zero, bias, group, config):
        self.calls.append(config)
        m, k = x.shape
        n = out.shape[1]
        dt = x.dtype
        assert dt in (BF, FP) and out.dtype == dt and out.shape == (m, n)
        assert x.stride(1) == 1 and x.stride(0) % 8 == 0 and out.stride(1) == 1
        assert n % 16 == 0 and k % 64 == 0 and k % group == 0 and (group % 64 == 0 or group == k)
        assert w.dtype == torch.uint8 and w.is_contiguous() and w.numel() == n * k // 2
        for t in (scale, zero):
            if t is not None:
                assert t.dtype == dt and t.is_contiguous() and t.shape == (k // group, n)
        if bias is not None:
            assert bias.dtype == dt and bias.is_contiguous() and bias.numel() == n
        assert config in (0, 1, 2)
        nib = L.unreorder_int4(w, n, k).to(torch.float32)
        q = torch.where(nib >= 8, nib - 16, nib)  # [N, K] int4
        s = scale.t().repeat_interleave(group, 1).float()
        deq = (q * s).to(dt)
        if zero is not None:
            deq = (deq.float() + zero.t().repeat_interleave(group, 1).float()).to(dt)
        r = x.float() @ deq.float().t()
        if bias is not None:
            r = r + bias.float()
        out.copy_(r)


@pytest.fixture
def ext(monkeypatch):
    fake = StandInW4A16()
    monkeypatch.setattr(build, "load_w4a16_extension", lambda: fake)
    return fake


RUNNABLE = type("CutlassW4A16OnCpu", (CutlassW4A16LinearKernel,),
                {"is_supported": classmethod(lambda cls, platform=None: (True, None))})
LARGER = [_mp(1024, 512, U4B8, BF, 64), _mp(512, 1024, U4, FP, 128, True), _mp(256, 1024, U4B8, FP, 128, gidx=True),
          _mp(256, 512, U4, BF, 64, True, True)]


@pytest.mark.parametrize("case", [c for c in testing.cases_for(CutlassW4A16LinearKernel, ms=(1, 33))
                                  + testing.cases_for(CutlassW4A16LinearKernel, ms=(65, 200), configs=LARGER)
                                  if CutlassW4A16LinearKernel.can_implement(c.config)[0]], ids=str)
def test_conformance_through_the_stand_in(ext, case):
    testing.run_case(RUNNABLE, case, device="cpu")
    assert ext.calls == [configs.w4a16_tile_for(case.m)]


def test_kit_accepts_the_main_formats():
    accepted = [c for c in testing.default_configs("mp") if CutlassW4A16LinearKernel.can_implement(c)[0]]
    kinds = {(c.weight_type.name, c.act_type, c.group_size, c.has_g_idx) for c in accepted}
    for wt in ("uint4b8", "uint4"):
        for dt in (BF, FP):
            for g in (-1, 64, 128):
                assert (wt, dt, g, False) in kinds
    assert any(c.has_g_idx for c in accepted)


def test_bad_inputs(ext):
    testing.check_bad_inputs(RUNNABLE)


def test_leading_dims_and_strided_rows(ext):
    c = _mp(256, 512, U4, BF, 128, True)
    testing.check_leading_dims(RUNNABLE, c)


def test_act_order_layer_keeps_the_permutation(ext):
    c = _mp(256, 512, U4B8, BF, 128, gidx=True)
    params, x, bias = testing.make_case_layer(testing.Case(c, 5), "cpu")
    from qlinear.layers import make_layer

    layer = make_layer(c, params)
    k = RUNNABLE.create(c)
    k.process_weights_after_loading(layer)
    perm = layer.weight_g_idx
    assert perm.dtype == torch.int64 and torch.equal(perm.sort().values, torch.arange(512))
    assert layer.weight_packed.dtype == torch.uint8 and layer.weight_scale.shape == (4, 256)


def test_refuses_a_weight_of_the_wrong_shape(ext):
    c = _mp()
    params, _, _ = testing.make_case_layer(testing.Case(c, 1), "cpu")
    params["weight_packed"] = params["weight_packed"][:, :-1]
    from qlinear.layers import make_layer

    with pytest.raises(ValueError, match="weight_packed"):
        layer = make_layer(c, params)
        RUNNABLE.create(c).process_weights_after_loading(layer)
