"""NVFP4 / MXFP4 weight-only through the W4A16 kernels, on CPU through Triton's interpreter: the
E2M1 and scale decodes over every code, the re-layout, the conformance kit on every path (GEMV at
M = 1, 2; tensor-core tiles at 16, 33; the dense dequantize + GEMM path), and the load-time refusals.
test_kernels_cpu.py also runs the kit at M = 1, 33 and the bad-input checks for these classes;
test_fp4_gpu.py compiles them on CUDA."""

import pytest
import torch

from qlinear import testing
from qlinear.formats.codes import E2M1_VALUES, FP8, e2m1_decode, e8m0_decode, pack_fp4, unpack_fp4
from qlinear.formats.int_pack import pack_along

from .conftest import interpreter_only, runnable_here

triton = pytest.importorskip("triton")
tl = triton.language
pytestmark = interpreter_only

from qlinear_triton import w4a16_kernels as wk  # noqa: E402  (TRITON_INTERPRET is set by conftest)
from qlinear_triton.fp4 import (MX_MAX_CODE, TritonMxFp4WeightOnlyKernel, TritonNvFp4WeightOnlyKernel,  # noqa: E402
                                fp4_words, mxfp4_scale_rows, nvfp4_scale_rows)
from qlinear_triton.mp import repack_w4  # noqa: E402

KERNELS = (TritonNvFp4WeightOnlyKernel, TritonMxFp4WeightOnlyKernel)
# The kernels see the same quantized weight as the reference and decode it exactly: what is left is
# the 16-bit output rounding (about 1.7e-3 in bf16, 2e-4 in fp16 here) and fp32 sum order. Much
# tighter than the family tolerance (5e-2, sized for activation quantization), so a decode that is
# off by one code or one scale step fails.
TOL = 4e-3


# ---- the decodes, every code ------------------------------------------------------------------
def test_e2m1_fp16_bits_formula():
    """h = (c & 7) << 9 | (c & 8) << 12, read as fp16, is value(c) * 2^-14 for all 16 codes
    (subnormal e = 0 codes included), against qlinear.formats.codes."""
    c = torch.arange(16, dtype=torch.int32)
    h = ((c & 7) << 9) | ((c & 8) << 12)
    got = h.to(torch.int16).view(torch.float16).double()
    want = torch.tensor(E2M1_VALUES, dtype=torch.float64) * 2.0**-14
    assert torch.equal(got, want)
    assert torch.equal(torch.signbit(got), torch.signbit(want))  # -0 (code 8) keeps its sign
    assert torch.equal(e2m1_decode(c.to(torch.uint8), torch.float64), want * 2.0**14)


@triton.jit
def _decode_kernel(w_ptr, s_ptr, out_ptr, dot_ptr, pair_ptr, f_ptr, DT: tl.constexpr):
    """The kernels' decodes on a [16, 64] word tile (their [16, BN] shapes) and one scale row."""
    r16 = tl.arange(0, 16)
    cols = tl.arange(0, 64)
    w = tl.load(w_ptr + r16[:, None] * 64 + cols[None, :])
    for j in tl.static_range(8):
        tl.store(out_ptr + j * 1024 + r16[:, None] * 64 + cols[None, :], wk._e2m1(w, j))
        tl.store(dot_ptr + j * 1024 + r16[:, None] * 64 + cols[None, :], wk._e2m1_dot(w, j, DT).to(tl.float32))
    for p in tl.static_range(4):
        lo, hi = wk._e2m1_pair(w, p)
        tl.store(pair_ptr + p * 1024 + r16[:, None] * 64 + cols[None, :], lo)
        tl.store(pair_ptr + (p + 4) * 1024 + r16[:, None] * 64 + cols[None, :], hi)
    tl.store(f_ptr + cols[None, :], wk._fp4_factor(s_ptr, 0, cols, 64))


@pytest.mark.parametrize("dt", (torch.bfloat16, torch.float16), ids=str)
def test_e2m1_decode_in_kernel(dt):
    """The kernels' _e2m1 and the GEMV's _e2m1_pair (nibbles p, p + 4 at once) over all 16 codes in
    every nibble position (sign bit 31 included), and the tensor-core operand _e2m1_dot: bit-exact."""
    codes = torch.arange(16 * 64, dtype=torch.int64).reshape(16, 64, 1) + torch.arange(8) * 5
    codes = codes % 16  # [16, 64, 8]: each word holds 8 different codes
    words = pack_along(codes.reshape(16, 64 * 8), 4, 1).reshape(16, 64)  # nibble j = codes[..., j]
    out, dot, pair = (torch.empty(8, 16, 64) for _ in range(3))
    f = torch.empty(64)
    s = torch.ones(64, dtype=torch.bfloat16)
    _decode_kernel[(1,)](words, s, out, dot, pair, f, DT=tl.bfloat16 if dt == torch.bfloat16 else tl.float16)
    want = e2m1_decode(codes.permute(2, 0, 1).to(torch.uint8), torch.float64)  # [8, 16, 64]
    for got in (out, pair):
        assert torch.equal(got.double(), want * 2.0**-14)
        assert torch.equal(torch.signbit(got), torch.signbit(want))
    assert torch.equal(dot.double(), want * (2.0**-14 if dt == torch.bfloat16 else 1.0))


def test_scale_rows_every_code():
    """The bf16 scale rows the kernels read: every finite E4M3 byte and every E8M0 code the load
    allows (times the decode's 2^14), bit-exact against qlinear.formats.codes; and the kernel's
    _fp4_factor reads them into fp32 unchanged."""
    e4 = torch.arange(256, dtype=torch.int32)
    e4 = e4[(e4 & 0x7F) != 0x7F].to(torch.uint8).reshape(2, 127)  # the 254 finite codes as [N=2, G=127]
    rows = nvfp4_scale_rows(e4)
    assert rows.shape == (127, 2) and rows.dtype == torch.bfloat16
    assert torch.equal(rows.t().double(), e4.view(FP8).double())
    mx = torch.arange(MX_MAX_CODE + 1, dtype=torch.int32).to(torch.uint8).reshape(1, -1)
    assert torch.equal(mxfp4_scale_rows(mx).t().double(), e8m0_decode(mx).double() * 2.0**14)
    words = torch.zeros(16, 64, dtype=torch.int32)
    scratch = torch.empty(8, 16, 64)
    s = mxfp4_scale_rows(mx).reshape(-1)[:64].contiguous()
    f = torch.empty(64)
    _decode_kernel[(1,)](words, s, scratch, scratch, scratch, f, DT=tl.bfloat16)
    assert torch.equal(f.double(), s.double())


def test_fp4_words_is_repack_of_k_packed_codes():
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 16, (24, 200), generator=g, dtype=torch.uint8)
    packed = pack_fp4(codes)
    assert torch.equal(unpack_fp4(packed), codes)
    assert torch.equal(fp4_words(packed, 200), repack_w4(pack_along(codes.to(torch.int32), 4, 1), 200))


# ---- the conformance kit on every path -------------------------------------------------------
def _cases(kernel, ms):
    return [pytest.param(kernel, c, id=f"{kernel.__name__}-{c}") for c in testing.cases_for(kernel, ms=ms)]


def _tight_cases():
    """M = 2, 16 on every kit layer; M = 1, 33 (also run by test_kernels_cpu at the family
    tolerance) on the bf16 and fp16 256x512 layers: keeps the interpreter time modest."""
    out = []
    for k in KERNELS:
        cfgs = testing.default_configs(k.family)
        out += _cases(k, (2, 16)) + [pytest.param(k, c, id=f"{k.__name__}-{c}")
                                      for c in testing.cases_for(k, ms=(1, 33), configs=[cfgs[0], cfgs[2]])]
    return out


@pytest.mark.parametrize("kernel,case", _tight_cases())
def test_conformance_tight(kernel, case):
    """GEMV (M = 1, 2) and split-K tiles (16, 33), at a tolerance only output rounding passes."""
    assert testing.run_case(runnable_here(kernel), case, device="cpu", tolerance=TOL).ran


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.__name__)
def test_dense_path_conformance(kernel):
    """The dequantize + GEMM path (forced from 1 row), every kit layer, M = 40."""
    dense = type(kernel.__name__, (runnable_here(kernel),), {"dense_min_m": 1})
    res = testing.check_kernel(dense, device="cpu", cases=testing.cases_for(kernel, ms=(40,)), min_ran=3)
    assert all(r.error <= TOL for r in res if r.ran), [(str(r.case), r.error) for r in res]


# ---- refusals --------------------------------------------------------------------------------
def _layer(kernel, dt=torch.bfloat16):
    from qlinear.layers import make_layer

    case = testing.cases_for(kernel, ms=(1,))[0 if dt == torch.bfloat16 else 2]
    params, x, _ = testing.make_case_layer(case, "cpu")
    return case.config, make_layer(case.config, params), x


def test_mxfp4_scale_range_refused():
    c, layer, _ = _layer(TritonMxFp4WeightOnlyKernel)
    k = runnable_here(TritonMxFp4WeightOnlyKernel).create(c)
    layer.weight_scale.data[0, 0] = MX_MAX_CODE + 1
    with pytest.raises(ValueError, match="weight_scale: E8M0 code 241"):
        k.process_weights_after_loading(layer)
    layer.weight_scale.data[0, 0] = 255
    with pytest.raises(ValueError, match="weight_scale: E8M0 code 255"):
        k.process_weights_after_loading(layer)


def test_mxfp4_largest_allowed_scale_runs():
    """A block scaled by 2^113 (code 240, the largest accepted) decodes without overflow."""
    c, layer, x = _layer(TritonMxFp4WeightOnlyKernel)
    from qlinear.formats import reference_linear

    layer.weight_scale.data[:, :] = 100
    layer.weight_scale.data[3, 0] = MX_MAX_CODE  # column 3's first block 2^113: only output 3 is huge
    params = {"weight": layer.weight.data.clone(), "weight_scale": layer.weight_scale.data.clone()}
    x = x.float()
    x[:, 32:] = 0  # keep column 3's output finite in bf16: only the huge block meets x
    x[:, :32] *= 2.0**-100
    x = x.bfloat16()
    k = runnable_here(TritonMxFp4WeightOnlyKernel).create(c)
    k.process_weights_after_loading(layer)
    out = k.apply(layer, x).double()
    ref = reference_linear(c, params, x, quantize_activation=False)
    assert torch.isfinite(out).all()
    err = float((out[:, 3] - ref[:, 3]).norm() / ref[:, 3].norm())
    assert err < TOL, err


@pytest.mark.parametrize("gs", (0.0, float("inf"), float("nan"), 1e-38))
def test_nvfp4_global_scale_refused(gs):
    c, layer, _ = _layer(TritonNvFp4WeightOnlyKernel)
    layer.weight_global_scale.data.fill_(gs)
    with pytest.raises(ValueError, match="weight_global_scale"):
        runnable_here(TritonNvFp4WeightOnlyKernel).create(c).process_weights_after_loading(layer)


def test_nvfp4_nan_scale_refused():
    c, layer, _ = _layer(TritonNvFp4WeightOnlyKernel)
    layer.weight_scale.data.view(torch.uint8)[1, 2] = 0xFF
    with pytest.raises(ValueError, match="weight_scale: an E4M3 NaN"):
        runnable_here(TritonNvFp4WeightOnlyKernel).create(c).process_weights_after_loading(layer)


def test_can_implement_reasons():
    from qlinear.config import MxFp4LinearLayerConfig, NvFp4LinearLayerConfig

    ok, why = TritonNvFp4WeightOnlyKernel.can_implement(NvFp4LinearLayerConfig((252, 512), torch.bfloat16))
    assert not ok and "N=252" in why
    ok, why = TritonMxFp4WeightOnlyKernel.can_implement(MxFp4LinearLayerConfig((256, 512), torch.float32))
    assert not ok and "act_dtype" in why
    assert TritonMxFp4WeightOnlyKernel.can_implement(MxFp4LinearLayerConfig((256, 512), torch.float16))[0]
    assert TritonNvFp4WeightOnlyKernel.quantizes_activation is False
    # below marlin's float weight-only kernels (15): measured slower than them on the H200
    assert TritonNvFp4WeightOnlyKernel.priority == TritonMxFp4WeightOnlyKernel.priority == 14
