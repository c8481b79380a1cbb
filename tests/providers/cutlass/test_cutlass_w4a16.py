"""CPU tests of the CUTLASS mixed-input kernels' Python side (W4A16, W8A16): the int4 / int8 re-lays
(bijections, the documented atoms, the shift to signed codes), the scale / zero tables, act-order, the
gates and reasons, the tile choice, and the whole load-and-apply path through the conformance kit
against stand-in ``w4a16_mm`` / ``w8a16_mm`` that decode the re-laid buffers the way the CUDA kernel
does (its arithmetic is checked on the GPU in test_cutlass_w4a16_gpu.py). The C++ side of the layouts
is compared in test_cutlass_compile.py."""

import pytest
import torch

pytest.importorskip("qlinear_cutlass")

from qlinear import testing  # noqa: E402
from qlinear.config import MPLinearLayerConfig  # noqa: E402
from qlinear.formats.int_pack import pack_along  # noqa: E402
from qlinear.scalar_type import scalar_types  # noqa: E402
from qlinear_cutlass import build, configs  # noqa: E402
from qlinear_cutlass import w4a16_layout as L  # noqa: E402
from qlinear_cutlass.w4a16 import CutlassW4A16LinearKernel, CutlassW8A16LinearKernel  # noqa: E402

U4B8, U4, U8B128 = scalar_types.uint4b8, scalar_types.uint4, scalar_types.uint8b128
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


def test_int8_reorder_is_cutlass_pair_order_and_round_trips():
    off = L.W8A16_ATOM.offsets(32, 32)
    assert torch.equal(off.reshape(-1).sort().values, torch.arange(32 * 32))
    # one thread's 4 bytes: (row 0, k 0), (row 8, k 0), (row 0, k 1), (row 8, k 1): CUTLASS's [3120] pairs
    assert [int(off[0, 0]), int(off[8, 0]), int(off[0, 1]), int(off[8, 1])] == [0, 1, 2, 3]
    assert [int(off[0, 8]), int(off[0, 2])] == [4, 8] and int(off[1, 0]) == 32
    assert int(off[16, 0]) == 256 and int(off[0, 16]) == 16 * 32  # atoms N-fastest, as the int4 one
    codes = torch.randint(0, 256, (48, 64), dtype=torch.int32, generator=torch.Generator().manual_seed(5))
    buf = L.weight_int4(pack_along(codes, 8, 1), bits=8)
    assert buf.dtype == torch.uint8 and buf.numel() == 48 * 64
    assert torch.equal(buf[L.W8A16_ATOM.offsets(48, 64).reshape(-1)].reshape(48, 64).to(torch.int8).int(), codes - 128)
    assert torch.equal(L.W8A16_ATOM.unreorder(buf, 48, 64).int(), codes ^ 128)


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


def test_gather_index_is_uint16_up_to_65536():
    for k in (256, 40000, 65536):  # indices past 32767 wrap in int16, the kernels read them unsigned
        perm = torch.randperm(k, generator=torch.Generator().manual_seed(k))
        idx = L.gather_index(perm)
        assert idx.dtype == torch.int16 and torch.equal(L.gather_index_long(idx), perm)
    long_k = torch.randperm(65536 + 128)
    assert L.gather_index(long_k) is long_k and L.gather_index_long(long_k) is long_k  # index_select's int64


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
    (_mp(wt=U8B128), False, "not 4-bit"),
    (_mp(dt=torch.float32), False, "bfloat16/float16"),
    (_mp(out=torch.float32), False, "out_type"),
    (_mp(gidx=True, full_k=1024), False, "row slice"),
])
def test_can_implement(c, ok, why):
    got, reason = CutlassW4A16LinearKernel.can_implement(c)
    assert got is ok
    if why:
        assert why in reason


@pytest.mark.parametrize("c,ok,why", [
    (_mp(wt=U8B128), True, None),
    (_mp(wt=U8B128, g=-1, dt=FP), True, None),
    (_mp(wt=U8B128, gidx=True, g=64), True, None),
    (_mp(wt=U8B128, g=32), False, "multiple of 64"),
    (_mp(wt=scalar_types.uint8, zp=True), False, "uint8b128"),
    (_mp(), False, "uint8b128"),
])
def test_can_implement_8bit(c, ok, why):
    got, reason = CutlassW8A16LinearKernel.can_implement(c)
    assert got is ok
    if why:
        assert why in reason


def test_tiles(monkeypatch):
    t = configs.W4A16_TILES
    assert [configs.w4a16_tile_for(m, 4096) for m in (1, 16, 17, 64, 65, 256, 257, 4096)] == \
        [t["m16"], t["m16"], t["m64"], t["m64"], t["m128"], t["m128"], t["m256"], t["m256"]]
    assert [configs.w4a16_tile_for(m, 28672) for m in (1, 16, 17, 64, 65, 128, 129, 4096)] == \
        [t["m16w"], t["m16w"], t["m64w"], t["m64w"], t["m128w"], t["m128w"], t["m256"], t["m256"]]
    assert sorted(t.values()) == list(range(len(t))) == sorted(configs.W4A16_SHAPES)  # the ids of W4A16Config
    assert len(build.MIXED_TILES) == len(t) and all(f"w4a16_scale_bf16_{name}.cu" in build.W4A16_SOURCES for name in t)
    monkeypatch.setenv("QLINEAR_CUTLASS_W4A16_TILE", "m128w")
    assert configs.w4a16_forced() == t["m128w"]
    monkeypatch.setenv("QLINEAR_CUTLASS_W4A16_TILE", "huge")
    with pytest.raises(ValueError, match="QLINEAR_CUTLASS_W4A16_TILE"):
        configs.w4a16_forced()


def test_decode_kernel_rules(monkeypatch):
    mm = configs.w4a16_decode_max_m
    assert mm(4096, 14336) == mm(6144, 4096) == 16 and mm(28672, 4096) == 8  # 4-bit: the wide layers at most 8 rows
    assert mm(6144, 4096, 8) == mm(4096, 4096, 8) == 16 and mm(4096, 14336, 8) == mm(28672, 4096, 8) == 8  # 8-bit
    ok = configs.w4a16_decode_applies
    assert ok(1, 4096, 4096, 128) and ok(16, 64, 128, 64) and ok(3, 6144, 14336, 14336)
    assert not ok(17, 4096, 4096, 128) and not ok(0, 4096, 4096, 128)  # M
    assert not ok(1, 4096 + 16, 4096, 128) and not ok(1, 4096, 4096 + 64, 64)  # 64-column tiles, 128-deep chunks
    assert not ok(1, 4096, 4096, 32) and not ok(1, 4096, 4096, 96)  # groups of whole 64-k halves
    assert ok(1, 4096, 4096 + 64, 64, 8) and not ok(1, 4096, 4096 + 32, 64, 8)  # 8-bit codes: 64-deep chunks
    assert configs.w4a16_decode_planes(1, 4096, 4096, 132) == 8 and configs.w4a16_decode_planes(16, 28672, 4096, 132) == 1
    assert configs.w4a16_decode_planes(1, 64, 256, 132) == 2 and configs.w4a16_decode_planes(1, 64, 256, 132, 8) == 4
    monkeypatch.setattr(configs, "W4A16_DECODE_MAX_M", 0)
    assert mm(4096, 4096) == mm(28672, 4096) == mm(4096, 4096, 8) == 0


# ---- the load-and-apply path through a stand-in extension --------------------------------------
class StandInMixed:
    """``w4a16_mm`` / ``w8a16_mm`` in torch, with ``csrc/mixed_input_binding.h``'s checks, decoding the
    re-laid buffers the way the kernel does: int4 / int8 * scale (+ zero) rounded to the activation
    dtype, fp32 sums."""

    def __init__(self):
        self.calls = []

    def w4a16_mm(self, *args):
        self._mm(4, *args)

    def w8a16_mm(self, *args):
        self._mm(8, *args)

    def _mm(self, bits, out, x, w, scale, zero, bias, group, config):
        self.calls.append(config)
        m, k = x.shape
        n = out.shape[1]
        dt = x.dtype
        assert dt in (BF, FP) and out.dtype == dt and out.shape == (m, n)
        assert x.stride(1) == 1 and x.stride(0) % 8 == 0 and out.stride(1) == 1
        assert n % 16 == 0 and k % 64 == 0 and k % group == 0 and (group % 64 == 0 or group == k)
        assert w.dtype == torch.uint8 and w.is_contiguous() and w.numel() == n * k * bits // 8
        assert bits == 4 or zero is None
        for t in (scale, zero):
            if t is not None:
                assert t.dtype == dt and t.is_contiguous() and t.shape == (k // group, n)
        if bias is not None:
            assert bias.dtype == dt and bias.is_contiguous() and bias.numel() == n
        assert config in configs.W4A16_TILES.values()
        atom = L.W8A16_ATOM if bits == 8 else L.W4A16_ATOM
        code = atom.unreorder(w, n, k).to(torch.float32)
        half = 1 << (bits - 1)
        q = torch.where(code >= half, code - 2 * half, code)  # [N, K] signed codes
        s = scale.t().repeat_interleave(group, 1).float()
        deq = (q * s).to(dt)
        if zero is not None:
            deq = (deq.float() + zero.t().repeat_interleave(group, 1).float()).to(dt)
        r = x.float() @ deq.float().t()
        if bias is not None:
            r = r + bias.float()
        out.copy_(r)


    def w4a16_gather(self, out, x, perm, pdl, staged):
        """csrc/act_order_gather.cuh gather_kernel / gather_rows_kernel: out[r][i] = x[r][perm[i]], perm uint16."""
        self.calls.append("gather_staged" if staged else "gather")
        assert perm.dtype == torch.int16 and out.is_contiguous() and out.shape == x.shape and x.stride(1) == 1
        out.copy_(x[:, L.gather_index_long(perm)])

    def w4a16_decode(self, out, x, w, scale, zero, bias, ws, counters, group, splits, warps, pdl, rows, cluster):
        self._decode(4, out, x, w, scale, zero, bias, ws, counters, group, rows)

    def w8a16_decode(self, out, x, w, scale, zero, bias, ws, counters, group, splits, warps, pdl, rows, cluster):
        assert zero is None
        self._decode(8, out, x, w, scale, zero, bias, ws, counters, group, rows)

    def _decode(self, bits, out, x, w, scale, zero, bias, ws, counters, group, rows):
        """The decode kernel (csrc/w4a16_decode.cuh) replayed as it reads the weight (``decoded_atoms``:
        lane's A fragments as MAGIC + q), summed per group in fp32 and folded as
        s (sum x (MAGIC + q) - offset sum x) + zt sum x."""
        self.calls.append("decode")
        m, k = x.shape
        n = out.shape[1]
        assert configs.w4a16_decode_applies(m, n, k, group, bits) and ws.dtype == torch.float32 and counters.dtype == torch.int32
        assert counters.numel() >= 2 * n // configs.DECODE_TILE_N and not counters.any() and rows in (0, 1, 2)
        wq, offset = decoded_atoms(bits, w, n, k, x.dtype)
        xf = x.float().view(m, k // group, group)
        gsum = torch.einsum("mgk,ngk->mgn", xf, wq.view(n, k // group, group))  # sum x (MAGIC + q) per group
        xsum = xf.sum(-1)[:, :, None]  # [M, G, 1]
        r = (scale.float()[None] * (gsum - offset * xsum))
        if zero is not None:
            r = r + zero.float()[None] * xsum
        r = r.sum(1)
        if bias is not None:
            r = r + bias.float()
        out.copy_(r)


def _byte_perm(x: torch.Tensor, y: int, sel: int) -> torch.Tensor:
    """CUDA's __byte_perm on int64 tensors holding 32-bit words: byte i of the result is byte
    (sel >> 4i) & 7 of the pair (x: bytes 0-3, y: 4-7)."""
    src = [(x >> (8 * i)) & 0xFF for i in range(4)] + [torch.full_like(x, (y >> (8 * i)) & 0xFF) for i in range(4)]
    return sum(src[(sel >> (4 * i)) & 7] << (8 * i) for i in range(4))


def _halves(v: torch.Tensor, dt) -> tuple[torch.Tensor, torch.Tensor]:
    lo, hi = (v & 0xFFFF).to(torch.int16), ((v >> 16) & 0xFFFF).to(torch.int16)
    return lo.view(dt).float(), hi.view(dt).float()  # (int16 -> the 16-bit float with those bits)


def decoded_atoms(bits: int, w: torch.Tensor, n: int, k: int, dt) -> tuple[torch.Tensor, float]:
    """The weight [N, K] as the decode kernel's A fragments hold it (MAGIC + code, float) and the offset
    its fold subtracts, replaying its bit operations on the re-laid atoms. g = lane / 4, t = lane % 4.
    4-bit: word ``lane`` of an atom is lane's mma.sync m16n8k16 A fragment, register r = nibbles r, r + 4
    (rows g + 8 (r % 2), k 2t + 8 (r // 2) + (0, 1)); (nibble | MAGIC) ^ 8 = MAGIC + q.
    8-bit: lane's 8 bytes are words 2 lane + e (k + 8 e); A registers = bytes (0, 2) / (1, 3) of a word by
    __byte_perm 0x4240 / 0x4341 (rows g / g + 8); fp16: byte | 0x6400 then ^ 0x80; bf16: 128 + low nibble
    and 256 + 16 high nibble as two fragments summed."""
    lane = torch.arange(32)
    g, t = lane // 4, lane % 4
    wq = torch.full((n, k), float("nan"))
    if bits == 4:
        magic = 128.0 if dt == BF else 1024.0
        words = w.view(torch.int32).view(k // 16, n // 16, 32).to(torch.int64) & 0xFFFFFFFF  # [k block, atom, lane]
        nib = torch.stack([(words >> (4 * p)) & 0xF for p in range(8)], -1) ^ 8  # the uint4 code q of each nibble
        a = torch.zeros(k // 16, n // 16, 16, 16, dtype=torch.float32)  # [k block, atom, row, k] = MAGIC + q
        for r in range(4):
            row, col = g + 8 * (r % 2), 2 * t + 8 * (r // 2)
            a[:, :, row, col] = magic + nib[..., r].float()
            a[:, :, row, col + 1] = magic + nib[..., r + 4].float()
        return a.permute(1, 2, 0, 3).reshape(n, k), magic + 8
    offset = 1152.0 if dt == FP else 512.0
    words = w.view(torch.int32).to(torch.int64).view(k // 16, n // 16, 64) & 0xFFFFFFFF
    for e in range(2):
        we = words[:, :, 2 * lane + e]  # [k block, atom, lane]
        for sel, rows in ((0x4240, g), (0x4341, g + 8)):
            if dt == FP:
                frags = [_byte_perm(we, 0x64646464, sel) ^ 0x00800080]
            else:
                v = _byte_perm(we, 0, sel)
                frags = [(v & 0x000F000F) ^ 0x43004300, ((v >> 1) & 0x00780078) ^ 0x43C043C0]
            lo = sum(_halves(f, dt)[0] for f in frags)  # k 2t + 8e
            hi = sum(_halves(f, dt)[1] for f in frags)  # k 2t + 1 + 8e
            for kb in range(k // 16):
                for atom in range(n // 16):
                    wq[16 * atom + rows, 16 * kb + 2 * t + 8 * e] = lo[kb, atom]
                    wq[16 * atom + rows, 16 * kb + 2 * t + 1 + 8 * e] = hi[kb, atom]
    return wq, offset


@pytest.fixture
def ext(serve_extensions):
    return serve_extensions(StandInMixed())


RUNNABLE, RUNNABLE8 = testing.gate_lifted(CutlassW4A16LinearKernel), testing.gate_lifted(CutlassW8A16LinearKernel)
LARGER = [_mp(1024, 512, U4B8, BF, 64), _mp(512, 1024, U4, FP, 128, True), _mp(256, 1024, U4B8, FP, 128, gidx=True),
          _mp(256, 512, U4, BF, 64, True, True), _mp(512, 1024, U8B128, BF, 128), _mp(256, 1024, U8B128, FP, 64, gidx=True),
          _mp(16384, 128, U8B128, BF, -1)]


@pytest.mark.parametrize("kc", [RUNNABLE, RUNNABLE8], ids=lambda k: k.__name__)
@pytest.mark.parametrize("case", testing.cases_for(CutlassW4A16LinearKernel, ms=(1, 33))
                         + testing.cases_for(CutlassW4A16LinearKernel, ms=(65, 200), configs=LARGER), ids=str)
def test_conformance_through_the_stand_in(ext, kc, case):
    if not kc.can_implement(case.config)[0]:
        pytest.skip("not a layer of this kernel")
    testing.run_case(kc, case, device="cpu")
    c = case.config
    decode = case.m <= configs.w4a16_decode_max_m(c.N, c.K, kc.bits) and \
        configs.w4a16_decode_applies(case.m, c.N, c.K, c.effective_group_size, kc.bits)
    gather = [] if not c.has_g_idx else ["gather_staged" if case.m >= configs.W4A16_GATHER_STAGED_MIN_M else "gather"]
    assert ext.calls == gather + ["decode" if decode else configs.w4a16_tile_for(case.m, c.N)]
    # the extension of this code width and activation dtype only (a bf16 model never builds fp16 GEMMs)
    assert ext.loaded == [f"{kc.extension}-{'bf16' if case.config.act_type == BF else 'fp16'}"]


def test_kit_accepts_the_main_formats():
    accepted = [c for c in testing.default_configs("mp") if CutlassW4A16LinearKernel.can_implement(c)[0]]
    kinds = {(c.weight_type.name, c.act_type, c.group_size, c.has_g_idx) for c in accepted}
    for wt in ("uint4b8", "uint4"):
        for dt in (BF, FP):
            for g in (-1, 64, 128):
                assert (wt, dt, g, False) in kinds
    assert any(c.has_g_idx for c in accepted)


@pytest.mark.parametrize("kc", [RUNNABLE, RUNNABLE8], ids=lambda k: k.__name__)
def test_bad_inputs(ext, kc):
    testing.check_bad_inputs(kc)


def test_leading_dims_and_strided_rows(ext):
    c = _mp(256, 512, U4, BF, 128, True)
    testing.check_leading_dims(RUNNABLE, c)


@pytest.mark.parametrize("m", (1, 31, 32, 300))
def test_act_order_gathers_x_with_our_kernels(ext, m):
    c = _mp(256, 512, U4B8, BF, 128, gidx=True)
    testing.run_case(RUNNABLE, testing.Case(c, m), device="cpu")
    step = "decode" if m <= configs.w4a16_decode_max_m(c.N, c.K) else configs.w4a16_tile_for(m, c.N)
    gather = "gather_staged" if m >= configs.W4A16_GATHER_STAGED_MIN_M else "gather"  # a block per row / per element
    assert ext.calls == [gather, step]


def test_act_order_past_65536_columns_goes_through_index_select(ext):
    """A permutation left int64 (K > 65536: past uint16) is gathered by index_select, not our kernels."""
    import types

    k = RUNNABLE.create(_mp(256, 512, U4B8, BF, 128, gidx=True))
    perm = torch.randperm(512, generator=torch.Generator().manual_seed(5))
    x = torch.randn(40, 512, dtype=BF)
    assert torch.equal(k._gather(x, types.SimpleNamespace(weight_g_idx=perm)), x[:, perm]) and ext.calls == []


def test_act_order_layer_keeps_the_permutation(ext):
    c = _mp(256, 512, U4B8, BF, 128, gidx=True)
    params, x, bias = testing.make_case_layer(testing.Case(c, 5), "cpu")
    from qlinear.layers import make_layer

    layer = make_layer(c, params)
    k = RUNNABLE.create(c)
    k.process_weights_after_loading(layer)
    perm = layer.weight_g_idx  # as the gathers read it: uint16 bits in int16
    assert perm.dtype == torch.int16 and torch.equal(L.gather_index_long(perm).sort().values, torch.arange(512))
    assert layer.weight_packed.dtype == torch.uint8 and layer.weight_scale.shape == (4, 256)


def test_refuses_a_weight_of_the_wrong_shape(ext):
    c = _mp()
    params, _, _ = testing.make_case_layer(testing.Case(c, 1), "cpu")
    params["weight_packed"] = params["weight_packed"][:, :-1]
    from qlinear.layers import make_layer

    with pytest.raises(ValueError, match="weight_packed"):
        layer = make_layer(c, params)
        RUNNABLE.create(c).process_weights_after_loading(layer)


def test_checked_decode_names_what_it_refuses():
    from qlinear_cutlass.w4a16 import checked_decode

    calls = []
    x, out = torch.zeros(1, 256, dtype=BF), torch.zeros(1, 128, dtype=BF)
    ws, cnt = torch.zeros(64), torch.zeros(8, dtype=torch.int32)
    w, s = torch.zeros(128 * 128, dtype=torch.uint8), torch.zeros(2, 128, dtype=BF)
    checked_decode(lambda *a: calls.append(a[-5:]), out, x, w, s, None, None, ws, cnt, 128, 3, 4, False, 2, False)
    assert calls == [(3, 4, False, 2, False)]
    bad = [((torch.zeros(17, 256, dtype=BF), torch.zeros(17, 128, dtype=BF), ws, cnt, 128, 0, 0), "M <= 16"),
           ((x, torch.zeros(1, 144, dtype=BF), ws, cnt, 128, 0, 0), "N a multiple of 64"),
           ((x, out, ws, cnt, 32, 0, 0), "groups of whole 64-k"),
           ((x, out, ws, cnt, 128, 0, 5), "warps"), ((x, out, ws, cnt, 128, -1, 0), "splits"),
           ((x, out, ws, cnt, 128, 0, 0, 3), "rows"),
           ((x, out, cnt, cnt, 128, 0, 0), "ws: expected a contiguous float32"),
           ((x, out, ws, ws, 128, 0, 0), "counters: expected a contiguous int32")]
    for (xx, oo, ww, cc, g, sp, wa, *rows), why in bad:
        with pytest.raises(ValueError, match=why):
            checked_decode(lambda *a: calls.append(a), oo, xx, w, s, None, None, ww, cc, g, sp, wa, True, *rows)
    x64 = torch.zeros(1, 192, dtype=BF)  # 8-bit codes: K a multiple of 64, no zero points
    w8, s8 = torch.zeros(128 * 192, dtype=torch.uint8), torch.zeros(3, 128, dtype=BF)
    checked_decode(lambda *a: calls.append(a[-5:]), out, x64, w8, s8, None, None, ws, cnt, 64, bits=8)
    with pytest.raises(ValueError, match="K of 128"):
        checked_decode(lambda *a: calls.append(a), out, x64, w8, s8, None, None, ws, cnt, 64)
    with pytest.raises(ValueError, match="zero: the 8-bit"):
        checked_decode(lambda *a: calls.append(a), out, x64, w8, s8, s8, None, ws, cnt, 64, bits=8)
    assert calls == [(3, 4, False, 2, False), (0, 0, True, 0, True)]


# ---- the 8-bit decode path (csrc/w4a16_decode.cuh, BITS = 8) -------------------------------------
@pytest.mark.parametrize("dt", [BF, FP])
def test_8bit_decode_reading_of_the_int8_atom(dt):
    """Replays the 8-bit decode kernel's reading of W8A16's atom (lane's 8 bytes = words 2 lane, 2 lane + 1;
    A registers = bytes (0, 2) / (1, 3) of each word by __byte_perm 0x4240 / 0x4341; fp16: byte | 0x6400
    then ^ 0x80; bf16: 128 + low nibble and 256 + 16 high nibble as two fragments) and checks that the
    fragment values minus the kernel's offset are the signed codes q - 128 at the right (n, k), and that
    the header still holds these constants."""
    n, k = 32, 48
    codes = torch.randint(0, 256, (n, k), generator=torch.Generator().manual_seed(3))
    packed = L.W8A16_ATOM.reorder(codes ^ 0x80)  # as weight_int4(bits=8) stores them (q ^ 0x80)
    wq, offset = decoded_atoms(8, packed, n, k, dt)
    eff = wq - offset
    assert torch.equal(eff, (codes - 128).float())  # every (n, k) once, exactly the signed code
    header = (build.CSRC / "w4a16_decode.cuh").read_text()
    for const in ("0x64646464u", "0x00800080u", '"n"(0x000F000Fu), "n"(0x43004300u)', '"n"(0x00780078u), "n"(0x43C043C0u)',
                  "bytes_to_a<0x4240>", "bytes_to_a<0x4341>",
                  "kOffset8 = 1152.f", "kOffset8 = 512.f"):
        assert const in header, const
