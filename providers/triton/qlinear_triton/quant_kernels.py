"""@triton.jit activation-quantization kernels (imported lazily, via ``quant.py`` / the GEMMs).

Numerics follow ``qlinear.formats`` exactly: fp32 math, IEEE division (``div_rn``, not the fast
reciprocal), round-half-to-even for INT8 (``torch.round``), FP8 scale = amax / 448 clamped to
MIN_SCALE, INT8 symmetric scale = amax / 127, asymmetric scale = (max - min) / 255 with the range
widened to include 0 and zero point round(-128 - min / s).
"""

from __future__ import annotations

from qlinear.formats.fp8 import MIN_SCALE as _MIN_SCALE

from .runtime import load

triton = load()
import triton.language as tl  # noqa: E402
from .launch import fast_kernels  # noqa: E402

FP8_MAX = 448.0
MIN_SCALE = _MIN_SCALE
INT8_MIN_SCALE = 1e-10  # qlinear.formats.int8 clamps its scales here


@triton.jit
def rne(v):
    """Round half to even (torch.round) with plain fp32 ops, so the interpreter runs it too.
    v - floor(v) is exact here (see the provider notes), so ties are detected exactly."""
    r = tl.floor(v)
    d = v - r
    odd = (r - 2.0 * tl.floor(r * 0.5)) != 0.0
    return tl.where((d > 0.5) | ((d == 0.5) & odd), r + 1.0, r)


@triton.jit
def fp8_scale(amax):
    return tl.maximum(tl.math.div_rn(amax, 448.0), 4.359654017857143e-06)  # MIN_SCALE = 1/(448*512)


@triton.jit
def to_fp8(x, s):
    """x (fp32) / s -> e4m3, saturating at +-448 like qlinear.formats.to_e4m3."""
    return tl.clamp(tl.math.div_rn(x, s), -448.0, 448.0).to(tl.float8e4nv)


@triton.jit
def to_int8(x, s, zp, HAS_ZP: tl.constexpr):
    """x (fp32) -> round(x / s) (+ zp), clamped to int8; returned as fp32 codes."""
    q = rne(tl.math.div_rn(x, s))
    if HAS_ZP:
        q = q + zp
    return tl.clamp(q, -128.0, 127.0)


@triton.jit
def int8_sym_scale(amax):
    return tl.maximum(tl.math.div_rn(amax, 127.0), 1e-10)


@triton.jit
def int8_asym_params(lo, hi):
    """Per-row (min, max) -> (scale, zero point as fp32 code)."""
    lo = tl.minimum(lo, 0.0)
    hi = tl.maximum(hi, 0.0)
    s = tl.maximum(tl.math.div_rn(hi - lo, 255.0), 1e-10)
    zp = tl.clamp(rne(-128.0 - tl.math.div_rn(lo, s)), -128.0, 127.0)
    return s, zp


# MODE: 0 = FP8 per token, 1 = INT8 symmetric per token, 2 = INT8 asymmetric per token
@triton.jit
def row_quant_kernel(x_ptr, q_ptr, s_ptr, zp_ptr, ub_ptr, K, stride_xm, stride_qm,
                     MODE: tl.constexpr, HAS_UB: tl.constexpr, BLOCK_K: tl.constexpr, ONE_PASS: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK_K)
    xrow = x_ptr + row * stride_xm
    qrow = q_ptr + row * stride_qm
    if ONE_PASS:  # the whole row fits one block: read x once
        mask = offs < K
        x = tl.load(xrow + offs, mask=mask, other=0.0).to(tl.float32)
        if MODE == 2:
            lo = tl.min(tl.where(mask, x, 0.0), axis=0)
            hi = tl.max(tl.where(mask, x, 0.0), axis=0)
        else:
            amax = tl.max(tl.abs(x), axis=0)
    else:
        acc = tl.zeros((BLOCK_K,), tl.float32)
        acc_lo = tl.zeros((BLOCK_K,), tl.float32)
        for k0 in range(0, K, BLOCK_K):
            mask = offs < K - k0
            x = tl.load(xrow + k0 + offs, mask=mask, other=0.0).to(tl.float32)
            if MODE == 2:
                acc = tl.maximum(acc, x)
                acc_lo = tl.minimum(acc_lo, x)
            else:
                acc = tl.maximum(acc, tl.abs(x))
        if MODE == 2:
            lo = tl.min(acc_lo, axis=0)
            hi = tl.max(acc, axis=0)
        else:
            amax = tl.max(acc, axis=0)
    if MODE == 0:
        if HAS_UB:
            amax = tl.minimum(amax, tl.load(ub_ptr).to(tl.float32))
        s = fp8_scale(amax)
    elif MODE == 1:
        s = int8_sym_scale(amax)
        zp = 0.0
    else:
        s, zp = int8_asym_params(lo, hi)
        tl.store(zp_ptr + row, zp.to(tl.int32))
    tl.store(s_ptr + row, s)
    if ONE_PASS:
        if MODE == 0:
            tl.store(qrow + offs, to_fp8(x, s), mask=mask)
        else:
            tl.store(qrow + offs, to_int8(x, s, zp, MODE == 2).to(tl.int8), mask=mask)
    else:
        for k0 in range(0, K, BLOCK_K):
            mask = offs < K - k0
            x = tl.load(xrow + k0 + offs, mask=mask, other=0.0).to(tl.float32)
            if MODE == 0:
                tl.store(qrow + k0 + offs, to_fp8(x, s), mask=mask)
            else:
                tl.store(qrow + k0 + offs, to_int8(x, s, zp, MODE == 2).to(tl.int8), mask=mask)


@triton.jit
def group_quant_kernel(x_ptr, q_ptr, s_ptr, K, stride_xm, stride_qm, stride_sm, stride_sg,
                       GROUP: tl.constexpr, GROUPS_PER_PROG: tl.constexpr):
    """FP8, one scale per 1 x GROUP block of a row (block-scaled FP8 activations)."""
    row = tl.program_id(0).to(tl.int64)
    g0 = tl.program_id(1) * GROUPS_PER_PROG
    gi = g0 + tl.arange(0, GROUPS_PER_PROG)
    cols = gi[:, None] * GROUP + tl.arange(0, GROUP)[None, :]
    mask = cols < K
    x = tl.load(x_ptr + row * stride_xm + cols, mask=mask, other=0.0).to(tl.float32)
    s = fp8_scale(tl.max(tl.abs(x), axis=1))
    tl.store(q_ptr + row * stride_qm + cols, to_fp8(x, s[:, None]), mask=mask)
    tl.store(s_ptr + row * stride_sm + gi * stride_sg, s, mask=gi * GROUP < K)


@triton.jit
def row_amax_kernel(x_ptr, amax_ptr, K, stride_xm, BLOCK_K: tl.constexpr):
    """amax of each row (first half of dynamic per-tensor FP8 quantization)."""
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_K,), tl.float32)
    for k0 in range(0, K, BLOCK_K):
        x = tl.load(x_ptr + row * stride_xm + k0 + offs, mask=offs < K - k0, other=0.0).to(tl.float32)
        acc = tl.maximum(acc, tl.abs(x))
    tl.store(amax_ptr + row, tl.max(acc, axis=0))


# MODE: 0 = FP8, 1 = INT8 symmetric, 2 = INT8 with zero point. DYNAMIC (FP8 only): the scale is
# max(row amaxes) / 448 from row_amax_kernel, else it is read from s_ptr (a static scale).
@triton.jit(do_not_specialize=["M"])  # M changes every call: one compile serves all
def tensor_quant_kernel(x_ptr, q_ptr, s_ptr, zp_ptr, amax_ptr, M, K, stride_xm, stride_qm, ROWS_PER_PROG,
                        MODE: tl.constexpr, DYNAMIC: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_R: tl.constexpr):
    pid = tl.program_id(0)
    offs = tl.arange(0, BLOCK_K)
    if DYNAMIC:
        ro = tl.arange(0, BLOCK_R)
        acc = tl.zeros((BLOCK_R,), tl.float32)
        for r0 in range(0, M, BLOCK_R):
            acc = tl.maximum(acc, tl.load(amax_ptr + r0 + ro, mask=ro < M - r0, other=0.0))
        s = fp8_scale(tl.max(acc, axis=0))
        if pid == 0:
            tl.store(s_ptr, s)
    else:
        s = tl.load(s_ptr).to(tl.float32)
    zp = 0.0
    if MODE == 2:
        zp = tl.load(zp_ptr).to(tl.float32)
    row0 = pid * ROWS_PER_PROG
    for i in range(0, ROWS_PER_PROG):
        r64 = (row0 + i).to(tl.int64)  # rows past M are masked below
        for k0 in range(0, K, BLOCK_K):
            mask = (offs < K - k0) & (r64 < M)
            x = tl.load(x_ptr + r64 * stride_xm + k0 + offs, mask=mask, other=0.0).to(tl.float32)
            if MODE == 0:
                tl.store(q_ptr + r64 * stride_qm + k0 + offs, to_fp8(x, s), mask=mask)
            else:
                tl.store(q_ptr + r64 * stride_qm + k0 + offs, to_int8(x, s, zp, MODE == 2).to(tl.int8), mask=mask)


fast_kernels(globals())  # repeat launches skip triton's binder (launch.py)
