"""CPU tests of the CUTLASS W4A8 kernel's Python side: the 8-bit reorder atom (a bijection, the
documented slots), the lookup encoding of the int4 codes, the per-group E4M3 tables (decoded the way
the kernel's prmt converter reads them, they give exactly the format's e4m3(q * s_g)), the gates and
reasons, the tile buckets, and the whole load-and-apply path through the conformance kit against a
stand-in ``w4a8_mm`` that decodes the re-laid buffers the way the CUDA kernel does (its arithmetic is
checked on the GPU in test_cutlass_w4a8_gpu.py). The C++ side of the layout is compared in
test_cutlass_compile.py."""

import pytest
import torch

pytest.importorskip("qlinear_cutlass")

from qlinear import testing  # noqa: E402
from qlinear.config import W4A8LinearLayerConfig  # noqa: E402
from qlinear.formats.fp8 import quantize_fp8_activation  # noqa: E402
from qlinear.formats.int_pack import pack_along  # noqa: E402
from qlinear.formats.w4a8 import quantize_w4a8, scaled_codes  # noqa: E402
from qlinear_cutlass import build, configs  # noqa: E402
from qlinear_cutlass import w4a8_layout as L  # noqa: E402
from qlinear_cutlass.w4a8 import CutlassW4A8LinearKernel  # noqa: E402

BF, FP = torch.bfloat16, torch.float16


# ---- the re-lay ------------------------------------------------------------------------------
@pytest.mark.parametrize("n,k", [(16, 32), (32, 128), (48, 256)])
def test_reorder_is_a_bijection_and_round_trips(n, k):
    off = L.W4A8_ATOM.offsets(n, k)
    assert torch.equal(off.reshape(-1).sort().values, torch.arange(n * k))
    codes = torch.randint(0, 16, (n, k), dtype=torch.uint8, generator=torch.Generator().manual_seed(n + k))
    packed = L.W4A8_ATOM.reorder(codes)
    assert packed.dtype == torch.uint8 and packed.numel() == n * k // 2
    assert torch.equal(L.W4A8_ATOM.unreorder(packed, n, k), codes)
    flat = torch.stack([packed & 0xF, packed >> 4], 1).reshape(-1)  # element 2i in the low nibble
    assert torch.equal(flat[off.reshape(-1)].reshape(n, k), codes)


def test_atom_slots_match_the_documented_formula():
    off = L.W4A8_ATOM.offsets(16, 32)
    # n = a + 8 b, k = c + 4 d + 16 e -> 64 a + 4 b + c + 16 d + 8 e
    assert off[0, 0] == 0 and off[0, 1] == 1 and off[0, 4] == 16 and off[0, 16] == 8
    assert off[1, 0] == 64 and off[8, 0] == 4 and off[9, 17] == 64 + 4 + 1 + 8
    # a thread's 16 values of a k-block (c, b, e for fixed a, d) are 8 consecutive bytes
    assert sorted(int(off[n, k]) for n in (2, 10) for k in (4, 5, 6, 7, 20, 21, 22, 23)) == list(range(144, 160))
    # atoms N-fastest: the next 16 rows start at 512, the next 32 columns after all N rows
    assert L.W4A8_ATOM.offsets(32, 64)[16, 0] == 512 and L.W4A8_ATOM.offsets(32, 64)[0, 32] == 32 * 32


def test_reorder_refuses_partial_atoms():
    with pytest.raises(ValueError, match="K=48 of 32"):
        L.W4A8_ATOM.offsets(16, 48)


def test_lookup_encoding_is_unified_sign_magnitude():
    q = torch.arange(-8, 8)
    enc = L.encode_codes(q)
    # negatives keep two's complement, positives are 8 - q, zero is 0 (CUTLASS's unified encoding)
    assert enc.tolist() == [8, 9, 10, 11, 12, 13, 14, 15, 0, 7, 6, 5, 4, 3, 2, 1]
    assert torch.equal(L.decode_codes(enc), q.to(torch.int32))


def test_scale_tables_hold_the_eight_negative_products():
    s = torch.tensor([[1.0, 0.5], [56.0, 0.0]]).to(torch.float8_e4m3fn)  # [N=2, G=2]
    t = L.scale_tables(s)
    assert t.shape == (2, 2, 8) and t.dtype == torch.uint8
    v = t.view(torch.float8_e4m3fn).float()
    assert v[0, 0].tolist() == [-8, -7, -6, -5, -4, -3, -2, -1]
    assert v[1, 0].tolist() == [-4, -3.5, -3, -2.5, -2, -1.5, -1, -0.5]
    assert v[0, 1].tolist() == [-448, -384, -320, -288, -224, -160, -112, -56]  # 7 * 56 = 392 rounds to 384
    assert (v[1, 1] == 0).all()


@pytest.mark.parametrize("group", [128, 256, -1])
def test_lookup_of_the_relaid_buffers_is_the_format(group):
    n, k = 48, 512
    g = torch.Generator().manual_seed(group + 9)
    p = quantize_w4a8(torch.randn(n, k, generator=g) * torch.rand(n, 1, generator=g), group)
    q = L.decode_codes(L.encode_codes(torch.randint(-8, 8, (n, k), generator=g)))  # every code, arbitrary scales too
    p["weight_packed"] = pack_along(q + 8, 4, 1)
    packed = L.weight_int4(p["weight_packed"])
    codes = L.W4A8_ATOM.unreorder(packed, n, k)
    gs = k if group == -1 else group
    got = L.lookup(codes, L.scale_tables(p["weight_scale"]), gs)
    want = scaled_codes(q, p["weight_scale"], gs)
    assert torch.equal(got, want)


def test_scale_tables_refuse_scales_past_56():
    with pytest.raises(ValueError, match=r"weight_scale: W4A8 group scales must lie in \[0, 56\]"):
        L.scale_tables(torch.tensor([[60.0]]))


# ---- gates -----------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg,why", [
    (W4A8LinearLayerConfig((256, 512), 64), "group_size 64 must be a multiple of 128"),
    (W4A8LinearLayerConfig((200, 512), 128), "N=200 must be a multiple of 16"),
    (W4A8LinearLayerConfig((256, 192), -1), "K=192 must be a multiple of 128"),
    (W4A8LinearLayerConfig((256, 512), 128, torch.float32), "input dtype torch.float32"),
    (W4A8LinearLayerConfig((256, 512), 128, BF, torch.float32), "out_dtype torch.float32"),
])
def test_refusals_name_the_reason(cfg, why):
    ok, reason = CutlassW4A8LinearKernel.can_implement(cfg)
    assert not ok and why in reason


def test_accepts_groups_of_128_256_and_channel():
    for g in (128, 256, -1):
        for dt in (BF, FP):
            assert CutlassW4A8LinearKernel.can_implement(W4A8LinearLayerConfig((256, 512), g, dt)) == (True, None)
    assert CutlassW4A8LinearKernel.can_implement(W4A8LinearLayerConfig((256, 512), 128, BF, FP)) == (True, None)


def test_tile_buckets(monkeypatch):
    assert [configs.w4a8_tile_for(m, 28672) for m in (1, 64, 65, 256, 257, 4096)] == [0, 0, 1, 1, 2, 2]
    # above M=256 the 128x256 tile only where its tiles fill 2/3 of the SMs (the H200 sweep)
    assert [configs.w4a8_tile_for(512, n) for n in (4096, 6144, 28672)] == [1, 2, 2]
    assert configs.w4a8_tile_for(1024, 4096) == 2
    monkeypatch.setenv("QLINEAR_CUTLASS_W4A8_TILE", "large")
    assert configs.w4a8_forced() == configs.LARGE
    monkeypatch.setenv("QLINEAR_CUTLASS_W4A8_TILE", "huge")
    with pytest.raises(ValueError, match="QLINEAR_CUTLASS_W4A8_TILE"):
        configs.w4a8_forced()


# ---- the load-and-apply path through a stand-in extension ------------------------------------
class StandInW4A8:
    """Decodes the re-laid buffers as the CUDA kernel does: lookup, FP8 x FP8 sums in fp32, scales and
    bias in the epilogue; the per-token quantizer is the reference's."""

    def __init__(self):
        self.calls = []

    def quant_fp8_per_token(self, x, q, scale):
        assert x.dtype in (BF, FP) and x.stride(1) == 1 and x.stride(0) % 8 == 0 and x.data_ptr() % 16 == 0
        assert q.dtype == torch.float8_e4m3fn and q.shape == x.shape and scale.dtype == torch.float32
        xq, s = quantize_fp8_activation(x, "token")
        q.copy_(xq)
        scale.copy_(s.reshape(-1))

    def w4a8_mm(self, out, xq, token_scale, w, lut, chan, bias, group, config):
        self.calls.append(config)
        m, k = xq.shape
        n = out.shape[1]
        assert xq.dtype == torch.float8_e4m3fn and out.dtype in (BF, FP) and out.shape == (m, n)
        assert n % 16 == 0 and k % 128 == 0 and k % group == 0 and (group % 128 == 0 or group == k)
        assert w.dtype == torch.uint8 and w.is_contiguous() and w.numel() == n * k // 2
        assert lut.dtype == torch.uint8 and lut.shape == (k // group, n, 8)
        assert chan.dtype == torch.float32 and chan.shape == (n,) and token_scale.shape == (m,)
        assert config in (0, 1, 2)
        wv = L.lookup(L.W4A8_ATOM.unreorder(w, n, k), lut, group)
        r = (xq.float() @ wv.t()) * token_scale.view(m, 1) * chan.view(1, n)
        if bias is not None:
            assert bias.dtype == out.dtype and bias.numel() == n
            r = r + bias.float()
        out.copy_(r)


@pytest.fixture
def ext(monkeypatch):
    fake = StandInW4A8()
    monkeypatch.setattr(build, "load_w4a8_extension", lambda: fake)
    return fake


RUNNABLE = testing.gate_lifted(CutlassW4A8LinearKernel)
LARGER = [W4A8LinearLayerConfig((1024, 512), 128), W4A8LinearLayerConfig((512, 1024), 256, FP),
          W4A8LinearLayerConfig((256, 1024), -1, BF, FP)]


@pytest.mark.parametrize("case", [c for c in testing.cases_for(CutlassW4A8LinearKernel, ms=(1, 33))
                                  + testing.cases_for(CutlassW4A8LinearKernel, ms=(65, 600), configs=LARGER)
                                  if CutlassW4A8LinearKernel.can_implement(c.config)[0]], ids=str)
def test_conformance_through_the_stand_in(ext, case):
    testing.run_case(RUNNABLE, case, device="cpu")
    assert ext.calls == [configs.w4a8_tile_for(case.m, case.config.weight_shape[0])]


def test_kit_has_accepted_layers():
    accepted = [c for c in testing.default_configs("w4a8") if CutlassW4A8LinearKernel.can_implement(c)[0]]
    assert {c.group_size for c in accepted} >= {128, 256, -1} and {c.input_dtype for c in accepted} == {BF, FP}


def test_bad_inputs(ext):
    testing.check_bad_inputs(RUNNABLE)


def test_selected_for_w4a8_on_a_simulated_h100():
    from qlinear import select, simulate_platform

    with simulate_platform("sm90"):
        sel = select(W4A8LinearLayerConfig((4096, 4096), 128))
    assert sel.kernel.__name__ == "CutlassW4A8LinearKernel", sel
