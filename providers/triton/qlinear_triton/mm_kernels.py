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


# A_MODE 0: A is already quantized (int8 / e4m3), its scale per tensor (as_ptr[0]) or per row.
# A_MODE 2 (opt-in, decode sizes): A is 16-bit and is quantized here per row (FP8 per token with the
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
    if A_MODE == 2:
        hi = tl.zeros((BM,), dtype=tl.float32)  # amax, or max for asymmetric INT8
        lo = tl.zeros((BM,), dtype=tl.float32)
        for k0 in range(0, K, BK):
            xa = tl.load(a_ptrs + k0 * stride_ak, mask=rk[None, :] < K - k0, other=0.0).to(tl.float32)
            if AZP == 2:
                hi = tl.maximum(hi, tl.max(xa, axis=1))
                lo = tl.minimum(lo, tl.min(xa, axis=1))
            else:
                hi = tl.maximum(hi, tl.max(tl.abs(xa), axis=1))
        a_zp = 0.0
        if IS_INT8:
            if AZP == 2:
                a_s, a_zp = int8_asym_params(lo, hi)
            else:
                a_s = int8_sym_scale(hi)
        else:
            if HAS_UB:
                hi = tl.minimum(hi, tl.load(ub_ptr).to(tl.float32))
            a_s = fp8_scale(hi)
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
            af = a.to(tl.float32)
            if IS_INT8:
                if AZP == 2:
                    a = to_int8(af, a_s[:, None], a_zp[:, None], True)
                else:
                    a = to_int8(af, a_s[:, None], 0.0, False)
                if not EVEN_K:  # padded columns must contribute 0, not the zero point
                    a = tl.where(rk[None, :] < K - k0, a, 0.0)
                a = a.to(tl.int8)
            else:
                a = to_fp8(af, a_s[:, None])
        if IS_INT8:
            acc = tl.dot(a, b, acc, out_dtype=tl.int32)
        else:
            acc = tl.dot(a, b, acc)
        a_ptrs += BK * stride_ak
        b_ptrs += BK * stride_bk
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
