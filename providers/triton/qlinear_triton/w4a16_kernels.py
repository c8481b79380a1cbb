"""@triton.jit W4A16 kernels: 16-bit activations x 4-bit weights with group scales (GPTQ uint4b8, or
uint4 with zero points), optional act-order (g_idx) handled by a K permutation.

Weight layout (made once by ``mp.repack_w4``): int32 [Kp/8, N], Kp = K rounded up to 128. K runs in
blocks of 128 rows stored as 16 word rows; nibble j (bits 4j..4j+3) of word row r of block b holds
row k = 128 b + 16 j + r. So one coalesced [16, BN] word load gives, per nibble j, a contiguous
[16, BN] slab of the weight (rows 128 b + 16 j ..): no reshape or interleave in registers (the
previous [K/8, N] layout needed a [BK/8, 8, BN] -> [BK, BN] reshape, a shared-memory round trip that
made the kernel dequant-bound), and every slab lies in one quantization group (groups are multiples
of 16, or one group). Padded rows hold code 0 and meet x = 0 (masked loads).
Scales are [G, N] (N contiguous); zero points uint8 [G, N]. Imported lazily.

Three kernels, chosen per call by M (mp.TritonW4A16LinearKernel.apply_weights):
- ``w4a16_gemv_kernel``, decode (M <= 2): no tensor cores; codes decode to 1 + q/16 (``_nib``) or,
  two at a time, 1 + q/128 (``_nib_pair``) and accumulate element-wise in fp32 registers, reduced
  over K once at the end; the next block's words and scales are loaded before the current block is
  used. K is split over program_id(1) and the splits are finished in the same launch
  (mm_kernels.finish_splits).
- ``w4a16_kernel``: tensor-core tiles, one tl.dot per 16-row slab entering as (q - zero)/16 with the
  group scale applied to each group's product (act-order with irregular groups: each slab
  dequantized, ``_block_slab``); K is split into fp32 partials summed in order by
  mm_kernels.splitk_reduce_kernel.
- ``w4a16_dequant_kernel``, prefill: the whole weight to a 16-bit buffer for cuBLAS.
All sums over splits run in a fixed order: results are deterministic, with no floating-point atomics.

FP4 (constexpr ``FP4``: 1 NVFP4, 2 MXFP4; weight-only layers of ``fp4.py``): the same layout holds
E2M1 codes (sign in bit 3), decoded by ``_e2m1`` instead of the integer decode, with one bf16 scale
row per 16- or 32-row group (``_fp4_factor``) and a per-tensor fp32 ``alpha`` applied to the fp32 sums
at the end (the GEMV decodes nibbles p and p + 4 together, ``_e2m1_pair``).
"""

from __future__ import annotations

from .mm_kernels import _tile_ids, finish_splits
from .quant_kernels import load, tl

triton = load()
from .launch import fast_kernels  # noqa: E402


@triton.jit
def _group_rows(gidx_ptr, kk, kmask, k_first, GROUP: tl.constexpr, NG, IRREG: tl.constexpr):
    """Scale-row index of each row kk of a slab (IRREG: looked up, sorted act-order groups of
    irregular size) or of the whole slab starting at k_first (scalar)."""
    if IRREG:
        g = tl.load(gidx_ptr + kk, mask=kmask, other=0)
    else:
        g = tl.minimum(k_first // GROUP, NG - 1)
    return g


@triton.jit
def _load_scales(s_ptr, zp_ptr, g, rbn, N, HAS_ZP: tl.constexpr, IRREG: tl.constexpr):
    """(scale, zero offset) as fp32, broadcastable over a [16, BN] slab. The zero offset includes
    2^23 (see _slab); without zero points it is returned as 0 and the constant is applied there."""
    if IRREG:
        s = tl.load(s_ptr + g[:, None] * N + rbn[None, :]).to(tl.float32)
        z = s * 0.0
        if HAS_ZP:
            z = tl.load(zp_ptr + g[:, None] * N + rbn[None, :]).to(tl.float32) + 8388608.0
    else:
        s = tl.load(s_ptr + g * N + rbn).to(tl.float32)[None, :]
        z = s * 0.0
        if HAS_ZP:
            z = tl.load(zp_ptr + g * N + rbn).to(tl.float32)[None, :] + 8388608.0
    return s, z


@triton.jit
def _slab(w, j: tl.constexpr, s, z, HAS_ZP: tl.constexpr, ZP_CONST: tl.constexpr):
    """Nibble j of the [16, BN] words -> dequantized fp32 [16, BN]. No int->float conversion (a
    quarter-rate instruction): OR the code into the mantissa of 2^23, which reads as the float
    2^23 + q exactly; subtracting 2^23 + zero point gives the exact q - zp."""
    q = (((w >> (4 * j)) & 0xF) | 0x4B000000).to(tl.float32, bitcast=True)
    if HAS_ZP:
        q = q - z
    else:
        q = q - (8388608.0 + ZP_CONST)
    return q * s


@triton.jit
def _block_slab(w, b, j: tl.constexpr, r16, K, s_ptr, zp_ptr, gidx_ptr, rbn, N, NG, GROUP: tl.constexpr,
                HAS_ZP: tl.constexpr, ZP_CONST: tl.constexpr, IRREG: tl.constexpr):
    """Slab j of block b's [16, BN] words (rows 128 b + 16 j + r), dequantized to fp32, with its
    row indices and their mask (rows past K)."""
    kk = b * 128 + 16 * j + r16
    kmask = kk < K
    g = _group_rows(gidx_ptr, kk, kmask, b * 128 + 16 * j, GROUP, NG, IRREG)
    s, z = _load_scales(s_ptr, zp_ptr, g, rbn, N, HAS_ZP, IRREG)
    return _slab(w, j, s, z, HAS_ZP, ZP_CONST), kk, kmask


@triton.jit
def _x_slab(x_rows, rmask, perm_ptr, kk, kmask, X_PERM: tl.constexpr):
    """x[rows, kk] as [BM, 16]; padding rows (rmask false) are masked off, not read (see
    mm_kernels.scaled_mm_kernel)."""
    if X_PERM:
        cols = tl.load(perm_ptr + kk, mask=kmask, other=0)
    else:
        cols = kk
    return tl.load(x_rows + cols[None, :], mask=rmask & kmask[None, :], other=0.0)


@triton.jit
def _epilogue(acc, bias_ptr, c_ptr, rm, rn, rbn, M, N, stride_cm, stride_cs, pid_s,
              SPLIT_K: tl.constexpr, HAS_BIAS: tl.constexpr):
    if HAS_BIAS:
        bias = tl.load(bias_ptr + rbn).to(tl.float32)
        if SPLIT_K > 1:
            bias = tl.where(pid_s == 0, bias, 0.0)  # added once, by split 0
        acc = acc + bias[None, :]
    c_ptrs = c_ptr + pid_s.to(tl.int64) * stride_cs + rm[:, None].to(tl.int64) * stride_cm + rn[None, :]
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=(rm[:, None] < M) & (rn[None, :] < N))


@triton.jit
def _e2m1(w, j: tl.constexpr):
    """Nibble j of each word, an E2M1 code c (sign in bit 3), as the fp32 value(c) * 2^-14, exactly:
    h = (c & 7) << 9 | (c & 8) << 12 puts c's exponent into the low two exponent bits of an fp16 and
    its mantissa bit on top of the fp16 mantissa, so h reads as E2M1 with the bias 15 instead of 1:
    value * 2^-14, subnormals included (e = 0 codes are fp16 subnormals 0 and 2^-15, the same
    structure). fp16 -> fp32 converts subnormals exactly (no flush); the kernels' alpha carries the 2^14."""
    if 4 * j <= 9:
        t = w << (9 - 4 * j)  # the code's bits 0..3 at bits 9..12
    else:
        t = w >> (4 * j - 9)
    h = (t & 0xE00) | ((t << 3) & 0x8000)
    return h.to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)


@triton.jit
def _e2m1_pair(w, p: tl.constexpr):
    """Nibbles p and p + 4 (bits 4p.. and 16 + 4p..) as fp32 value * 2^-14, from one shift and two
    and-ors for both: the int32 then holds the two fp16 codes of _e2m1 (low and high half), which
    the fp16 -> fp32 conversions read half by half (HADD2.F32 with a half selector, no unpack)."""
    if 4 * p <= 9:
        t = w << (9 - 4 * p)
    else:
        t = w >> (4 * p - 9)
    h = (t & 0x0E000E00) | ((t << 3) & -2147450880)  # 0x80008000 as an int32
    lo = h.to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)
    hi = (h >> 16).to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)
    return lo, hi


@triton.jit
def _e2m1_dot(w, j: tl.constexpr, DT: tl.constexpr):
    """Nibble j as the 16-bit tensor-core operand: bf16 takes value * 2^-14 (normal in bf16, exact);
    fp16 would make the 0.5 codes fp16 subnormals, so it takes the value itself (the host's alpha
    for fp16 tiles is 2^-14 smaller, see fp4.py)."""
    v = _e2m1(w, j)
    if DT == tl.float16:
        v = v * 16384.0
    return v.to(DT)


@triton.jit
def _fp4_factor(s_ptr, g, rbn, N):
    """Scale row g of an FP4 layer as fp32 [1, BN] factors. The rows are bf16 made at load time
    (fp4.py: NVFP4's E4M3 values, exact in bf16; MXFP4's 2^(e - 113), the E8M0 scale times the
    2^14 of _e2m1, normal for every code the load allows): one conversion per factor. In the GEMV
    each thread holds one row of 16 columns of a slab, so with 16-row groups every weight meets its
    own factor. sm_90 SASS, main loop, per 128 weights a thread, scale bytes decoded here vs bf16
    rows: NVFP4 GEMV 1053 vs 1084, NVFP4 16-row tiles 960 vs 820; MXFP4 GEMV (E8M0 bytes) 935 vs 879:
    bf16 rows for both formats (2 bytes per 16 / 32 weights, as marlin's 16-bit scales)."""
    return tl.load(s_ptr + g * N + rbn).to(tl.float32)[None, :]


# GROUP: rows per group (the whole K for one group); NG scale rows. IRREG: act-order groups of
# irregular size, looked up per row in gidx. X_PERM: x's columns are gathered through perm (act-order
# layers, whose weight rows were sorted by group at load time). BLOCK_SPLIT: 128-row blocks per split.
# Regular groups: the slabs go to the tensor cores as the 16-bit floats (q - zero) / 16, exact in fp16
# and bf16 (a shift, one and-or, one subtraction and half a pack per weight: _nib, then 1 + zero/16
# off); a group's product is scaled by 16 s into the accumulator once (_group_scale). IRREG
# dequantizes every slab with its per-row scales (_block_slab).
@triton.jit(do_not_specialize=["M"])  # M changes every call: one compile serves all
def w4a16_kernel(x_ptr, qw_ptr, s_ptr, zp_ptr, perm_ptr, gidx_ptr, bias_ptr, c_ptr, M, N, K, NG,
                 stride_xm, stride_cm, block_split, stride_cs, magic, SPLIT_K: tl.constexpr,
                 GROUP: tl.constexpr, HAS_ZP: tl.constexpr, ZP_CONST: tl.constexpr, X_PERM: tl.constexpr,
                 IRREG: tl.constexpr, HAS_BIAS: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                 GROUP_M: tl.constexpr, SPG: tl.constexpr, alpha=1.0, FP4: tl.constexpr = 0):
    pid_m, pid_n = _tile_ids(M, N, BM, BN, GROUP_M)
    pid_s = tl.program_id(1)
    rm = pid_m * BM + tl.arange(0, BM)
    rn = pid_n * BN + tl.arange(0, BN)
    r16 = tl.arange(0, 16)
    ram = tl.where(rm < M, rm, 0)
    rbn = rn % N  # (not a clamp: keeps the contiguity along N that coalesced loads need)
    x_rows = x_ptr + ram[:, None].to(tl.int64) * stride_xm
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    b_lo = pid_s * block_split
    b_hi = tl.minimum(tl.cdiv(K, 128), b_lo + block_split)
    for b in range(b_lo, b_hi):
        w = tl.load(qw_ptr + (b * 16 + r16)[:, None].to(tl.int64) * N + rbn[None, :])
        for j in tl.static_range(8):
            if IRREG:
                wf, kk, kmask = _block_slab(w, b, j, r16, K, s_ptr, zp_ptr, gidx_ptr, rbn, N, NG, GROUP, HAS_ZP,
                                            ZP_CONST, IRREG)
                x = _x_slab(x_rows, (rm < M)[:, None], perm_ptr, kk, kmask, X_PERM)
                acc = tl.dot(x, wf.to(x.dtype), acc)
            else:
                kk = b * 128 + 16 * j + r16
                x = _x_slab(x_rows, (rm < M)[:, None], perm_ptr, kk, kk < K, X_PERM)
                if FP4:  # E2M1 codes: the group's scale factor, a fresh product
                    if j % SPG == 0:
                        fs = _fp4_factor(s_ptr, tl.minimum((b * 128 + 16 * j) // GROUP, NG - 1), rbn, N)
                        ga = tl.dot(x, _e2m1_dot(w, j, x.dtype))
                    else:
                        ga = tl.dot(x, _e2m1_dot(w, j, x.dtype), ga)
                elif j % SPG == 0:  # a group starts: its scale and zero, a fresh product
                    fs, zc = _group_scale(s_ptr, zp_ptr, tl.minimum((b * 128 + 16 * j) // GROUP, NG - 1), rbn, N,
                                          HAS_ZP, ZP_CONST)
                    ga = tl.dot(x, (_nib(w, j, magic) - zc).to(x.dtype))
                else:
                    ga = tl.dot(x, (_nib(w, j, magic) - zc).to(x.dtype), ga)
                if j % SPG == SPG - 1:
                    acc += ga * fs
    if FP4:
        acc = acc * alpha
    _epilogue(acc, bias_ptr, c_ptr, rm, rn, rbn, M, N, stride_cm, stride_cs, pid_s, SPLIT_K, HAS_BIAS)


@triton.jit
def _x_col(x_ptr, row, stride_xm, perm_ptr, kk, kmask, X_PERM: tl.constexpr):
    """One row's 16 activations of a slab as a [16, 1] fp32 column. Loaded as a 1-D vector and
    expanded, so Triton loads it straight into the layout the [16, BN] product needs (a 2-D or
    3-D formulation made it convert every product through shared memory)."""
    if X_PERM:
        cols = tl.load(perm_ptr + kk, mask=kmask, other=0)
    else:
        cols = kk
    return tl.load(x_ptr + row * stride_xm + cols, mask=kmask, other=0.0).to(tl.float32)[:, None]


@triton.jit
def _nib(w, j: tl.constexpr, magic):
    """Nibble j of each word as the float 1 + q / 16, exactly: the code is moved into the top four
    mantissa bits of 1.0 (a shift and one and-or per weight; no int->float conversion, no
    subtraction: x * (1 + q/16) accumulates directly, see w4a16_gemv_kernel). ``magic`` is the bits
    of 1.0 passed at run time: a constant would take an and and an or (an instruction holds one
    immediate); a register lets both fold into one three-input logic op."""
    if 4 * j <= 19:
        t = w << (19 - 4 * j)
    else:
        t = w >> (4 * j - 19)
    return ((t & 0x780000) | magic).to(tl.float32, bitcast=True)


@triton.jit
def _nib_pair(w, p: tl.constexpr, magic):
    """Nibbles p and p + 4 of each word (bits 4p and 16 + 4p) in three instructions for two weights:
    v = (w >> 4p) & 0x000F000F | bits(1.0) holds, as an fp32, hi = 1 + q_hi / 128 + q_lo * 2^-23, and
    lo = (v << 16) + bits(1.0) is exactly 1 + q_lo / 128 (one shift-add). hi's last term (q_lo in
    the low mantissa bits) moves each weight by at most 15 * 2^-16 of its group scale: far below the
    2^-9 a bf16 rounding of the weight would cost."""
    if p == 0:
        t = w
    else:
        t = w >> (4 * p)
    v = (t & 0x000F000F) | magic
    return ((v << 16) + magic).to(tl.float32, bitcast=True), v.to(tl.float32, bitcast=True)


@triton.jit
def _group_row(s_ptr, zp_ptr, g, rbn, N, HAS_ZP: tl.constexpr, ZP_CONST: tl.constexpr):
    """Scale row g as [1, BN] fp32, and its zero points (a constant without them)."""
    s = tl.load(s_ptr + g * N + rbn).to(tl.float32)[None, :]
    if HAS_ZP:
        zp = tl.load(zp_ptr + g * N + rbn).to(tl.float32)[None, :]
    else:
        zp = ZP_CONST
    return s, zp


@triton.jit
def _group_factors(s_ptr, zp_ptr, g, rbn, N, HAS_ZP: tl.constexpr, ZP_CONST: tl.constexpr, UNIT: tl.constexpr):
    """(UNIT s, (UNIT + zero) s) of scale row g, each [1, BN] fp32: they turn a group's sums
    A = sum x (1 + q/UNIT) and X = sum x into sum x (q - zero) s = UNIT s A - (UNIT + zero) s X."""
    s, zp = _group_row(s_ptr, zp_ptr, g, rbn, N, HAS_ZP, ZP_CONST)
    return UNIT * s, (UNIT + zp) * s


@triton.jit
def _group_scale(s_ptr, zp_ptr, g, rbn, N, HAS_ZP: tl.constexpr, ZP_CONST: tl.constexpr):
    """(16 s, 1 + zero / 16) of scale row g: (1 + q/16) - (1 + zero/16) = (q - zero) / 16, and 16 s
    times a group's product of those is its share of x W."""
    s, zp = _group_row(s_ptr, zp_ptr, g, rbn, N, HAS_ZP, ZP_CONST)
    return 16.0 * s, 1.0 + zp * 0.0625


@triton.jit
def _gemv_row_out(acc, row, bias_ptr, c_ptr, rn, rbn, M, N, stride_cm, stride_cs, pid_s,
                  SPLIT_K: tl.constexpr, HAS_BIAS: tl.constexpr):
    _epilogue(tl.sum(acc, axis=0)[None, :], bias_ptr, c_ptr, tl.arange(0, 1) + row, rn, rbn, M, N, stride_cm,
              stride_cs, pid_s, SPLIT_K, HAS_BIAS)


# Decode: BM (1 or 2) rows, each with its own [16, BN] fp32 accumulator (one reduction over the 16
# rows at the end); grid (N / BN, splits). The codes become floats 1 + q / UNIT and accumulate into
# the group's sum A = sum x (1 + q/UNIT) with one FMA each; at the group's last slab A and X = sum x
# are scaled into the accumulator (_group_factors). ONE_SCALE (GROUP % 128 == 0 or one group): the
# block is one group, its factors are one row prefetched with its words, and nibbles j and j + 4
# decode together (_nib_pair, UNIT 128). Otherwise each nibble on its own (_nib, UNIT 16) with SPG
# 16-row slabs per group (GROUP / 16, at most 8); IRREG (act-order groups of irregular size):
# per-row scale lookup, dequantized per slab. ``magic``: the bits of 1.0 (see _nib).
@triton.jit(do_not_specialize=["M"])
def w4a16_gemv_kernel(x_ptr, qw_ptr, s_ptr, zp_ptr, perm_ptr, gidx_ptr, bias_ptr, c_ptr, M, N, K, NG,
                      stride_xm, stride_cm, block_split, stride_cs, out_ptr, cnt_ptr, stride_om, magic,
                      PTX: tl.constexpr, SPLIT_K: tl.constexpr,
                      GROUP: tl.constexpr, HAS_ZP: tl.constexpr, ZP_CONST: tl.constexpr, X_PERM: tl.constexpr,
                      IRREG: tl.constexpr, HAS_BIAS: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                      ONE_SCALE: tl.constexpr, SPG: tl.constexpr, alpha=1.0, FP4: tl.constexpr = 0):
    pid_n = tl.program_id(0)
    pid_s = tl.program_id(1)
    rn = pid_n * BN + tl.arange(0, BN)
    r16 = tl.arange(0, 16)
    rbn = rn % N  # (not a clamp: keeps the contiguity along N that coalesced loads need)
    row1 = tl.minimum(1, M - 1)  # a second row past M repeats row 0 (computed, never stored)
    w_cols = qw_ptr + r16[:, None].to(tl.int64) * N + rbn[None, :]
    acc0 = tl.zeros((16, BN), dtype=tl.float32)
    acc1 = acc0
    b_lo = pid_s * block_split
    b_hi = tl.minimum(tl.cdiv(K, 128), b_lo + block_split)
    # software prefetch (the loop's loads feed no tl.dot, so Triton's pipeliner may leave them alone)
    w_next = tl.load(w_cols + b_lo * 16 * N)
    if ONE_SCALE:
        fs_next, fz_next = _group_factors(s_ptr, zp_ptr, tl.minimum((b_lo * 128) // GROUP, NG - 1), rbn, N,
                                          HAS_ZP, ZP_CONST, 128)
    for b in range(b_lo, b_hi):
        w = w_next
        more = b + 1 < b_hi
        w_next = tl.load(w_cols + (b + 1) * 16 * N, mask=more, other=0)
        if ONE_SCALE:
            fs, fz = fs_next, fz_next
            g_next = tl.where(more, tl.minimum(((b + 1) * 128) // GROUP, NG - 1), 0)
            fs_next, fz_next = _group_factors(s_ptr, zp_ptr, g_next, rbn, N, HAS_ZP, ZP_CONST, 128)
            for p in tl.static_range(4):
                lo, hi = _nib_pair(w, p, magic)
                kl = b * 128 + 16 * p + r16
                kh = kl + 64
                xl0 = _x_col(x_ptr, 0, stride_xm, perm_ptr, kl, kl < K, X_PERM)
                xh0 = _x_col(x_ptr, 0, stride_xm, perm_ptr, kh, kh < K, X_PERM)
                if BM > 1:
                    xl1 = _x_col(x_ptr, row1, stride_xm, perm_ptr, kl, kl < K, X_PERM)
                    xh1 = _x_col(x_ptr, row1, stride_xm, perm_ptr, kh, kh < K, X_PERM)
                if p == 0:
                    ga0 = xl0 * lo + xh0 * hi
                    gx0 = xl0 + xh0
                    if BM > 1:
                        ga1 = xl1 * lo + xh1 * hi
                        gx1 = xl1 + xh1
                else:
                    ga0 = ga0 + xl0 * lo  # two statements: two FMAs (one expression: mul, fma, add)
                    ga0 = ga0 + xh0 * hi
                    gx0 += xl0 + xh0
                    if BM > 1:
                        ga1 = ga1 + xl1 * lo
                        ga1 = ga1 + xh1 * hi
                        gx1 += xl1 + xh1
            acc0 += ga0 * fs - gx0 * fz
            if BM > 1:
                acc1 += ga1 * fs - gx1 * fz
        elif FP4:  # E2M1, slabs p and p + 4 decoded together; per group: sum x * value * 2^-14, then scaled
            for p in tl.static_range(4):
                lo, hi = _e2m1_pair(w, p)
                kl = b * 128 + 16 * p + r16
                kh = kl + 64
                xl0 = _x_col(x_ptr, 0, stride_xm, perm_ptr, kl, kl < K, X_PERM)
                xh0 = _x_col(x_ptr, 0, stride_xm, perm_ptr, kh, kh < K, X_PERM)
                if BM > 1:
                    xl1 = _x_col(x_ptr, row1, stride_xm, perm_ptr, kl, kl < K, X_PERM)
                    xh1 = _x_col(x_ptr, row1, stride_xm, perm_ptr, kh, kh < K, X_PERM)
                if p % SPG == 0:  # groups start (SPG: 1 NVFP4, 2 MXFP4): their factors, fresh sums
                    fl = _fp4_factor(s_ptr, tl.minimum((b * 128 + 16 * p) // GROUP, NG - 1), rbn, N)
                    fh = _fp4_factor(s_ptr, tl.minimum((b * 128 + 16 * p + 64) // GROUP, NG - 1), rbn, N)
                    gl0 = xl0 * lo
                    gh0 = xh0 * hi
                    if BM > 1:
                        gl1 = xl1 * lo
                        gh1 = xh1 * hi
                else:
                    gl0 += xl0 * lo
                    gh0 += xh0 * hi
                    if BM > 1:
                        gl1 += xl1 * lo
                        gh1 += xh1 * hi
                if p % SPG == SPG - 1:
                    acc0 += gl0 * fl
                    acc0 += gh0 * fh
                    if BM > 1:
                        acc1 += gl1 * fl
                        acc1 += gh1 * fh
        else:
            for j in tl.static_range(8):
                kk = b * 128 + 16 * j + r16
                kmask = kk < K
                x0 = _x_col(x_ptr, 0, stride_xm, perm_ptr, kk, kmask, X_PERM)
                if BM > 1:
                    x1 = _x_col(x_ptr, row1, stride_xm, perm_ptr, kk, kmask, X_PERM)
                if IRREG:
                    s, z = _load_scales(s_ptr, zp_ptr, tl.load(gidx_ptr + kk, mask=kmask, other=0), rbn, N, HAS_ZP,
                                        True)
                    wf = _slab(w, j, s, z, HAS_ZP, ZP_CONST)
                    acc0 += x0 * wf
                    if BM > 1:
                        acc1 += x1 * wf
                else:
                    v = _nib(w, j, magic)
                    if j % SPG == 0:  # a group starts: its factors and fresh sums
                        fs, fz = _group_factors(s_ptr, zp_ptr, tl.minimum((b * 128 + 16 * j) // GROUP, NG - 1),
                                                rbn, N, HAS_ZP, ZP_CONST, 16)
                        ga0 = x0 * v
                        gx0 = x0
                        if BM > 1:
                            ga1 = x1 * v
                            gx1 = x1
                    else:
                        ga0 += x0 * v
                        gx0 += x0
                        if BM > 1:
                            ga1 += x1 * v
                            gx1 += x1
                    if j % SPG == SPG - 1:  # the group ends: scale its sums into the accumulators
                        acc0 += ga0 * fs - gx0 * fz
                        if BM > 1:
                            acc1 += ga1 * fs - gx1 * fz
    if FP4:
        acc0 = acc0 * alpha
        acc1 = acc1 * alpha
    _gemv_row_out(acc0, 0, bias_ptr, c_ptr, rn, rbn, M, N, stride_cm, stride_cs, pid_s, SPLIT_K, HAS_BIAS)
    if BM > 1:
        _gemv_row_out(acc1, 1, bias_ptr, c_ptr, rn, rbn, M, N, stride_cm, stride_cs, pid_s, SPLIT_K, HAS_BIAS)
    if SPLIT_K > 1:  # c_ptr held fp32 partials: the last program of this column tile writes out_ptr
        finish_splits(c_ptr, out_ptr, cnt_ptr, pid_n, rn, M, N, stride_cs, stride_cm, stride_om, BM, SPLIT_K, PTX)


# Prefill: dequantize the whole weight once into a 16-bit [K, N] buffer (rows in the layer's
# original K order: act-order rows are scattered back through perm, so x needs no gather) for a
# cuBLAS GEMM. From a few dozen rows on this beats re-dequantizing every tile for every BM rows.
# Grid: (128-row blocks, N / BN).
@triton.jit
def w4a16_dequant_kernel(qw_ptr, s_ptr, zp_ptr, perm_ptr, gidx_ptr, w_ptr, N, K, NG, GROUP: tl.constexpr,
                         HAS_ZP: tl.constexpr, ZP_CONST: tl.constexpr, X_PERM: tl.constexpr, IRREG: tl.constexpr,
                         BN: tl.constexpr, alpha=1.0, FP4: tl.constexpr = 0):
    b = tl.program_id(0)
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    rbn = rn % N
    r16 = tl.arange(0, 16)
    w = tl.load(qw_ptr + (b * 16 + r16)[:, None].to(tl.int64) * N + rbn[None, :])
    for j in tl.static_range(8):
        if FP4:  # alpha here is the GEMV's (2^14 and the per-tensor factor); one rounding, at the store
            kk = b * 128 + 16 * j + r16
            kmask = kk < K
            wf = _e2m1(w, j) * _fp4_factor(s_ptr, tl.minimum((b * 128 + 16 * j) // GROUP, NG - 1), rbn, N) * alpha
        else:
            wf, kk, kmask = _block_slab(w, b, j, r16, K, s_ptr, zp_ptr, gidx_ptr, rbn, N, NG, GROUP, HAS_ZP, ZP_CONST,
                                        IRREG)
        if X_PERM:
            rows = tl.load(perm_ptr + kk, mask=kmask, other=0)
        else:
            rows = kk
        tl.store(w_ptr + rows[:, None].to(tl.int64) * N + rn[None, :], wf.to(w_ptr.dtype.element_ty),
                 mask=kmask[:, None] & (rn[None, :] < N))


fast_kernels(globals())  # repeat launches skip triton's binder (launch.py)
