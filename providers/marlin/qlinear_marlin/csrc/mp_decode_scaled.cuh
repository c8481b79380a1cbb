// Decode GEMM for the codes the integer decode kernel (mp_decode.cuh) does not take: float codes
// (E2M1: NVFP4, MXFP4; E4M3: FP8, MXFP8) and 8-bit integer codes (W8A16, with or without zero
// points), up to 16 activation rows. Same tile layout and work split as mp_decode.cuh: the weight is
// the mma's A operand, straight from global memory into registers, a chunk of k tiles in flight per
// warp, PDL, split-K over whole chunks, blocks of 8 rows, shared tail decode_finish.
//
// What differs: the integer kernel's "sum x * (MAGIC + code), correct once per group" needs codes
// that are an affine function of their bits and exact after MAGIC; float codes are not affine and
// bfloat16 cannot hold 128 + an 8-bit code. So here each A register (two weights) is dequantized as
// the tile kernel does it (dequant_pair, marlin_mp.cuh: the same rounding): float codes are placed
// into T (fp_raw, exact) and multiplied once by the group scale, which carries the placement's power
// of two (fp.py code_scales); 8-bit integers are (code - zero) * scale (bf16: two exact nibble
// sums). The mma accumulates in fp32 over the whole slice, with no per-group fold. Instructions per
// weight and lane (sm_90a SASS, inner loop): ~3.2 for E2M1 in bf16, ~3 for E4M3, ~4 for 8-bit
// integers in bf16: E2M1 is at the issue rate that streaming 4-bit weights at full bandwidth allows,
// 8-bit codes (twice the bytes per weight) below it.
//
// Chunks: 8 k tiles of 4-bit codes or 4 of 8-bit codes (128 bytes of weight per lane either way).
// Scales (and zero points): SPC loads per chunk and lane (a uint4 = the lane's 8 columns):
// CH / (k tiles per group) for groups smaller than a chunk (NVFP4: 16 -> 8 loads, MX: 32 -> 4 or 2),
// else 1 (the chunk's group: 128-blocks, per channel). They are prefetched a chunk ahead like the
// weights, into the registers of a group as soon as its last tile is computed.
#pragma once

#include "mp_decode.cuh"

namespace qlinear_marlin {

__device__ __forceinline__ uint32_t word(const uint4& v, int i) {  // i: a compile-time constant
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

template <typename T>
__device__ __forceinline__ T entry(const uint4& v, int e) {  // 16-bit value e of 8; e a compile-time constant
  const uint32_t pr = word(v, e / 2);
  const unsigned short h = (unsigned short)(e % 2 ? pr >> 16 : pr & 0xFFFFu);
  return *reinterpret_cast<const T*>(&h);
}

// Loads that run only when `pred` holds, as predicated instructions (PTX @p): the prefetch of the next
// chunk is conditional, and left to the compiler that condition became branches with reconvergence
// in the main loop (a third more instructions) whenever the Params struct changed layout; an
// explicit predicate keeps the loop straight. The destination keeps its value when pred is false.
// Only the weight stream's load is volatile (as in mp_decode.cuh); the x and scale loads stay free
// for the compiler to schedule.
__device__ __forceinline__ void ld_stream_if(uint4& v, const uint4* ptr, bool pred) {  // L1 bypass
  asm volatile("{\n .reg .pred q;\n setp.ne.b32 q, %5, 0;\n @q ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n}\n"
               : "+r"(v.x), "+r"(v.y), "+r"(v.z), "+r"(v.w)
               : "l"(ptr), "r"((int)pred));
}
__device__ __forceinline__ void ldg4_if(uint4& v, const uint4* ptr, bool pred) {
  asm("{\n .reg .pred q;\n setp.ne.b32 q, %5, 0;\n @q ld.global.nc.v4.u32 {%0,%1,%2,%3}, [%4];\n}\n"
               : "+r"(v.x), "+r"(v.y), "+r"(v.z), "+r"(v.w)
               : "l"(ptr), "r"((int)pred));
}
__device__ __forceinline__ void ldg_if(uint32_t& v, const void* ptr, bool pred) {
  asm("{\n .reg .pred q;\n setp.ne.b32 q, %2, 0;\n @q ld.global.nc.u32 %0, [%1];\n}\n"
               : "+r"(v)
               : "l"(ptr), "r"((int)pred));
}

// k tiles per chunk: 128 bytes of weight per lane with one row block (decode_chunk_tiles), half that
// with two (their second B operand and accumulators take the registers)
template <int BITS, int RB>
__host__ __device__ constexpr int scaled_chunk() {
  return decode_chunk_tiles(BITS) / RB;
}

// FP: float codes (no zero points) or 8-bit integer codes (HAS_ZP: per-group zero offsets in p.zm).
// RB: row blocks of 8 per block. M 9..16 takes RB = 2: each weight pair is dequantized once for both
// mmas (the integer kernel runs two blocks instead: its dequantization is cheap, this one's is not).
template <typename T, int BITS, bool FP, bool HAS_ZP, int WARPS, int SPC, int RB>
__global__ void __launch_bounds__(WARPS * 32, 16 / WARPS) mp_decode_scaled_kernel(const Params p) {
  static_assert(FP ? !HAS_ZP : BITS == 8, "float codes have no zero points; 4-bit integer codes take mp_decode.cuh");
  using Tr = Traits<T>;
  constexpr int CH = scaled_chunk<BITS, RB>();
  constexpr int WV = BITS / 4;       // uint4 per lane per k tile
  constexpr int TPG = CH / SPC;      // k tiles per scale group when SPC > 1
  allow_dependent_launch();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  // the launcher sets p.row_blocks = 1 (both row blocks live in one block), so blockIdx.x is the
  // column tile; the shared decode_finish reads the same fields as for the integer kernel
  const int ntile = blockIdx.x >> (p.row_blocks - 1), split = blockIdx.y;
  const int row0 = 8 * (blockIdx.x & (p.row_blocks - 1));
  const int n_tiles = p.N / kTileN, tiles_k = p.Kp / kTileK;
  const int s_lo = split * p.slice_tiles;
  const int s_hi = min(s_lo + p.slice_tiles, tiles_k);
  const int n_chunks = (s_hi - s_lo) / CH;  // whole chunks: the launcher requires Kp % (16 * CH) == 0
  const uint4* wt = static_cast<const uint4*>(p.w) + ((size_t)ntile * tiles_k * 32 + lane) * WV;
  const uint4* s4 = static_cast<const uint4*>(p.s);
  const uint4* z4 = static_cast<const uint4*>(p.zm);
  const int tpg = p.group_k / kTileK;  // k tiles per group (SPC == 1: a multiple of CH)

  const T* xrow[RB];  // rows past M read row 0: their output columns are never stored
#pragma unroll
  for (int rb = 0; rb < RB; ++rb) {
    const int row = row0 + 8 * rb + g;
    xrow[rb] = static_cast<const T*>(p.x) + (size_t)(row < p.M ? row : 0) * p.Kp + 2 * t;
  }

  float acc[RB][4][4];
#pragma unroll
  for (int rb = 0; rb < RB; ++rb)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[rb][j][i] = 0.f;

  uint4 w[CH][WV];  // zeroed: the predicated loads below keep a register's value when they do not run
  uint32_t b[CH][RB][2];
  uint4 sc[SPC], zc[HAS_ZP ? SPC : 1];
#pragma unroll
  for (int i = 0; i < CH; ++i) {
#pragma unroll
    for (int v = 0; v < WV; ++v) w[i][v] = make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int rb = 0; rb < RB; ++rb) b[i][rb][0] = b[i][rb][1] = 0;
  }
#pragma unroll
  for (int s = 0; s < SPC; ++s) sc[s] = zc[HAS_ZP ? s : 0] = make_uint4(0, 0, 0, 0);
  auto load_w = [&](const uint4* wc, int i, bool pred) {
#pragma unroll
    for (int v = 0; v < WV; ++v) ld_stream_if(w[i][v], wc + i * 32 * WV + v, pred);
  };
  auto load_x = [&](int k0, int i, bool pred) {  // k tile i of the chunk starting at element k0
#pragma unroll
    for (int rb = 0; rb < RB; ++rb) {
      const unsigned int* xp = reinterpret_cast<const unsigned int*>(xrow[rb] + k0 + i * kTileK);
      ldg_if(b[i][rb][0], xp, pred);
      ldg_if(b[i][rb][1], xp + 4, pred);  // k + 8
    }
  };
  // scale load s of the chunk starting at k tile kt0: the group of its tile s * TPG (SPC > 1) or of
  // its first tile
  auto load_s = [&](int kt0, int s, bool pred) {
    const int grp = SPC > 1 ? kt0 / TPG + s : kt0 / tpg;
    const size_t idx = ((size_t)grp * n_tiles + ntile) * 8 + g;
    ldg4_if(sc[s], s4 + idx, pred);
    if constexpr (HAS_ZP) ldg4_if(zc[s], z4 + idx, pred);
  };

  constexpr int kStep = WARPS * CH;  // k tiles between a warp's chunks
  int c = warp;
  const uint4* wc = wt + (size_t)(s_lo + c * CH) * 32 * WV;
  int xk = (s_lo + c * CH) * kTileK;
  const bool any = c < n_chunks;
  // weights and scales before the wait for the previous kernel (PDL), x after
#pragma unroll
  for (int i = 0; i < CH; ++i) load_w(wc, i, any);
#pragma unroll
  for (int s = 0; s < SPC; ++s) load_s(s_lo + c * CH, s, any);
  grid_dependency_wait();
#pragma unroll
  for (int i = 0; i < CH; ++i) load_x(xk, i, any);
  for (; c < n_chunks; c += WARPS) {
    const bool has_next = c + WARPS < n_chunks;
    const int next_kt0 = s_lo + (c + WARPS) * CH;
    wc += kStep * 32 * WV;
    xk += kStep * kTileK;
#pragma unroll
    for (int i = 0; i < CH; ++i) {
      const uint4& sv = sc[i / TPG];  // this tile's group (SPC == 1: TPG == CH, the chunk's)
      const uint4& zv = zc[HAS_ZP ? i / TPG : 0];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        // A fragment of output columns 16j.. x 16 k; entry 2j: column 16j + g, 2j + 1: 16j + 8 + g.
        // r = {cols g: k 2t.., cols g+8: k 2t.., cols g: k 2t+8.., cols g+8: k 2t+8..}, codes at bits
        // [0, BITS) and [16, 16 + BITS)
        uint32_t r[4];
        if constexpr (BITS == 4) {  // word j: nibble pairs at shifts 0, 8 (cols +8), 4 (k+8), 12
          const uint32_t q = word(w[i][0], j);
          r[0] = q;
          r[1] = q >> 8;
          r[2] = q >> 4;
          r[3] = q >> 12;
        } else {  // words 2j (cols g), 2j + 1 (cols g+8): byte pairs at shifts 0 and 8 (k+8)
          const uint32_t q0 = word(w[i][j / 2], 2 * (j % 2)), q1 = word(w[i][j / 2], 2 * (j % 2) + 1);
          r[0] = q0;
          r[1] = q1;
          r[2] = q0 >> 8;
          r[3] = q1 >> 8;
        }
        uint32_t a[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = 2 * j + (e % 2);
          a[e] = dequant_pair<T, BITS, HAS_ZP, FP>(r[e], HAS_ZP ? entry<T>(zv, col) : T(), entry<T>(sv, col));
        }
#pragma unroll
        for (int rb = 0; rb < RB; ++rb) Tr::mma(acc[rb][j], a, b[i][rb]);
      }
      if (i % TPG == TPG - 1) load_s(next_kt0, i / TPG, has_next);  // the group's last tile: next chunk's values
      load_w(wc, i, has_next);
      load_x(xk, i, has_next);
    }
  }
  if constexpr (RB == 1) {
    decode_finish<T, WARPS>(p, acc[0], blockIdx.x & (p.row_blocks - 1), ntile, split, p.splits);
  } else {
    decode_finish<T, WARPS>(p, acc[0], 0, ntile, split, p.splits);
    if (p.M > 8) decode_finish<T, WARPS>(p, acc[1], 1, ntile, split, p.splits);  // uniform over the block
  }
}

template <typename T, int BITS, bool FP, bool HAS_ZP, int WARPS, int SPC, int RB>
cudaError_t launch_decode_scaled_t(Params p, cudaStream_t stream) {
  constexpr auto kern = mp_decode_scaled_kernel<T, BITS, FP, HAS_ZP, WARPS, SPC, RB>;
  int resident = 1;
  const cudaError_t e = resident_blocks<kern>(WARPS * 32, 0, resident);
  if (e != cudaSuccess) return e;
  choose_decode_splits(p, resident, scaled_chunk<BITS, RB>());
  return launch_pdl(kern, dim3(p.N / kTileN * p.row_blocks, p.splits), dim3(WARPS * 32), stream, p.pdl != 0, p);
}

template <typename T, int BITS, bool FP, bool HAS_ZP, int SPC, int RB>
cudaError_t launch_decode_scaled_spc(const Params& p, cudaStream_t stream) {
  int warps = 8;
  const cudaError_t e = pick_decode_warps<mp_decode_scaled_kernel<T, BITS, FP, HAS_ZP, 8, SPC, RB>>(p, warps);
  if (e != cudaSuccess) return e;
  return warps == 4 ? launch_decode_scaled_t<T, BITS, FP, HAS_ZP, 4, SPC, RB>(p, stream)
                    : launch_decode_scaled_t<T, BITS, FP, HAS_ZP, 8, SPC, RB>(p, stream);
}

template <typename T, int BITS, bool FP, bool HAS_ZP, int RB>
cudaError_t launch_decode_scaled_rb(const Params& p, cudaStream_t stream) {
  constexpr int CH = scaled_chunk<BITS, RB>();
  const int tpg = p.group_k / kTileK;
  const int spc = tpg % CH == 0 ? 1 : CH / tpg;
  if (spc == 1) return launch_decode_scaled_spc<T, BITS, FP, HAS_ZP, 1, RB>(p, stream);
  if constexpr (CH >= 2) {  // SPC <= CH: instantiate only what a chunk can hold
    if (spc == 2) return launch_decode_scaled_spc<T, BITS, FP, HAS_ZP, 2, RB>(p, stream);
  }
  if constexpr (CH >= 4) {
    if (spc == 4) return launch_decode_scaled_spc<T, BITS, FP, HAS_ZP, 4, RB>(p, stream);
  }
  if constexpr (CH >= 8) {
    if (spc == 8) return launch_decode_scaled_spc<T, BITS, FP, HAS_ZP, 8, RB>(p, stream);
  }
  return cudaErrorInvalidValue;
}

// Float codes (4 or 8-bit) or 8-bit integer codes; decode_applies (mp_params.h) must hold. M 9..16:
// one block holds both row blocks (RB = 2, p.row_blocks = 1).
template <typename T, int BITS, bool FP, bool HAS_ZP>
cudaError_t launch_decode_scaled(Params p, cudaStream_t stream) {
  if (!decode_applies(FP ? kFloatCodes : kIntCodes, p.M, BITS, p.Kp, p.group_k, p.tile_group != nullptr))
    return cudaErrorInvalidValue;
  p.row_blocks = 1;
  return p.M > 8 ? launch_decode_scaled_rb<T, BITS, FP, HAS_ZP, 2>(p, stream)
                 : launch_decode_scaled_rb<T, BITS, FP, HAS_ZP, 1>(p, stream);
}

}  // namespace qlinear_marlin
