"""@triton.jit W4A16 tensor-core kernels for mid M (tens to hundreds of rows), chosen per call by
mp.TritonW4A16LinearKernel (``configs.w4a16_swap_tile``). Both dequantize a whole 128-row block into
one operand and issue one tl.dot per block, instead of ``w4a16_kernel``'s dot per 16-row slab.

Weight layout of ``w4a16_kernels`` (``mp.repack_w4``: int32 [Kp/8, N]; nibble j of word row r of
128-row block b is row 128 b + 16 j + r). Shifting a block's [16, BN] words by the vector 4 j and
reshaping [8, 16, BN] -> [128, BN] puts weight row 128 b + 16 j + r at operand row 16 j + r: the
natural order, so x is one contiguous [BM, 128] load the pipeliner streams (cp.async, num_stages),
with the words and the scales.

- ``w4a16_wideb_kernel``: out [BM, BN] = x [BM, 128] . W [128, BN] per block. The dequantized tile is
  stored to shared memory and the wgmma reads both operands there: on sm_90 the block's 8 HGMMAs issue
  back to back with one wait. Needs BM >= 64 (wgmma's M per warpgroup; below, Triton uses mma.sync).
- ``w4a16_swap_kernel``: out^T [BN, BM] = W^T [BN, 128] . x^T [128, BM], so the weight's BN columns
  are wgmma's M side and 16 or 32 rows of x waste nothing; the dequantized weight is the A operand,
  which Hopper may read from registers. Triton 3.6 does keep it in registers (WIDE: one [BN, 128]
  operand), but splits the dot into 8 K = 16 wgmmas with a wait after each, and ptxas serializes them
  (info C7515). Variants kept for the sweep (tools/triton_w4a16_sweep.py): one K = 16 dot per slab;
  PAIR, nibbles p and p + 4 of a word joined into K = 32 operands (x^T gathered in that order); REG,
  16-bit word loads and 16-bit math (the form Triton's MMAv3 register-operand rewrite accepts).

Dequantization: the scale is folded into the operand, v = (q - zero) s rounded once to the 16-bit
activation type (the accuracy of the dequantize + cuBLAS path): per weight a shift, one and-or (the
code into the mantissa of 1.0: 1 + q/16, ``w4a16_kernels._nib``), one FMA with the group's
(16 s, (16 + zero) s), one conversion. Any group size; act-order with irregular groups (IRREG) looks
the scale row up per K row (x arrives already permuted). FP4 weights stay on ``w4a16_kernel``.
K splits (program_id(1)) write fp32 partials summed in a fixed order by mm_kernels.splitk_reduce_kernel:
results are deterministic. Imported lazily.
"""

from __future__ import annotations

from .quant_kernels import load, tl
from .w4a16_kernels import _group_factors, _nib

triton = load()


@triton.jit
def _swap_factors(s_ptr, zp_ptr, gidx_ptr, k_first, kk, kmask, rbn, N, NG, GROUP: tl.constexpr,
                  HAS_ZP: tl.constexpr, ZP_CONST: tl.constexpr, IRREG: tl.constexpr):
    """(16 s, (16 + zero) s) for a [BN, 16] slab of W^T: per row of K ([BN, 16]) with IRREG, else the
    slab's one group ([BN, 1]; a slab of 16 rows never straddles a group)."""
    if IRREG:
        g = tl.load(gidx_ptr + kk, mask=kmask, other=0)
        s = tl.load(s_ptr + g[None, :] * N + rbn[:, None]).to(tl.float32)
        if HAS_ZP:
            zp = tl.load(zp_ptr + g[None, :] * N + rbn[:, None]).to(tl.float32)
        else:
            zp = ZP_CONST
        fs = 16.0 * s
        fz = (16.0 + zp) * s
    else:
        g = tl.minimum(k_first // GROUP, NG - 1)
        fs, fz = _group_factors(s_ptr, zp_ptr, g, rbn, N, HAS_ZP, ZP_CONST, 16)  # [1, BN]
        fs = tl.reshape(fs, (fs.shape[1], 1))
        fz = tl.reshape(fz, (fz.shape[1], 1))
    return fs, fz


@triton.jit
def _wide_factors(s_ptr, zp_ptr, gidx_ptr, b, j8, r16, K, rbn, N, NG, GROUP: tl.constexpr, HAS_ZP: tl.constexpr,
                  ZP_CONST: tl.constexpr, IRREG: tl.constexpr, SLAB_SCALES: tl.constexpr):
    """(16 s, (16 + zero) s) for a block's [BN, 8, 16] weights (slab j, row r): per row with IRREG,
    else per slab ([BN, 8, 1]), or one [BN, 1, 1] row when the block is one group (unless
    SLAB_SCALES: the load's shape steers the layout Triton gives the whole dequantization)."""
    n3 = rbn[:, None, None]
    if IRREG:
        kk = b * 128 + 16 * j8[None, :, None] + r16[None, None, :]
        g = tl.load(gidx_ptr + kk, mask=kk < K, other=0)
    elif GROUP % 128 == 0 and not SLAB_SCALES:  # the block is one group: one [BN, 1, 1] row
        g = tl.minimum((b * 128) // GROUP, NG - 1)
    else:
        g = tl.minimum((b * 128 + 16 * j8[None, :, None]) // GROUP, NG - 1)
    s = tl.load(s_ptr + g * N + n3).to(tl.float32)
    if HAS_ZP:
        zp = tl.load(zp_ptr + g * N + n3).to(tl.float32)
    else:
        zp = ZP_CONST
    return 16.0 * s, (16.0 + zp) * s


@triton.jit
def _trans_factors(s_ptr, zp_ptr, gidx_ptr, b, j8, r16, K, rbn, N, NG, GROUP: tl.constexpr, HAS_ZP: tl.constexpr,
                   ZP_CONST: tl.constexpr, IRREG: tl.constexpr, SLAB_SCALES: tl.constexpr):
    """_wide_factors for the [8, 16, BN] orientation of w4a16_wideb_kernel (slab j, row r, column n)."""
    n3 = rbn[None, None, :]
    if IRREG:
        kk = b * 128 + 16 * j8[:, None, None] + r16[None, :, None]
        g = tl.load(gidx_ptr + kk, mask=kk < K, other=0)
    elif GROUP % 128 == 0 and not SLAB_SCALES:
        g = tl.minimum((b * 128) // GROUP, NG - 1)
    else:
        g = tl.minimum((b * 128 + 16 * j8[:, None, None]) // GROUP, NG - 1)
    s = tl.load(s_ptr + g * N + n3).to(tl.float32)
    if HAS_ZP:
        zp = tl.load(zp_ptr + g * N + n3).to(tl.float32)
    else:
        zp = ZP_CONST
    return 16.0 * s, (16.0 + zp) * s


@triton.jit
def _code16(q, DT: tl.constexpr):
    """4-bit codes q (16-bit integers) as the 16-bit float 2^e + q, exactly: q ORed into the low
    mantissa bits of 128 (bf16, 7 mantissa bits) or 1024 (fp16, 10). Integer constants and a bitcast
    only (the interpreter has no bf16 constants); the difference of two such values is exactly the
    code difference."""
    if DT == tl.float16:
        return (q | 0x6400).to(tl.float16, bitcast=True)
    else:
        return (q | 0x4300).to(tl.bfloat16, bitcast=True)


@triton.jit
def _swap_epilogue(acc, bias_ptr, c_ptr, rm, rn, rbn, M, N, stride_cm, stride_cs, pid_s, HAS_BIAS: tl.constexpr):
    """acc [BN, BM] (out^T) -> c[rm, rn]; bias added once (by split 0; the split count is not a
    compile-time constant, so one compile serves every layer shape)."""
    if HAS_BIAS:
        bias = tl.load(bias_ptr + rbn).to(tl.float32)
        bias = tl.where(pid_s == 0, bias, 0.0)
        acc = acc + bias[:, None]
    c_ptrs = c_ptr + pid_s.to(tl.int64) * stride_cs + rm[None, :].to(tl.int64) * stride_cm + rn[:, None]
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=(rm[None, :] < M) & (rn[:, None] < N))


# Grid: (N tiles x M tiles, K splits); the M tiles of one N tile run next to each other, so a
# weight tile dequantized by several M tiles is read from HBM once (then L2). GROUP: rows per
# group (K for one group); NG scale rows; SPG: 16-row slabs per group (8 when a 128-row block is
# one group: its factors are loaded once per block). BLOCK_SPLIT: 128-row blocks per split.
# ``magic``: the bits of 1.0 (w4a16_kernels._nib).
@triton.jit(do_not_specialize=["M", "block_split"])  # M and the K split change per call / layer: one compile
def w4a16_swap_kernel(x_ptr, qw_ptr, s_ptr, zp_ptr, gidx_ptr, bias_ptr, c_ptr, M, N, K, NG,
                      stride_xm, stride_cm, block_split, stride_cs, magic, GROUP: tl.constexpr,
                      HAS_ZP: tl.constexpr, ZP_CONST: tl.constexpr, IRREG: tl.constexpr, HAS_BIAS: tl.constexpr,
                      BM: tl.constexpr, BN: tl.constexpr, SPG: tl.constexpr,
                      PAIR: tl.constexpr, REG: tl.constexpr = False, MATH32: tl.constexpr = False,
                      WIDE: tl.constexpr = False, SLAB_SCALES: tl.constexpr = False):
    grid_m = tl.cdiv(M, BM)
    pid = tl.program_id(0)
    pid_m = pid % grid_m
    pid_n = pid // grid_m
    pid_s = tl.program_id(1)
    rn = pid_n * BN + tl.arange(0, BN)
    rbn = rn % N  # (not a clamp: keeps the contiguity along N that coalesced loads need)
    rm = pid_m * BM + tl.arange(0, BM)
    mmask = rm < M
    ram = tl.where(mmask, rm, 0)
    r16 = tl.arange(0, 16)
    x_cols = x_ptr + ram[None, :].to(tl.int64) * stride_xm  # [1, BM]: x^T's columns
    w_rows = qw_ptr + rbn[:, None]  # [BN, 1]: W^T's rows (the words' columns)
    acc = tl.zeros((BN, BM), dtype=tl.float32)
    b_lo = pid_s * block_split
    b_hi = tl.minimum(tl.cdiv(K, 128), b_lo + block_split)
    j8 = tl.arange(0, 8)
    for b in range(b_lo, b_hi):
        if WIDE:  # the block's 8 slabs side by side: one [BN, 128] x [128, BM] dot
            w = tl.load(w_rows + (b * 16 + r16)[None, :].to(tl.int64) * N)  # [BN, 16] words
            kk = b * 128 + tl.arange(0, 128)
            xt = tl.load(x_cols + kk[:, None], mask=(kk < K)[:, None] & mmask[None, :], other=0.0)  # [128, BM]
            fs, fz = _wide_factors(s_ptr, zp_ptr, gidx_ptr, b, j8, r16, K, rbn, N, NG, GROUP, HAS_ZP, ZP_CONST, IRREG,
                                   SLAB_SCALES)
            lsh = tl.maximum(19 - 4 * j8, 0)[None, :, None]  # nibble j to bits 19..22: a left shift for j <= 4,
            rsh = tl.maximum(4 * j8 - 19, 0)[None, :, None]  # a right shift above (sign bits land above bit 22)
            t = (w[:, None, :] << lsh) >> rsh
            v = ((t & 0x780000) | magic).to(tl.float32, bitcast=True)  # 1 + q/16 (_nib: magic in a register)
            a = tl.reshape((v * fs - fz).to(xt.dtype), (BN, 128))  # column 16 j + r: row 128 b + 16 j + r
            acc = tl.dot(a, xt, acc)
        elif REG:  # 16-bit words (the low / high half of each int32: nibbles 0-3 / 4-7) and 16-bit math
            w16 = (qw_ptr.to(tl.pointer_type(tl.int16)) + 2 * rbn[:, None]
                   + (b * 16 + r16)[None, :].to(tl.int64) * (2 * N))
            wlo = tl.load(w16)
            whi = tl.load(w16 + 1)
            for j in tl.static_range(8):
                kk = b * 128 + 16 * j + r16
                xt = tl.load(x_cols + kk[:, None], mask=(kk < K)[:, None] & mmask[None, :], other=0.0)  # [16, BM]
                if j % SPG == 0:  # [BN, 16] scale (and zero) loads: a broadcast would stop the rewrite
                    g = tl.minimum((b * 128 + 16 * j) // GROUP, NG - 1)
                    sb = tl.load(s_ptr + g * N + rbn[:, None] + 0 * r16[None, :])
                    if HAS_ZP:
                        zb = _code16(tl.load(zp_ptr + g * N + rbn[:, None] + 0 * r16[None, :]).to(tl.int16), xt.dtype)
                    else:
                        zb = _code16(tl.full((BN, 16), ZP_CONST, tl.int16), xt.dtype)
                h = wlo if j < 4 else whi
                a = _code16((h >> (4 * (j % 4))) & 0xF, xt.dtype)
                if MATH32:  # Triton's interpreter computes bf16 arithmetic wrongly: the same rounding in fp32
                    a = ((a.to(tl.float32) - zb.to(tl.float32)) * sb.to(tl.float32)).to(xt.dtype)
                else:  # exact difference, one rounding in the product
                    a = (a - zb) * sb
                acc = tl.dot(a, xt, acc)
        elif PAIR:
            w = tl.load(w_rows + (b * 16 + r16)[None, :].to(tl.int64) * N)  # [BN, 16] words
            if SPG == 8:  # the block is one group
                fs, fz = _swap_factors(s_ptr, zp_ptr, gidx_ptr, b * 128, r16, r16 < K, rbn, N, NG, GROUP, HAS_ZP,
                                       ZP_CONST, False)
            for p in tl.static_range(4):
                kl = b * 128 + 16 * p + r16
                kh = kl + 64
                if SPG != 8:
                    fs, fz = _swap_factors(s_ptr, zp_ptr, gidx_ptr, b * 128 + 16 * p, kl, kl < K, rbn, N, NG,
                                           GROUP, HAS_ZP, ZP_CONST, IRREG)
                    fsh, fzh = _swap_factors(s_ptr, zp_ptr, gidx_ptr, b * 128 + 16 * p + 64, kh, kh < K, rbn, N,
                                             NG, GROUP, HAS_ZP, ZP_CONST, IRREG)
                else:
                    fsh, fzh = fs, fz
                lo = _nib(w, p, magic) * fs - fz
                hi = _nib(w, p + 4, magic) * fsh - fzh
                k2 = tl.reshape(tl.join(kl, kh), (32,))  # the operand's column order: 2 r + t
                xt = tl.load(x_cols + k2[:, None], mask=(k2 < K)[:, None] & mmask[None, :], other=0.0)  # [32, BM]
                a = tl.reshape(tl.join(lo, hi), (BN, 32)).to(xt.dtype)
                acc = tl.dot(a, xt, acc)
        else:
            w = tl.load(w_rows + (b * 16 + r16)[None, :].to(tl.int64) * N)  # [BN, 16] words
            for j in tl.static_range(8):
                kk = b * 128 + 16 * j + r16
                kmask = kk < K
                if j % SPG == 0:  # a group starts (IRREG: SPG is 1, per-row factors every slab)
                    fs, fz = _swap_factors(s_ptr, zp_ptr, gidx_ptr, b * 128 + 16 * j, kk, kmask, rbn, N, NG, GROUP,
                                           HAS_ZP, ZP_CONST, IRREG)
                xt = tl.load(x_cols + kk[:, None], mask=kmask[:, None] & mmask[None, :], other=0.0)  # [16, BM]
                a = (_nib(w, j, magic) * fs - fz).to(xt.dtype)
                acc = tl.dot(a, xt, acc)
    _swap_epilogue(acc, bias_ptr, c_ptr, rm, rn, rbn, M, N, stride_cm, stride_cs, pid_s, HAS_BIAS)


# The same blocks with the dequantized weight as the B operand: out [BM, BN] = x [BM, 128] . W [128, BN]
# per block. The weight tile is computed in registers, so Triton stores it to shared memory for the
# wgmma (B is read from shared memory only) and issues one warp_group_dot per block with both operands
# in shared memory: its 8 HGMMAs back to back, one wait. The swapped form's register operand, by
# contrast, is split by Triton into per-16-row dots with a wait after each, and ptxas serializes
# those wgmmas (ptxas info C7515: "wgmma.mma_async instructions are serialized due to non wgmma
# instructions defining accumulator registers ... between start and end of the pipeline stage"; a
# plain Triton matmul with an element-wise op on A shows the same, on B it does not). wgmma needs
# 64 rows of x per warpgroup: for BM < 64 Triton falls back to mma.sync, which is where the swapped
# kernel serves. Grid and arguments as
# w4a16_swap_kernel's.
@triton.jit(do_not_specialize=["M", "block_split"])
def w4a16_wideb_kernel(x_ptr, qw_ptr, s_ptr, zp_ptr, gidx_ptr, bias_ptr, c_ptr, M, N, K, NG,
                       stride_xm, stride_cm, block_split, stride_cs, magic, GROUP: tl.constexpr, HAS_ZP: tl.constexpr,
                       ZP_CONST: tl.constexpr, IRREG: tl.constexpr, HAS_BIAS: tl.constexpr, BM: tl.constexpr,
                       BN: tl.constexpr, SLAB_SCALES: tl.constexpr = False):
    grid_m = tl.cdiv(M, BM)
    pid = tl.program_id(0)
    pid_m = pid % grid_m
    pid_n = pid // grid_m
    pid_s = tl.program_id(1)
    rn = pid_n * BN + tl.arange(0, BN)
    rbn = rn % N
    rm = pid_m * BM + tl.arange(0, BM)
    mmask = rm < M
    ram = tl.where(mmask, rm, 0)
    r16 = tl.arange(0, 16)
    j8 = tl.arange(0, 8)
    x_rows = x_ptr + ram[:, None].to(tl.int64) * stride_xm  # [BM, 1]
    lsh = tl.maximum(19 - 4 * j8, 0)[:, None, None]  # nibble j to bits 19..22 (see _nib)
    rsh = tl.maximum(4 * j8 - 19, 0)[:, None, None]
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    b_lo = pid_s * block_split
    b_hi = tl.minimum(tl.cdiv(K, 128), b_lo + block_split)
    for b in range(b_lo, b_hi):
        w = tl.load(qw_ptr + (b * 16 + r16)[:, None].to(tl.int64) * N + rbn[None, :])  # [16, BN] words
        kk = b * 128 + tl.arange(0, 128)
        xa = tl.load(x_rows + kk[None, :], mask=mmask[:, None] & (kk < K)[None, :], other=0.0)  # [BM, 128]
        fs, fz = _trans_factors(s_ptr, zp_ptr, gidx_ptr, b, j8, r16, K, rbn, N, NG, GROUP, HAS_ZP, ZP_CONST, IRREG,
                                SLAB_SCALES)
        t = (w[None, :, :] << lsh) >> rsh  # [8, 16, BN]
        v = ((t & 0x780000) | magic).to(tl.float32, bitcast=True)  # 1 + q/16 (_nib: magic in a register)
        wd = tl.reshape((v * fs - fz).to(xa.dtype), (128, BN))  # row 16 j + r: row 128 b + 16 j + r
        acc = tl.dot(xa, wd, acc)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + rbn).to(tl.float32)
        acc = acc + tl.where(pid_s == 0, bias, 0.0)[None, :]
    c_ptrs = c_ptr + pid_s.to(tl.int64) * stride_cs + rm[:, None].to(tl.int64) * stride_cm + rn[None, :]
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=mmask[:, None] & (rn[None, :] < N))
