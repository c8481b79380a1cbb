"""@triton.jit GEMMs for W8A8: one scaled-mm kernel for INT8 and FP8 (per-tensor / per-row
activation scales x per-tensor / per-column weight scales, optional activation zero point) and a
block-scaled FP8 kernel (1 x 128 activation groups, 128 x 128 weight blocks).

Operands: A [M, K] row-major; B is the weight as stored, [N, K] with K contiguous (the layer's
[K, N] view's storage), which is the K-major operand FP8/INT8 tensor cores want; strides are passed
so no copy is made. Imported lazily.
"""

from __future__ import annotations

from .quant_kernels import fp8_scale, int8_asym_params, int8_sym_scale, load, tl, to_fp8, to_int8  # noqa: F401

triton = load()
from .launch import fast_kernels  # noqa: E402


@triton.jit
def _tile_ids(M, N, BM: tl.constexpr, BN: tl.constexpr, GROUP_M: tl.constexpr):
    """Grouped tile order: GROUP_M row-tiles share their B column tiles while they are in L2."""
    pid = tl.program_id(0)
    grid_m = tl.cdiv(M, BM)
    grid_n = tl.cdiv(N, BN)
    width = GROUP_M * grid_n
    group = pid // width
    first_m = group * GROUP_M
    size_m = tl.minimum(grid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % width) % size_m
    pid_n = (pid % width) // size_m
    return pid_m, pid_n


@triton.jit
def _row_quant_params(a_ptrs, stride_ak, rk, K, ub_ptr, rmask, BM: tl.constexpr, BK: tl.constexpr,
                      IS_INT8: tl.constexpr, AZP: tl.constexpr, HAS_UB: tl.constexpr):
    """A_MODE 2 prologue: read the [BM, K] rows of A (16-bit) for their amax (min/max for asymmetric
    INT8) -> per-row (scale, zero point as an fp32 code; 0 when symmetric)."""
    hi = tl.zeros((BM,), dtype=tl.float32)
    lo = tl.zeros((BM,), dtype=tl.float32)
    for k0 in range(0, K, BK):
        xa = tl.load(a_ptrs + k0 * stride_ak, mask=rmask & (rk[None, :] < K - k0), other=0.0).to(tl.float32)
        if AZP == 2:
            hi = tl.maximum(hi, tl.max(xa, axis=1))
            lo = tl.minimum(lo, tl.min(xa, axis=1))
        else:
            hi = tl.maximum(hi, tl.max(tl.abs(xa), axis=1))
    a_zp = hi * 0.0
    if IS_INT8:
        if AZP == 2:
            a_s, a_zp = int8_asym_params(lo, hi)
        else:
            a_s = int8_sym_scale(hi)
    else:
        if HAS_UB:
            hi = tl.minimum(hi, tl.load(ub_ptr).to(tl.float32))
        a_s = fp8_scale(hi)
    return a_s, a_zp


@triton.jit
def _quant_a(a, a_s, a_zp, kmask, IS_INT8: tl.constexpr, AZP: tl.constexpr, EVEN_K: tl.constexpr):
    """A_MODE 1 / 2: a 16-bit slab of A -> its int8 / e4m3 codes; the scale and zero point (per row,
    or the static ones) come broadcastable against it."""
    af = a.to(tl.float32)
    if IS_INT8:
        if AZP != 0:
            q = to_int8(af, a_s, a_zp, True)
        else:
            q = to_int8(af, a_s, 0.0, False)
        if not EVEN_K:  # padded columns must contribute 0, not the zero point
            q = tl.where(kmask, q, 0.0)
        q = q.to(tl.int8)
    else:
        q = to_fp8(af, a_s)
    return q


@triton.jit
def _scaled_epilogue(acc, a_s, a_zp, c_ptr, as_ptr, bs_ptr, bias_ptr, azp_ptr, azp_adj_ptr, rm, rn, ram, rbn,
                     M, N, stride_cm, stride_cn, stride_cs, pid_s, SPLIT_K: tl.constexpr, A_MODE: tl.constexpr,
                     A_PER_ROW: tl.constexpr, B_PER_COL: tl.constexpr, AZP: tl.constexpr, HAS_BIAS: tl.constexpr,
                     nf):
    """Zero-point correction, activation x weight scales, bias, store (fp32 partials with split-K).
    A_MODE 1: ``nf`` (per row, 0 or NaN) is added last, so a row whose 16-bit A held NaN/inf comes
    out NaN although its static-scale codes were finite."""
    if AZP != 0:
        adj = tl.load(azp_adj_ptr + rbn)
        if SPLIT_K > 1:
            adj = tl.where(pid_s == 0, adj, 0)  # the correction is applied once, by split 0
        if AZP == 1:
            zp = tl.load(azp_ptr)
            acc = acc - zp * adj[None, :]
        elif A_MODE == 2:
            acc = acc - a_zp.to(tl.int32)[:, None] * adj[None, :]
        else:
            zp = tl.load(azp_ptr + ram)
            acc = acc - zp[:, None] * adj[None, :]
    out = acc.to(tl.float32)
    if A_MODE == 2:
        out = out * a_s[:, None]
    elif A_MODE == 1:
        out = out * a_s
    elif A_PER_ROW:
        out = out * tl.load(as_ptr + ram)[:, None]
    else:
        out = out * tl.load(as_ptr)
    if B_PER_COL:
        out = out * tl.load(bs_ptr + rbn)[None, :]
    else:
        out = out * tl.load(bs_ptr)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + rbn).to(tl.float32)
        if SPLIT_K > 1:
            bias = tl.where(pid_s == 0, bias, 0.0)
        out = out + bias[None, :]
    if A_MODE == 1:
        out = out + nf[:, None]
    c_ptrs = c_ptr + pid_s.to(tl.int64) * stride_cs + rm[:, None].to(tl.int64) * stride_cm + rn[None, :] * stride_cn
    tl.store(c_ptrs, out.to(c_ptr.dtype.element_ty), mask=(rm[:, None] < M) & (rn[None, :] < N))


# A_MODE 0: A is already quantized (int8 / e4m3), its scale per tensor (as_ptr[0]) or per row.
# A_MODE 1 (decode sizes, static schemes): A is 16-bit and is quantized here with the static scale
# as_ptr[0] (and zero point azp_ptr[0], AZP 1), the codes the separate quantizer would give; each
# program also sums 0 * a over its rows, 0 or NaN, and adds it to its outputs: a row holding NaN/inf
# comes out NaN although a static scale would have clamped inf to a finite code (what QuantLinear
# otherwise checks with two more launches, each as long as this GEMM at M=1).
# A_MODE 2 (decode sizes): A is 16-bit and is quantized here per row (FP8 per token with the
# optional upper bound ub_ptr[0], or INT8 symmetric / asymmetric when AZP == 2): a prologue reads each
# row for its amax (min/max), so quantization and GEMM are one launch. Every program re-quantizes
# its [BM, K] slab of A (IEEE divisions included), so this only pays while BM * K is small next to
# the weight bytes a program streams; tools/triton_bench.py times it against the separate quantizer.
# AZP: 0 none, 1 one zero point for all rows (azp_ptr[0]), 2 one per row. The zero-point correction
# is exact integer math: sum_k (q - zp) w = q @ w - zp * azp_adj[n], azp_adj = column sums of W.
# SPLIT_K > 1 (decode on narrow layers, where N / BN tiles can't fill the SMs): program_id(1) takes
# K range [s * k_split, (s + 1) * k_split), applies the scales (they are linear) and, in split 0 only,
# the zero-point correction and bias, and writes fp32 partials to c_ptr + s * stride_cs; then
# splitk_reduce_kernel sums them in a fixed order (deterministic, no atomics).
@triton.jit(do_not_specialize=["M"])  # M changes every call: one compile serves all
def scaled_mm_kernel(a_ptr, b_ptr, c_ptr, as_ptr, bs_ptr, bias_ptr, azp_ptr, azp_adj_ptr, ub_ptr,
                     M, N, K, stride_am, stride_ak, stride_bn, stride_bk, stride_cm, stride_cn,
                     k_split, stride_cs, SPLIT_K: tl.constexpr, IS_INT8: tl.constexpr, A_MODE: tl.constexpr, A_PER_ROW: tl.constexpr,
                     B_PER_COL: tl.constexpr, AZP: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_UB: tl.constexpr,
                     BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP_M: tl.constexpr,
                     EVEN_K: tl.constexpr):
    pid_m, pid_n = _tile_ids(M, N, BM, BN, GROUP_M)
    rm = pid_m * BM + tl.arange(0, BM)
    rn = pid_n * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    # out-of-range columns are clamped (computed and dropped); out-of-range rows are masked off in the
    # A loads: clamped onto row 0, every program's padding rows hit the same few L2 lines at once,
    # which cost 2x at M=32 with 64-row tiles (and more for one row in 16-row tiles) on the H100
    ram = tl.where(rm < M, rm, 0)
    amask = (rm < M)[:, None]
    rbn = tl.where(rn < N, rn, 0)
    a_ptrs = a_ptr + ram[:, None].to(tl.int64) * stride_am + rk[None, :] * stride_ak
    b_ptrs = b_ptr + rbn[None, :].to(tl.int64) * stride_bn + rk[:, None] * stride_bk
    pid_s = tl.program_id(1)
    k_lo = 0
    k_hi = K
    if SPLIT_K > 1:
        k_lo = pid_s * k_split
        k_hi = tl.minimum(K, k_lo + k_split)
    a_s = tl.zeros((BM,), dtype=tl.float32)
    a_zp = a_s
    nf = a_s  # A_MODE 1: sum over the row of 0 * a: 0, or NaN where a holds NaN/inf
    if A_MODE == 2:
        a_s, a_zp = _row_quant_params(a_ptrs, stride_ak, rk, K, ub_ptr, amask, BM, BK, IS_INT8, AZP, HAS_UB)
    elif A_MODE == 1:
        a_s, a_zp = _static_quant_params(as_ptr, azp_ptr, AZP)
    if IS_INT8:
        acc = tl.zeros((BM, BN), dtype=tl.int32)
    else:
        acc = tl.zeros((BM, BN), dtype=tl.float32)
    a_ptrs += k_lo * stride_ak
    b_ptrs += k_lo * stride_bk
    for k0 in range(k_lo, k_hi, BK):
        zero = 0 if IS_INT8 and A_MODE == 0 else 0.0  # `other`: an int for int8, a float for fp8/16-bit
        if EVEN_K:
            a = tl.load(a_ptrs, mask=amask, other=zero)
            b = tl.load(b_ptrs)
        else:
            a = tl.load(a_ptrs, mask=amask & (rk[None, :] < K - k0), other=zero)
            b = tl.load(b_ptrs, mask=rk[:, None] < K - k0, other=0 if IS_INT8 else 0.0)
        if A_MODE == 2:
            a = _quant_a(a, a_s[:, None], a_zp[:, None], rk[None, :] < K - k0, IS_INT8, AZP, EVEN_K)
        elif A_MODE == 1:
            nf += tl.sum(a.to(tl.float32) * 0.0, axis=1)
            a = _quant_a(a, a_s, a_zp, rk[None, :] < K - k0, IS_INT8, AZP, EVEN_K)
        if IS_INT8:
            acc = tl.dot(a, b, acc, out_dtype=tl.int32)
        else:
            acc = tl.dot(a, b, acc)
        a_ptrs += BK * stride_ak
        b_ptrs += BK * stride_bk
    _scaled_epilogue(acc, a_s, a_zp, c_ptr, as_ptr, bs_ptr, bias_ptr, azp_ptr, azp_adj_ptr, rm, rn, ram, rbn,
                     M, N, stride_cm, stride_cn, stride_cs, pid_s, SPLIT_K, A_MODE, A_PER_ROW, B_PER_COL, AZP, HAS_BIAS,
                     nf)


@triton.jit
def _static_quant_params(as_ptr, azp_ptr, AZP: tl.constexpr):
    """A_MODE 1: the static per-tensor scale (and zero point as an fp32 code) as scalars."""
    a_s = tl.load(as_ptr).to(tl.float32)
    a_zp = a_s * 0.0
    if AZP == 1:
        a_zp = tl.load(azp_ptr).to(tl.float32)
    return a_s, a_zp


@triton.jit
def _byte(w, j: tl.constexpr, IS_INT8: tl.constexpr):
    """Byte j of each word: INT8 -> its int32 value; E4M3 -> an fp32 holding value * 2^-120,
    exactly (subnormals included), by moving sign, exponent and mantissa bits into place: two
    shifts and one and-or per weight, where Triton's conversion took ~8 instructions."""
    t = w << (24 - 8 * j)  # the byte at the top of the word
    if IS_INT8:
        v = t >> 24  # arithmetic shift: sign-extended
    else:
        v = (((t >> 4) & 0x07F00000) | (t & -2147483648)).to(tl.float32, bitcast=True)  # sign: bit 31
    return v


@triton.jit
def _gemv_a(a_ptr, cols, K, a_s, a_zp, zero, A_MODE: tl.constexpr, IS_INT8: tl.constexpr, AZP: tl.constexpr,
            EVEN_K: tl.constexpr):
    """(A's values at columns ``cols`` as fp32 (int32 for INT8), quantized here in A_MODE 1 / 2;
    A_MODE 1: the sum of 0 * a, 0 or NaN where a holds NaN/inf, else 0)."""
    kmask = cols < K
    a = tl.load(a_ptr + cols, mask=kmask, other=zero)
    nf = 0.0
    if A_MODE == 1:
        nf = tl.sum(tl.sum(a.to(tl.float32) * 0.0, axis=1), axis=0)
    if A_MODE != 0:
        a = _quant_a(a, a_s, a_zp, kmask, IS_INT8, AZP, EVEN_K)
    if IS_INT8:
        a = a.to(tl.int32)
    else:
        a = a.to(tl.float32)
    return a, nf


# Decode, one row (M = 1): the same operation without tensor cores. B (K % 4 == 0, K contiguous) is
# read as int32 words, a [BN, BK / 4] slab per step, prefetched one step ahead (the loop feeds no
# tl.dot, so Triton's pipeliner may not); A's slab is read as [BK / 4, 4] (each thread's contiguous
# columns). The words are multiplied into a [BN, BK / 4] accumulator (int32 for INT8: exact; fp32
# for FP8), reduced over K once at the end. PTX (compiled for an NVIDIA GPU): INT8 packs A's four
# codes of a word and takes dp4a (one instruction per word); FP8 decodes a word with two paired
# hardware conversions (_e4m3_word). Otherwise (the interpreter, ROCm) each byte is decoded with
# shifts (_byte). With SPLIT_K > 1, c_ptr is the fp32 partials workspace and finish_splits writes
# out_ptr.
@triton.jit(do_not_specialize=["M"])
def scaled_gemv_kernel(a_ptr, b_ptr, c_ptr, as_ptr, bs_ptr, bias_ptr, azp_ptr, azp_adj_ptr, ub_ptr,
                       out_ptr, cnt_ptr, M, N, K, stride_ak, stride_bn, stride_bk, stride_cm, stride_cn,
                       k_split, stride_cs, stride_om, PTX: tl.constexpr, SPLIT_K: tl.constexpr, IS_INT8: tl.constexpr,
                       A_MODE: tl.constexpr, A_PER_ROW: tl.constexpr, B_PER_COL: tl.constexpr, AZP: tl.constexpr,
                       HAS_BIAS: tl.constexpr, HAS_UB: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                       EVEN_K: tl.constexpr, QBK: tl.constexpr):
    pid_n = tl.program_id(0)
    pid_s = tl.program_id(1)
    rn = pid_n * BN + tl.arange(0, BN)
    rbn = tl.where(rn < N, rn, 0)
    rkw = tl.arange(0, BK // 4)
    w_ptrs = b_ptr.to(tl.pointer_type(tl.int32)) + rbn[:, None].to(tl.int64) * (stride_bn // 4) + rkw[None, :]
    k_lo = 0
    k_hi = K
    if SPLIT_K > 1:
        k_lo = pid_s * k_split
        k_hi = tl.minimum(K, k_lo + k_split)
    w_next = tl.load(w_ptrs + k_lo // 4, mask=rkw[None, :] < (K - k_lo) // 4, other=0)
    # A_MODE 2: the row's quantization parameters, read after the first B slab is on its way, QBK
    # columns per load (the whole row up to 8192: one memory round trip before the main loop)
    a_s = tl.zeros((1,), dtype=tl.float32)
    a_zp = a_s
    nf = a_s  # A_MODE 1: 0, or NaN where the row holds NaN/inf (see _scaled_epilogue)
    if A_MODE == 2:
        rq = tl.arange(0, QBK)
        a_s, a_zp = _row_quant_params(a_ptr + rq[None, :], 1, rq, K, ub_ptr, (tl.arange(0, 1) < 1)[:, None], 1, QBK,
                                      IS_INT8, AZP, HAS_UB)
    elif A_MODE == 1:
        a_s, a_zp = _static_quant_params(as_ptr, azp_ptr, AZP)
    zero = 0 if IS_INT8 and A_MODE == 0 else 0.0
    acc_t = tl.int32 if IS_INT8 else tl.float32
    acc = tl.zeros((BN, BK // 4), dtype=acc_t)
    for k0 in range(k_lo, k_hi, BK):
        w = w_next
        nxt = k0 + BK
        w_next = tl.load(w_ptrs + nxt // 4, mask=(rkw[None, :] < (K - nxt) // 4) & (nxt < k_hi), other=0)
        # byte j of word i is column k0 + 4 i + j
        a, nf_k = _gemv_a(a_ptr, k0 + 4 * rkw[:, None] + tl.arange(0, 4)[None, :], K, a_s, a_zp, zero, A_MODE, IS_INT8,
                          AZP, EVEN_K)
        nf += nf_k
        if PTX and IS_INT8:  # A's four codes of a word packed into one word (disjoint bytes: sum == or)
            aw = tl.sum((a & 0xFF) << (8 * tl.arange(0, 4))[None, :], axis=1)
            acc = _dp4a(w, aw[None, :], acc)
        else:
            a02, a13 = tl.split(tl.reshape(a, (BK // 4, 2, 2)))
            a0, a2 = tl.split(a02)
            a1, a3 = tl.split(a13)
            if PTX:
                b0, b1, b2, b3 = _e4m3_word(w)
            else:
                b0 = _byte(w, 0, IS_INT8)
                b1 = _byte(w, 1, IS_INT8)
                b2 = _byte(w, 2, IS_INT8)
                b3 = _byte(w, 3, IS_INT8)
            acc += a0[None, :] * b0
            acc += a1[None, :] * b1
            acc += a2[None, :] * b2
            acc += a3[None, :] * b3
    out = tl.sum(acc, axis=1)[None, :]
    if not IS_INT8 and not PTX:
        out = out * 1.329227995784916e36  # 2^120, undoing _byte's exponent offset
    rm = tl.arange(0, 1)
    _scaled_epilogue(out, a_s, a_zp, c_ptr, as_ptr, bs_ptr, bias_ptr, azp_ptr, azp_adj_ptr, rm, rn, rm, rbn, M, N,
                     stride_cm, stride_cn, stride_cs, pid_s, SPLIT_K, A_MODE, A_PER_ROW, B_PER_COL, AZP, HAS_BIAS, nf)
    if SPLIT_K > 1:
        finish_splits(c_ptr, out_ptr, cnt_ptr, pid_n, rn, M, N, stride_cs, stride_cm, stride_om, 1, SPLIT_K, PTX)


@triton.jit
def _e4m3_word(w):
    """The four E4M3 bytes of each int32 word as fp32, exactly (byte j is the j-th result): two paired
    hardware conversions to f16 (cvt.rn.f16x2.e4m3x2, sm_89+) and four widenings, where the shift
    decode (_byte) takes about three instructions a byte."""
    return tl.inline_asm_elementwise(
        """{
        .reg .b16 lo, hi;
        .reg .b32 p, q;
        .reg .f16 f0, f1, f2, f3;
        mov.b32 {lo, hi}, $4;
        cvt.rn.f16x2.e4m3x2 p, lo;
        cvt.rn.f16x2.e4m3x2 q, hi;
        mov.b32 {f0, f1}, p;
        mov.b32 {f2, f3}, q;
        cvt.f32.f16 $0, f0;
        cvt.f32.f16 $1, f1;
        cvt.f32.f16 $2, f2;
        cvt.f32.f16 $3, f3;
        }""", "=r,=r,=r,=r,r", [w], dtype=(tl.float32, tl.float32, tl.float32, tl.float32), is_pure=True, pack=1)


@triton.jit
def _dp4a(w, a, acc):
    """acc + the dot product of the four signed bytes of w with those of a (one dp4a)."""
    return tl.inline_asm_elementwise("dp4a.s32.s32 $0, $1, $2, $3;", "=r,r,r,r", [w, a, acc], dtype=tl.int32,
                                     is_pure=True, pack=1)


@triton.jit
def _fence_gpu(x):
    """fence.acq_rel.gpu in every thread (x: any int32 tensor, returned unchanged)."""
    return tl.inline_asm_elementwise("fence.acq_rel.gpu;\n\tmov.b32 $0, $1;", "=r,r", [x], dtype=tl.int32,
                                     is_pure=False, pack=1)


@triton.jit
def finish_splits(ws_ptr, out_ptr, cnt_ptr, pid_n, rn, M, N, stride_cs, stride_cm, stride_om,
                  BM: tl.constexpr, SPLIT_K: tl.constexpr, PTX: tl.constexpr):
    """Split-K without a second launch. Each program has stored its fp32 partial rows (scales and,
    in split 0, bias applied) at ws + pid_s * stride_cs; it then counts itself in on its column
    tile (cnt_ptr[pid_n], zero between calls). The last to arrive sums the splits in split order
    (deterministic), writes the output and re-zeroes the counter for the next call. PTX (compiled
    for an NVIDIA GPU; the interpreter runs programs one by one): every thread's partial stores are
    made visible GPU-wide before the count."""
    if PTX:
        _fence_gpu(rn)
    tl.debug_barrier()
    arrived = tl.atomic_add(cnt_ptr + pid_n, 1, sem="acq_rel", scope="gpu")
    if arrived == SPLIT_K - 1:
        for r in tl.static_range(BM):
            tot = rn.to(tl.float32) * 0.0
            for s in tl.static_range(SPLIT_K):
                tot += tl.load(ws_ptr + s * stride_cs + r * stride_cm + rn, mask=rn < N, other=0.0,
                               cache_modifier=".cg")  # L2: the other programs' partials
            tl.store(out_ptr + r * stride_om + rn, tot.to(out_ptr.dtype.element_ty), mask=(rn < N) & (r < M))
        tl.atomic_xchg(cnt_ptr + pid_n, 0)


@triton.jit(do_not_specialize=["M"])
def splitk_reduce_kernel(ws_ptr, c_ptr, M, N, stride_cm, S: tl.constexpr, BLOCK: tl.constexpr):
    """c[m, n] = sum over s of ws[s, m, n] (fp32 partials [S, M, N], summed in split order)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    total = M * N
    mask = offs < total
    acc = tl.zeros((BLOCK,), tl.float32)
    for s in tl.static_range(S):
        acc += tl.load(ws_ptr + s * total + offs, mask=mask, other=0.0)
    m = offs // N
    n = offs - m * N
    tl.store(c_ptr + m * stride_cm + n, acc.to(c_ptr.dtype.element_ty), mask=mask)


# Block-scaled FP8: A e4m3 [M, K] with scales as_ [M, ceil(K/128)] (strides passed), B e4m3 [N, K]
# with scales bs [ceil(N/128), ceil(K/128)]. BK == 128 == the scale group, so each k-step's partial
# product is scaled by one activation scale per row and one weight scale per column.
@triton.jit(do_not_specialize=["M"])  # M changes every call: one compile serves all
def block_fp8_mm_kernel(a_ptr, b_ptr, c_ptr, as_ptr, bs_ptr, bias_ptr, M, N, K,
                        stride_am, stride_bn, stride_cm, stride_cn, stride_asm, stride_asg, stride_bsn, stride_bsg,
                        HAS_BIAS: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                        GROUP_N: tl.constexpr, GROUP_M: tl.constexpr, EVEN_K: tl.constexpr):
    pid_m, pid_n = _tile_ids(M, N, BM, BN, GROUP_M)
    rm = pid_m * BM + tl.arange(0, BM)
    rn = pid_n * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    ram = tl.where(rm < M, rm, 0)
    rbn = tl.where(rn < N, rn, 0)
    a_ptrs = a_ptr + ram[:, None].to(tl.int64) * stride_am + rk[None, :]
    b_ptrs = b_ptr + rbn[None, :].to(tl.int64) * stride_bn + rk[:, None]
    as_ptrs = as_ptr + ram * stride_asm
    amask = (rm < M)[:, None]  # padding rows: masked, not clamped onto row 0 (see scaled_mm_kernel)
    bs_ptrs = bs_ptr + (rbn // GROUP_N) * stride_bsn
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for kb in range(0, tl.cdiv(K, BK)):
        k0 = kb * BK
        if EVEN_K:
            a = tl.load(a_ptrs, mask=amask, other=0.0)
            b = tl.load(b_ptrs)
        else:
            a = tl.load(a_ptrs, mask=amask & (rk[None, :] < K - k0), other=0.0)
            b = tl.load(b_ptrs, mask=rk[:, None] < K - k0, other=0.0)
        a_s = tl.load(as_ptrs + kb * stride_asg, mask=rm < M, other=0.0)
        b_s = tl.load(bs_ptrs + kb * stride_bsg)
        acc += tl.dot(a, b) * a_s[:, None] * b_s[None, :]
        a_ptrs += BK
        b_ptrs += BK
    if HAS_BIAS:
        acc = acc + tl.load(bias_ptr + rbn).to(tl.float32)[None, :]
    c_ptrs = c_ptr + rm[:, None].to(tl.int64) * stride_cm + rn[None, :] * stride_cn
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=(rm[:, None] < M) & (rn[None, :] < N))


fast_kernels(globals())  # repeat launches skip triton's binder (launch.py)
