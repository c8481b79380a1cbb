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
def _row_quant_params(a_ptrs, stride_ak, rk, K, ub_ptr, BM: tl.constexpr, BK: tl.constexpr,
                      IS_INT8: tl.constexpr, AZP: tl.constexpr, HAS_UB: tl.constexpr):
    """A_MODE 2 prologue: read the [BM, K] rows of A (16-bit) for their amax (min/max for asymmetric
    INT8) -> per-row (scale, zero point as an fp32 code; 0 when symmetric)."""
    hi = tl.zeros((BM,), dtype=tl.float32)
    lo = tl.zeros((BM,), dtype=tl.float32)
    for k0 in range(0, K, BK):
        xa = tl.load(a_ptrs + k0 * stride_ak, mask=rk[None, :] < K - k0, other=0.0).to(tl.float32)
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
    """A_MODE 2: a 16-bit slab of A -> its int8 / e4m3 codes; the row scale and zero point come
    broadcastable against it."""
    af = a.to(tl.float32)
    if IS_INT8:
        if AZP == 2:
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
                     A_PER_ROW: tl.constexpr, B_PER_COL: tl.constexpr, AZP: tl.constexpr, HAS_BIAS: tl.constexpr):
    """Zero-point correction, activation x weight scales, bias, store (fp32 partials with split-K)."""
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
    c_ptrs = c_ptr + pid_s.to(tl.int64) * stride_cs + rm[:, None].to(tl.int64) * stride_cm + rn[None, :] * stride_cn
    tl.store(c_ptrs, out.to(c_ptr.dtype.element_ty), mask=(rm[:, None] < M) & (rn[None, :] < N))


# A_MODE 0: A is already quantized (int8 / e4m3), its scale per tensor (as_ptr[0]) or per row.
# A_MODE 2 (decode sizes): A is 16-bit and is quantized here per row (FP8 per token with the
# optional upper bound ub_ptr[0], or INT8 symmetric / asymmetric when AZP == 2): a prologue reads each
# row for its amax (min/max), so quantization and GEMM are one launch. Every program re-quantizes
# its [BM, K] slab of A (IEEE divisions included), so this only pays while BM * K is small next to
# the weight bytes a program streams; bench_triton.py times it against the separate quantizer.
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
    # clamp row/col indices instead of masking loads: out-of-range rows/cols are computed and dropped
    ram = tl.where(rm < M, rm, 0)
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
    if A_MODE == 2:
        a_s, a_zp = _row_quant_params(a_ptrs, stride_ak, rk, K, ub_ptr, BM, BK, IS_INT8, AZP, HAS_UB)
    if IS_INT8:
        acc = tl.zeros((BM, BN), dtype=tl.int32)
    else:
        acc = tl.zeros((BM, BN), dtype=tl.float32)
    a_ptrs += k_lo * stride_ak
    b_ptrs += k_lo * stride_bk
    for k0 in range(k_lo, k_hi, BK):
        if EVEN_K:
            a = tl.load(a_ptrs)
            b = tl.load(b_ptrs)
        else:
            if IS_INT8:  # `other` must be an int for int8 and a float for fp8 operands
                a = tl.load(a_ptrs, mask=rk[None, :] < K - k0, other=0)
                b = tl.load(b_ptrs, mask=rk[:, None] < K - k0, other=0)
            else:
                a = tl.load(a_ptrs, mask=rk[None, :] < K - k0, other=0.0)
                b = tl.load(b_ptrs, mask=rk[:, None] < K - k0, other=0.0)
        if A_MODE == 2:
            a = _quant_a(a, a_s[:, None], a_zp[:, None], rk[None, :] < K - k0, IS_INT8, AZP, EVEN_K)
        if IS_INT8:
            acc = tl.dot(a, b, acc, out_dtype=tl.int32)
        else:
            acc = tl.dot(a, b, acc)
        a_ptrs += BK * stride_ak
        b_ptrs += BK * stride_bk
    _scaled_epilogue(acc, a_s, a_zp, c_ptr, as_ptr, bs_ptr, bias_ptr, azp_ptr, azp_adj_ptr, rm, rn, ram, rbn,
                     M, N, stride_cm, stride_cn, stride_cs, pid_s, SPLIT_K, A_MODE, A_PER_ROW, B_PER_COL, AZP, HAS_BIAS)


@triton.jit
def _gemv_a_row(a_ptr, row, stride_am, stride_ak, k0, rk, K, a_s, a_zp, zero, A_MODE: tl.constexpr,
                IS_INT8: tl.constexpr, AZP: tl.constexpr, EVEN_K: tl.constexpr):
    """One row's [BK] slab of A as [1, BK] (fp32, or int32 for INT8), quantized here in A_MODE 2.
    Loaded 1-D and expanded, so it lands in the layout of the [BN, BK] product with no shuffle."""
    kmask = rk < K - k0
    a = tl.load(a_ptr + row * stride_am + (k0 + rk) * stride_ak, mask=kmask, other=zero)
    if A_MODE == 2:
        a = _quant_a(a, a_s, a_zp, kmask, IS_INT8, AZP, EVEN_K)
    if IS_INT8:
        a = a.to(tl.int32)
    else:
        a = a.to(tl.float32)
    return a[None, :]


@triton.jit
def _gemv_row_params(a_ptr, row, stride_am, stride_ak, rk, K, ub_ptr, BK: tl.constexpr, IS_INT8: tl.constexpr,
                     AZP: tl.constexpr, HAS_UB: tl.constexpr, A_MODE: tl.constexpr):
    """A_MODE 2: one row's (scale, zero point), each shaped [1]; zeros otherwise."""
    if A_MODE == 2:
        a_s, a_zp = _row_quant_params(a_ptr + row * stride_am + rk[None, :] * stride_ak, stride_ak, rk, K, ub_ptr,
                                      1, BK, IS_INT8, AZP, HAS_UB)
    else:
        a_s = tl.zeros((1,), dtype=tl.float32)
        a_zp = a_s
    return a_s, a_zp


@triton.jit
def _gemv_row_out(acc, row, a_s, a_zp, c_ptr, as_ptr, bs_ptr, bias_ptr, azp_ptr, azp_adj_ptr, rn, rbn, M, N,
                  stride_cm, stride_cn, stride_cs, pid_s, SPLIT_K: tl.constexpr, A_MODE: tl.constexpr,
                  A_PER_ROW: tl.constexpr, B_PER_COL: tl.constexpr, AZP: tl.constexpr, HAS_BIAS: tl.constexpr):
    rm = tl.arange(0, 1) + row
    _scaled_epilogue(tl.sum(acc, axis=1)[None, :], a_s, a_zp, c_ptr, as_ptr, bs_ptr, bias_ptr, azp_ptr, azp_adj_ptr,
                     rm, rn, tl.minimum(rm, M - 1), rbn, M, N, stride_cm, stride_cn, stride_cs, pid_s, SPLIT_K,
                     A_MODE, A_PER_ROW, B_PER_COL, AZP, HAS_BIAS)


# Decode (M <= configs.W8A8_GEMV_MAX_M): the same operation without tensor cores. Each program takes a
# [BN, BK] slab of B per step and every row (BM <= 4) multiplies it element-wise into its own
# [BN, BK] accumulator (int32 for INT8: exact; fp32 for FP8), reduced over K once at the end. The
# next slab of B is loaded before the current one is used (the loop feeds no tl.dot, so Triton's
# pipeliner may not). Rows past M repeat row M - 1 and are not stored.
@triton.jit(do_not_specialize=["M"])
def scaled_gemv_kernel(a_ptr, b_ptr, c_ptr, as_ptr, bs_ptr, bias_ptr, azp_ptr, azp_adj_ptr, ub_ptr,
                       M, N, K, stride_am, stride_ak, stride_bn, stride_bk, stride_cm, stride_cn,
                       k_split, stride_cs, SPLIT_K: tl.constexpr, IS_INT8: tl.constexpr, A_MODE: tl.constexpr,
                       A_PER_ROW: tl.constexpr, B_PER_COL: tl.constexpr, AZP: tl.constexpr, HAS_BIAS: tl.constexpr,
                       HAS_UB: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                       EVEN_K: tl.constexpr):
    pid_n = tl.program_id(0)
    pid_s = tl.program_id(1)
    rn = pid_n * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    rbn = tl.where(rn < N, rn, 0)
    row1 = tl.minimum(1, M - 1)
    row2 = tl.minimum(2, M - 1)
    row3 = tl.minimum(3, M - 1)
    b_ptrs = b_ptr + rbn[:, None].to(tl.int64) * stride_bn + rk[None, :] * stride_bk
    k_lo = 0
    k_hi = K
    if SPLIT_K > 1:
        k_lo = pid_s * k_split
        k_hi = tl.minimum(K, k_lo + k_split)
    zero = 0 if IS_INT8 else 0.0  # `other` must be an int for int8 and a float for fp8 operands
    b_next = tl.load(b_ptrs + k_lo * stride_bk, mask=rk[None, :] < K - k_lo, other=zero)
    # A_MODE 2: the rows' quantization parameters, read after the first B slab is on its way
    s0, z0 = _gemv_row_params(a_ptr, 0, stride_am, stride_ak, rk, K, ub_ptr, BK, IS_INT8, AZP, HAS_UB, A_MODE)
    s1, z1 = s0, z0
    s2, z2 = s0, z0
    s3, z3 = s0, z0
    if BM > 1:
        s1, z1 = _gemv_row_params(a_ptr, row1, stride_am, stride_ak, rk, K, ub_ptr, BK, IS_INT8, AZP, HAS_UB, A_MODE)
    if BM > 2:
        s2, z2 = _gemv_row_params(a_ptr, row2, stride_am, stride_ak, rk, K, ub_ptr, BK, IS_INT8, AZP, HAS_UB, A_MODE)
        s3, z3 = _gemv_row_params(a_ptr, row3, stride_am, stride_ak, rk, K, ub_ptr, BK, IS_INT8, AZP, HAS_UB, A_MODE)
    acc_t = tl.int32 if IS_INT8 else tl.float32
    acc0 = tl.zeros((BN, BK), dtype=acc_t)
    acc1 = acc0
    acc2 = acc0
    acc3 = acc0
    for k0 in range(k_lo, k_hi, BK):
        b = b_next
        nxt = k0 + BK
        b_next = tl.load(b_ptrs + nxt * stride_bk, mask=(rk[None, :] < K - nxt) & (nxt < k_hi), other=zero)
        bf = b.to(acc_t)
        acc0 += _gemv_a_row(a_ptr, 0, stride_am, stride_ak, k0, rk, K, s0, z0, zero, A_MODE, IS_INT8, AZP, EVEN_K) * bf
        if BM > 1:
            acc1 += _gemv_a_row(a_ptr, row1, stride_am, stride_ak, k0, rk, K, s1, z1, zero, A_MODE, IS_INT8, AZP,
                                EVEN_K) * bf
        if BM > 2:
            acc2 += _gemv_a_row(a_ptr, row2, stride_am, stride_ak, k0, rk, K, s2, z2, zero, A_MODE, IS_INT8, AZP,
                                EVEN_K) * bf
            acc3 += _gemv_a_row(a_ptr, row3, stride_am, stride_ak, k0, rk, K, s3, z3, zero, A_MODE, IS_INT8, AZP,
                                EVEN_K) * bf
    _gemv_row_out(acc0, 0, s0, z0, c_ptr, as_ptr, bs_ptr, bias_ptr, azp_ptr, azp_adj_ptr, rn, rbn, M, N, stride_cm,
                  stride_cn, stride_cs, pid_s, SPLIT_K, A_MODE, A_PER_ROW, B_PER_COL, AZP, HAS_BIAS)
    if BM > 1:
        _gemv_row_out(acc1, 1, s1, z1, c_ptr, as_ptr, bs_ptr, bias_ptr, azp_ptr, azp_adj_ptr, rn, rbn, M, N,
                      stride_cm, stride_cn, stride_cs, pid_s, SPLIT_K, A_MODE, A_PER_ROW, B_PER_COL, AZP, HAS_BIAS)
    if BM > 2:
        _gemv_row_out(acc2, 2, s2, z2, c_ptr, as_ptr, bs_ptr, bias_ptr, azp_ptr, azp_adj_ptr, rn, rbn, M, N,
                      stride_cm, stride_cn, stride_cs, pid_s, SPLIT_K, A_MODE, A_PER_ROW, B_PER_COL, AZP, HAS_BIAS)
        _gemv_row_out(acc3, 3, s3, z3, c_ptr, as_ptr, bs_ptr, bias_ptr, azp_ptr, azp_adj_ptr, rn, rbn, M, N,
                      stride_cm, stride_cn, stride_cs, pid_s, SPLIT_K, A_MODE, A_PER_ROW, B_PER_COL, AZP, HAS_BIAS)


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
    bs_ptrs = bs_ptr + (rbn // GROUP_N) * stride_bsn
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for kb in range(0, tl.cdiv(K, BK)):
        k0 = kb * BK
        if EVEN_K:
            a = tl.load(a_ptrs)
            b = tl.load(b_ptrs)
        else:
            a = tl.load(a_ptrs, mask=rk[None, :] < K - k0, other=0.0)
            b = tl.load(b_ptrs, mask=rk[:, None] < K - k0, other=0.0)
        a_s = tl.load(as_ptrs + kb * stride_asg)
        b_s = tl.load(bs_ptrs + kb * stride_bsg)
        acc += tl.dot(a, b) * a_s[:, None] * b_s[None, :]
        a_ptrs += BK
        b_ptrs += BK
    if HAS_BIAS:
        acc = acc + tl.load(bias_ptr + rbn).to(tl.float32)[None, :]
    c_ptrs = c_ptr + rm[:, None].to(tl.int64) * stride_cm + rn[None, :] * stride_cn
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=(rm[:, None] < M) & (rn[None, :] < N))
