"""CPU tests of the CUTLASS float-code weight-only kernels' Python side (NVFP4, MXFP4 on the W4A16 GEMM,
MXFP8 on the W8A16 one, ``csrc/mixed_input_float.cuh``): the E2M1 / E4M3 bit placement the kernel does
(replayed bit for bit), the word order it relies on (each shift of a thread's word gives one row's two
adjacent k), the packet table of
group scales, the gates and reasons, and the whole load-and-apply path through the conformance kit
against a stand-in ``fp4_mm`` that decodes the re-laid buffers the way the kernel does (placed code
times the stored scale, rounded once to the activation dtype; fp32 sums times alpha, plus bias). The
kernel's arithmetic is checked on the GPU in test_cutlass_float_weights_gpu.py."""

import pytest
import torch

pytest.importorskip("qlinear_cutlass")

from qlinear import testing  # noqa: E402
from qlinear.config import MxFp4LinearLayerConfig, Mxfp8LinearLayerConfig, NvFp4LinearLayerConfig  # noqa: E402
from qlinear.formats.codes import FP_PLACEMENT_BIAS, e2m1_decode, e4m3_decode  # noqa: E402
from qlinear_cutlass import build, configs  # noqa: E402
from qlinear_cutlass import w4a16_layout as L  # noqa: E402
from qlinear_cutlass.float_weights import CutlassMxFp4WeightOnlyLinearKernel as MX  # noqa: E402
from qlinear_cutlass.float_weights import CutlassMxfp8WeightOnlyLinearKernel as MX8  # noqa: E402
from qlinear_cutlass.float_weights import CutlassNvFp4WeightOnlyLinearKernel as NV  # noqa: E402

BF, FP = torch.bfloat16, torch.float16


def e2m1_pair_raw(bits: torch.Tensor, bf16: bool) -> torch.Tensor:
    """csrc/mixed_input_float.cuh e2m1_pair_raw, on int64 tensors holding 32-bit words."""
    return ((bits & 0x00080008) << 12) | ((bits & 0x00070007) << (6 if bf16 else 9))


def e4m3_pair_raw(bits: torch.Tensor, bf16: bool) -> torch.Tensor:
    """csrc/mixed_input_float.cuh e4m3_pair_raw, on int64 tensors holding 32-bit words."""
    return ((bits & 0x00800080) << 8) | ((bits & 0x007F007F) << (4 if bf16 else 7))


def _halves(raw: torch.Tensor, dt) -> tuple[torch.Tensor, torch.Tensor]:
    lo = (raw & 0xFFFF).to(torch.int16).view(dt).double()
    return lo, ((raw >> 16) & 0xFFFF).to(torch.int16).view(dt).double()


@pytest.mark.parametrize("dt", [BF, FP])
def test_placed_e4m3_bits_read_as_value_times_two_to_minus_bias(dt):
    codes = torch.tensor([c for c in range(256) if c & 0x7F != 0x7F], dtype=torch.int64)  # every finite code
    lo, hi = _halves(e4m3_pair_raw(codes | (codes.flip(0) << 16), dt == BF), dt)
    scale = 2.0 ** FP_PLACEMENT_BIAS[(dt, 8)]
    assert torch.equal(lo * scale, e4m3_decode(codes.to(torch.uint8), torch.float64))
    assert torch.equal(hi * scale, e4m3_decode(codes.flip(0).to(torch.uint8), torch.float64))


@pytest.mark.parametrize("dt", [BF, FP])
def test_placed_e2m1_bits_read_as_value_times_two_to_minus_bias(dt):
    codes = torch.arange(16, dtype=torch.int64)
    word = codes | ((15 - codes) << 16)  # two codes per word, at bits [0, 4) and [16, 20)
    raw = e2m1_pair_raw(word, dt == BF)
    lo = (raw & 0xFFFF).to(torch.int16).view(dt).double()
    hi = ((raw >> 16) & 0xFFFF).to(torch.int16).view(dt).double()
    scale = 2.0 ** FP_PLACEMENT_BIAS[(dt, 4)]
    assert torch.equal(lo * scale, e2m1_decode(codes.to(torch.uint8), torch.float64))
    assert torch.equal(hi * scale, e2m1_decode((15 - codes).to(torch.uint8), torch.float64))


@pytest.mark.parametrize("atom", [L.W4A16_ATOM, L.W8A16_ATOM], ids=("4-bit", "8-bit"))
def test_each_shift_of_a_word_is_one_rows_adjacent_k(atom):
    """The kernel decodes `word >> bits i` as values 2i, 2i+1 (4-bit: codes i and i + 4 of the word;
    8-bit: bytes i and i + 2) and scales both with one row's packet."""
    n, k = 32, 64
    per = 32 // atom.bits
    slot = atom.offsets(n, k)  # code slot of (n, k) in the packed buffer
    where = torch.empty(n * k, 2, dtype=torch.int64)
    nn, kk = torch.meshgrid(torch.arange(n), torch.arange(k), indexing="ij")
    where[slot.reshape(-1)] = torch.stack([nn.reshape(-1), kk.reshape(-1)], 1)
    words = where.view(-1, per, 2)  # per codes a 32-bit word, code p at bits [bits p, bits (p + 1))
    for i in range(per // 2):
        lo, hi = words[:, i], words[:, i + per // 2]
        assert torch.equal(lo[:, 0], hi[:, 0]) and torch.equal(hi[:, 1], lo[:, 1] + 1)  # same row, k and k + 1
        assert torch.equal(lo[:, 1] // 16, hi[:, 1] // 16)  # one 16-deep k-block (one group's scale)


@pytest.mark.parametrize("group", [16, 32])
def test_sub_scale_table_packs_each_k_tiles_groups(group):
    n, k = 48, 256
    s = torch.randn(n, k // group)
    t = L.sub_scale_table(s, group, BF)
    per = 64 // group
    assert t.shape == (k // 64, n, per) and t.is_contiguous() and t.dtype == BF
    for tile in range(k // 64):
        for j in range(per):
            assert torch.equal(t[tile, :, j], s[:, tile * per + j].to(BF))
    with pytest.raises(ValueError, match="weight_scale"):
        L.sub_scale_table(s, 64, BF)


@pytest.mark.parametrize("kc, cfg, why", [
    (MX, MxFp4LinearLayerConfig((256, 512), FP), "float16 activations cannot hold E8M0"),
    (MX8, Mxfp8LinearLayerConfig((256, 512), FP), "float16 activations cannot hold E8M0"),
    (MX8, Mxfp8LinearLayerConfig((256, 544)), "K=544 must be a multiple of 64"),
    (NV, NvFp4LinearLayerConfig((264, 512)), "N=264 must be a multiple of 16"),
    (NV, NvFp4LinearLayerConfig((256, 544)), "K=544 must be a multiple of 64"),
    (NV, NvFp4LinearLayerConfig((256, 512), torch.float32), "activation dtype torch.float32"),
    (NV, NvFp4LinearLayerConfig((256, 512), BF, FP), "differs from the activation dtype"),
])
def test_refusals_name_the_reason(kc, cfg, why):
    ok, reason = kc.can_implement(cfg)
    assert not ok and why in reason


class StandInFloat:
    """``fp4_mm`` / ``mxfp8_mm`` in torch with csrc/mixed_input_binding.h float_codes_mm's checks,
    decoding as the kernel does."""

    def __init__(self):
        self.calls = []

    def fp4_mm(self, *args):
        self._mm(4, *args)

    def mxfp8_mm(self, *args):
        self._mm(8, *args)

    def fp4_decode(self, *args):
        self._decode(4, *args)

    def mxfp8_decode(self, *args):
        self._decode(8, *args)

    def _decode(self, bits, out, x, w, scale, bias, ws, counters, group, splits, warps, pdl, rows, cluster, alpha):
        """The decode kernel (csrc/float_decode.cuh) replayed as it reads the weight: lane's A fragments
        placed from its words, times the packet entry of the k block, rounded once; fp32 sums times alpha."""
        self.calls.append("decode")
        m, k = x.shape
        n = out.shape[1]
        dt = x.dtype
        assert configs.float_decode_applies(m, n, k, bits) and ws.dtype == torch.float32 and counters.dtype == torch.int32
        assert counters.numel() >= 2 * n // configs.DECODE_TILE_N and not counters.any() and (splits, warps, rows, cluster) == (0, 0, 0, True)
        assert isinstance(pdl, bool) and isinstance(alpha, float) and alpha != 0.0
        assert scale.dtype == dt and scale.shape == (k // 64, n, 64 // group) and w.numel() == n * k * bits // 8
        deq = fragments_times_scales(bits, w, scale, n, k, group, dt)
        r = (x.float() @ deq.float().t()) * alpha
        if bias is not None:
            r = r + bias.float()
        out.copy_(r)

    def _mm(self, bits, out, x, w, scale, bias, group, config, alpha):
        self.calls.append(config)
        m, k = x.shape
        n = out.shape[1]
        dt = x.dtype
        assert dt in (BF, FP) and out.dtype == dt and out.shape == (m, n)
        assert x.stride(1) == 1 and x.stride(0) % 8 == 0 and out.stride(1) == 1 and x.data_ptr() % 16 == 0
        assert n % 16 == 0 and k % 64 == 0 and ((group == 16 and bits == 4) or (group == 32 and dt == BF))
        assert w.dtype == torch.uint8 and w.is_contiguous() and w.numel() == n * k * bits // 8
        assert scale.dtype == dt and scale.is_contiguous() and scale.shape == (k // 64, n, 64 // group)
        assert config in configs.W4A16_TILES.values() and isinstance(alpha, float) and alpha != 0.0
        codes = (L.W4A16_ATOM if bits == 4 else L.W8A16_ATOM).unreorder(w, n, k)
        decode = e2m1_decode if bits == 4 else e4m3_decode
        placed = decode(codes, torch.float64) * 2.0 ** -FP_PLACEMENT_BIAS[(dt, bits)]  # exact in dt
        s = scale.permute(1, 0, 2).reshape(n, k // group).double().repeat_interleave(group, 1)
        deq = (placed * s).to(dt)  # one rounding, as __hmul2
        r = (x.float() @ deq.float().t()) * alpha
        if bias is not None:
            assert bias.dtype == dt and bias.is_contiguous() and bias.numel() == n
            r = r + bias.float()
        out.copy_(r)


def fragments_times_scales(bits: int, w: torch.Tensor, scale: torch.Tensor, n: int, k: int, group: int, dt) -> torch.Tensor:
    """The weight [N, K] in dt as the float decode kernel multiplies it into its mma.sync A fragments,
    replaying its bit operations on the re-laid atoms (g = lane / 4, t = lane % 4): 4-bit, word ``lane``
    of an atom, register r = e2m1_pair_raw(word >> 4 r): rows g + 8 (r % 2), k 2t + 8 (r // 2) + (0, 1);
    8-bit, words 2 lane + e, register (e, h) = e4m3_pair_raw(word >> 8 h): rows g + 8 h, k 2t + 8 e + (0, 1).
    Each times its row's packet entry (k block % 4) * kSub / 4, rounded once to dt."""
    lane = torch.arange(32)
    g, t = lane // 4, lane % 4
    place = e2m1_pair_raw if bits == 4 else e4m3_pair_raw
    words = w.view(torch.int32).to(torch.int64).view(k // 16, n // 16, -1) & 0xFFFFFFFF  # [k block, atom, word]
    if bits == 4:
        regs = [(words, 4 * r, g + 8 * (r % 2), 2 * t + 8 * (r // 2)) for r in range(4)]
    else:
        regs = [(words[:, :, 2 * lane + e], 8 * h, g + 8 * h, 2 * t + 8 * e) for e in range(2) for h in range(2)]
    placed = torch.full((k // 16, n // 16, 16, 16), float("nan"), dtype=torch.float64)  # [k block, atom, row, k]
    for wd, shift, rows, cols in regs:
        lo, hi = _halves(place(wd >> shift, dt == BF), dt)
        placed[:, :, rows, cols], placed[:, :, rows, cols + 1] = lo, hi
    placed = placed.permute(1, 2, 0, 3).reshape(n, k)
    kblock = torch.arange(k) // 16
    s = scale.double()[kblock // 4, :, (kblock % 4) * (64 // group) // 4].t()  # [N, K]: the entry each k reads
    return (placed * s).to(dt)


@pytest.fixture
def ext(serve_extensions):
    return serve_extensions(StandInFloat())


LARGER = {NV: [NvFp4LinearLayerConfig((512, 1024)), NvFp4LinearLayerConfig((256, 512), FP)],
          MX: [MxFp4LinearLayerConfig((512, 1024)), MxFp4LinearLayerConfig((16384, 128))],
          MX8: [Mxfp8LinearLayerConfig((512, 1024)), Mxfp8LinearLayerConfig((272, 576))]}
EXTENSIONS = {NV: "fp4", MX: "fp4", MX8: "mxfp8"}
CASES = [(kc, c) for kc in (NV, MX, MX8) for c in testing.cases_for(kc, ms=(1, 16, 33)) + testing.cases_for(kc, ms=(65, 200), configs=LARGER[kc])]


@pytest.mark.parametrize("kc, case", CASES, ids=lambda v: v.__name__ if isinstance(v, type) else str(v))
def test_conformance_through_the_stand_in(ext, kc, case):
    if not kc.can_implement(case.config)[0]:
        pytest.skip("not a layer of this kernel")
    testing.run_case(testing.gate_lifted(kc), case, device="cpu")
    n, k = case.config.weight_shape
    bits = 8 if kc is MX8 else 4
    decode = case.m <= configs.float_decode_max_m(n, k, bits) and configs.float_decode_applies(case.m, n, k, bits)
    assert ext.calls == ["decode" if decode else configs.w4a16_tile_for(case.m, n)]
    act = "bf16" if (case.config.act_dtype or BF) == BF else "fp16"
    assert ext.loaded == [f"{EXTENSIONS[kc]}-{act}"]  # this format's and activation dtype's extension only


@pytest.mark.parametrize("kc", [NV, MX, MX8], ids=lambda k: k.__name__)
def test_bad_inputs(ext, kc):
    testing.check_bad_inputs(testing.gate_lifted(kc))


def test_an_e4m3_nan_code_in_the_weight_is_refused(ext):
    from qlinear.layers import make_layer

    c = Mxfp8LinearLayerConfig((256, 512))
    params, _, _ = testing.make_case_layer(testing.Case(c, 1), "cpu")
    w = params["weight"].view(torch.uint8).clone()
    w[3, 7] = 0xFF
    layer = make_layer(c, dict(params, weight=w.view(params["weight"].dtype)))
    with pytest.raises(ValueError, match="weight: E4M3 NaN"):
        testing.gate_lifted(MX8).create(c).process_weights_after_loading(layer)


def test_float_extensions_build_the_formats_they_serve():
    assert all(s in build.FP4_BY_ACT["bf16"] for s in ("fp4_nv_bf16_m64.cu", "fp4_mx_bf16_m64.cu"))
    assert not any("_mx_" in s for s in build.FP4_BY_ACT["fp16"])  # MXFP4 takes bf16 only
    assert "mxfp8-bf16" in build.EXTENSIONS and "mxfp8-fp16" not in build.EXTENSIONS
    for srcs in (build.FP4_BY_ACT["bf16"], build.FP4_BY_ACT["fp16"], build.MXFP8_SOURCES):
        assert all((build.CSRC / s).is_file() for s in srcs)


def test_float_decode_rules():
    ok = configs.float_decode_applies
    assert ok(1, 4096, 4096, 4) and ok(16, 64, 128, 4) and ok(16, 64, 64, 8)
    assert not ok(17, 4096, 4096, 4) and not ok(0, 4096, 4096, 4) and not ok(1, 4096 + 16, 4096, 4)
    assert not ok(1, 4096, 4096 + 64, 4) and ok(1, 4096, 4096 + 64, 8)  # E2M1 chunks are 128 deep, E4M3 64
    mm = configs.float_decode_max_m
    assert mm(6144, 4096, 4) == 16 and mm(28672, 4096, 4) == 8 and mm(4096, 14336, 8) == 8 and mm(6144, 4096, 8) == 16


def test_run_decode_refuses_rows_it_cannot_take(ext):
    from qlinear.layers import make_layer

    c = NvFp4LinearLayerConfig((256, 512))
    params, _, _ = testing.make_case_layer(testing.Case(c, 1), "cpu")
    layer = make_layer(c, params)
    k = testing.gate_lifted(NV).create(c)
    k.process_weights_after_loading(layer)
    assert k._decode_max_m == 16
    x = torch.randn(17, 512, dtype=BF)
    with pytest.raises(ValueError, match="M <= 16"):
        k.run_decode(torch.empty(17, 256, dtype=BF), x, layer, None)
    k.run_decode(out := torch.empty(16, 256, dtype=BF), x[:16], layer, None)
    assert ext.calls == ["decode"] and torch.isfinite(out.float()).all()
