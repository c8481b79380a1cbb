"""@triton.jit W4A16 GEMM: 16-bit activations x 4-bit weights with group scales (GPTQ uint4b8, or
uint4 with zero points), optional act-order (g_idx) handled by a K permutation.

Weight layout (made once by ``mp.repack_w4``): int32 [K/8, N], word (kw, n) holds the codes of
rows k = 8kw .. 8kw+7 of column n, code k at bits 4*(k % 8). That is the compressed-tensors word
transposed: a tile [BK/8, BN] is BN contiguous words per row (coalesced for any BN), and it unpacks
straight into the [BK, BN] B operand. Scales are [G, N] (N contiguous); zero points uint8 [G, N].
Imported lazily.
"""

from __future__ import annotations

from .mm_kernels import _tile_ids
from .quant_kernels import load, tl

triton = load()


# X_PERM: load x's columns through perm (act-order layers, whose weight rows were sorted by group
# at load time). SCALE_MODE (chosen by ``scale_mode``): 0 per-row gather of group k // GROUP;
# 1 the tile lies inside one group (one scale row); 2 the tile spans BK / GROUP whole groups (one
# row each, broadcast); 3 per-row gather of the group stored in gidx (irregular act-order groups).
# SPLIT_K > 1: as in mm_kernels.scaled_mm_kernel (fp32 partials per K range, bias in split 0 only,
# summed by splitk_reduce_kernel).
@triton.jit(do_not_specialize=["M"])  # M changes every call: one compile serves all
def w4a16_kernel(x_ptr, qw_ptr, s_ptr, zp_ptr, perm_ptr, gidx_ptr, bias_ptr, c_ptr, M, N, K,
                 stride_xm, stride_cm, k_split, stride_cs, SPLIT_K: tl.constexpr,
                 GROUP: tl.constexpr, HAS_ZP: tl.constexpr, ZP_CONST: tl.constexpr, X_PERM: tl.constexpr,
                 SCALE_MODE: tl.constexpr, NG: tl.constexpr, HAS_BIAS: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                 BK: tl.constexpr, GROUP_M: tl.constexpr, EVEN_K: tl.constexpr):
    pid_m, pid_n = _tile_ids(M, N, BM, BN, GROUP_M)
    rm = pid_m * BM + tl.arange(0, BM)
    rn = pid_n * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    rkw = tl.arange(0, BK // 8)
    ram = tl.where(rm < M, rm, 0)
    rbn = tl.where(rn < N, rn, 0)
    x_rows = x_ptr + ram[:, None].to(tl.int64) * stride_xm
    shifts = tl.arange(0, 8) * 4
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    pid_s = tl.program_id(1)
    k_lo = 0
    k_hi = K
    if SPLIT_K > 1:
        k_lo = pid_s * k_split
        k_hi = tl.minimum(K, k_lo + k_split)
    for k0 in range(k_lo, k_hi, BK):
        kk = k0 + rk
        kmask = kk < K
        if X_PERM:
            cols = tl.load(perm_ptr + kk, mask=kmask, other=0)
        else:
            cols = kk
        if EVEN_K:
            x = tl.load(x_rows + cols[None, :])
            w = tl.load(qw_ptr + (k0 // 8 + rkw)[:, None].to(tl.int64) * N + rbn[None, :])
        else:
            x = tl.load(x_rows + cols[None, :], mask=kmask[None, :], other=0.0)
            w = tl.load(qw_ptr + (k0 // 8 + rkw)[:, None].to(tl.int64) * N + rbn[None, :],
                        mask=(k0 // 8 + rkw)[:, None] < K // 8, other=0)
        # codes -> fp32 without an int->float conversion (a quarter-rate instruction, and dequant is
        # the decode bottleneck next to HBM): OR the code into the mantissa of 2^23, giving the
        # float 2^23 + q exactly; the offset is removed together with the zero point below.
        q3 = (((w[:, None, :] >> shifts[None, :, None]) & 0xF) | 0x4B000000).to(tl.float32, bitcast=True)
        q = tl.reshape(q3, (BK, BN))  # [BK/8, 8, BN] -> [BK, BN]: row k = 8 * word + nibble
        if SCALE_MODE == 3:
            g = tl.load(gidx_ptr + kk, mask=kmask, other=0)
            s = tl.load(s_ptr + g[:, None] * N + rbn[None, :]).to(tl.float32)
            if HAS_ZP:
                z = tl.load(zp_ptr + g[:, None] * N + rbn[None, :]).to(tl.float32) + 8388608.0
        elif SCALE_MODE == 1:  # the whole tile is in one group: one scale row
            g = k0 // GROUP
            s = tl.load(s_ptr + g * N + rbn).to(tl.float32)[None, :]
            if HAS_ZP:
                z = tl.load(zp_ptr + g * N + rbn).to(tl.float32)[None, :] + 8388608.0
        elif SCALE_MODE == 2:  # NG = BK / GROUP whole groups: one scale row each, broadcast over the group
            g2 = k0 // GROUP + tl.arange(0, NG)
            s = tl.load(s_ptr + g2[:, None] * N + rbn[None, :]).to(tl.float32)[:, None, :]
            if HAS_ZP:
                z = tl.load(zp_ptr + g2[:, None] * N + rbn[None, :]).to(tl.float32)[:, None, :] + 8388608.0
            q = tl.reshape(q3, (NG, GROUP, BN))
        else:
            g = tl.where(kmask, kk // GROUP, 0)
            s = tl.load(s_ptr + g[:, None] * N + rbn[None, :]).to(tl.float32)
            if HAS_ZP:
                z = tl.load(zp_ptr + g[:, None] * N + rbn[None, :]).to(tl.float32) + 8388608.0
        if HAS_ZP:
            wf = (q - z) * s  # (2^23 + q) - (2^23 + zp): exact
        else:
            wf = (q - (8388608.0 + ZP_CONST)) * s
        if SCALE_MODE == 2:
            wf = tl.reshape(wf, (BK, BN))
        acc = tl.dot(x, wf.to(x.dtype), acc)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + rbn).to(tl.float32)
        if SPLIT_K > 1:
            bias = tl.where(pid_s == 0, bias, 0.0)
        acc = acc + bias[None, :]
    c_ptrs = c_ptr + pid_s.to(tl.int64) * stride_cs + rm[:, None].to(tl.int64) * stride_cm + rn[None, :]
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=(rm[:, None] < M) & (rn[None, :] < N))


def scale_mode(group: int, bk: int, k: int, has_gidx: bool) -> int:
    """Which scale-loading path fits this tile (see w4a16_kernel)."""
    if has_gidx:
        return 3
    if group % bk == 0:
        return 1
    if bk % group == 0 and k % bk == 0:
        return 2
    return 0
