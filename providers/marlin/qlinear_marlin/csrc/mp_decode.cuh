// Decode GEMM for 4-bit integer codes and up to 16 activation rows, on the tile layout of
// marlin_mp.cuh (no second re-layout: the same repacked weight serves both kernels).
//
// Why a second kernel: at M <= 16 the tile kernel streams the weight through a shared-memory
// pipeline and spends ~3 instructions per weight (cp.async issue, LDS, subtract, scale multiply,
// mma with the activation padded to 16 rows), which leaves it issue- and latency-bound at half the
// memory bandwidth. Here:
//   * the weight is the mma's A operand and the activation its B operand (n8 = 8 rows of x), so one
//     32-bit word of the tile layout IS one A fragment (16 output columns x 16 k): the B registers
//     of n8 tiles 2j and 2j+1 are the A rows g and g+8 (see the register map below). One mma covers
//     256 weights, not 128, and rows of x are not padded to 16;
//   * the weight goes from global memory straight into registers (16 bytes per lane per k tile,
//     never cached in L1), a whole chunk of 8 k tiles in flight per warp while the previous chunk
//     is computed; no shared memory in the main loop;
//   * codes are not turned into weights: (code | MAGIC) is MAGIC + code exactly, the mma sums
//     x * (MAGIC + code) in fp32 per scale group, and one more mma with an all-ones A gives sum(x)
//     of the group; the group's share is then s * (sum x (MAGIC + code) - (MAGIC + zero) * sum x),
//     two FMAs per output value per group instead of a subtract and a multiply per weight pair.
// Cost per k tile per lane (32 weights): 1 LDG.128, 28 integer ops (3 shifts + 4 LOP3 per word),
// 5 mma, 2 activation loads, plus the fold once per group: 430 SASS instructions per 8-tile chunk
// with groups of 128 (1.7 per weight, sm_90a).
//
// Work split: a block of 8 warps owns one 64-column tile, 8 rows of x and a K slice of whole chunks;
// its warps take the slice's chunks round-robin, reduce their sums in shared memory in warp order,
// and the slices (split-K) are added by the last block of the tile in slice order (finish_tile,
// shared with the tile kernel). Deterministic.
//
// Launched with programmatic dependent launch (pdl.cuh): the first chunk's weights and scales are
// loaded before the wait for the previous kernel, so at decode sizes (a layer is a few us) the
// weight stream of one layer starts under the previous layer's tail.
#pragma once

#include "marlin_mp.cuh"
#include "pdl.cuh"

namespace qlinear_marlin {

constexpr int kDecChunk = decode_chunk_tiles(4);  // k tiles a warp loads at once: 128 k, one group of 128

__device__ __forceinline__ uint4 ld_stream(const uint4* p) {
  uint4 v;  // read once: bypass L1, the weight never fits anyway
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

template <typename T>
__device__ __forceinline__ float elem(const uint4& v, int i) {  // i-th 16-bit value of 8, as float
  const uint32_t w = (&v.x)[i / 2];
  const unsigned short h = (unsigned short)(i % 2 ? w >> 16 : w & 0xFFFFu);
  if constexpr (Traits<T>::kIsBf16) {
    return __uint_as_float((uint32_t)h << 16);
  } else {
    return __half2float(__ushort_as_half(h));
  }
}

template <uint32_t MAGIC>
__device__ __forceinline__ uint32_t mask_or(uint32_t q) {  // (q & 0x000F000F) | MAGIC in one op
  return and_or<0x000F000Fu, MAGIC>(q);
}

// The end of a decode block (both kernels), for its 8 rows of row block rblk (rows 8 rblk..): each
// warp's fp32 sums acc[j][i] (the mma C fragment of output columns 16j + g (+8 for i >= 2) x rows
// 2t, 2t+1) to shared memory, added in warp order, then finish_tile as part `part` of `nparts`
// (scale, bias, split-K or stream-K planes). Deterministic. A block holding two row blocks calls it once per row block.
template <typename T, int WARPS>
__device__ __forceinline__ void decode_finish(const Params& p, const float (&acc)[4][4], int rblk, int ntile,
                                              int part, int nparts) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  __shared__ float partial[WARPS][8][kTileN];
  __shared__ float red[8 * kTileN];
#pragma unroll
  for (int j = 0; j < 4; ++j)
#pragma unroll
    for (int i = 0; i < 4; ++i) partial[warp][2 * t + (i % 2)][16 * j + 8 * (i / 2) + g] = acc[j][i];
  __syncthreads();  // also: every thread is past a previous call's use of red
  const int n_tiles = p.N / kTileN;
  const int rows = min(8, p.M - 8 * rblk);
  for (int i = threadIdx.x; i < rows * kTileN; i += WARPS * 32) {
    float v = 0.f;
#pragma unroll
    for (int w = 0; w < WARPS; ++w) v += partial[w][i / kTileN][i % kTileN];
    red[i] = v;
  }
  __syncthreads();
  finish_tile<T>(p, red, rows, 8 * rblk, ntile, part, nparts, rblk * n_tiles + ntile, WARPS * 32);
}

// How scale groups meet chunks, fixed per instantiation so the per-tile code carries no test it does
// not need: whole chunks per group (group_k a multiple of 128, per-channel included: one fold per
// chunk), smaller groups (32, 64: a fold at each group's end), act-order (the group of every k tile
// is read from tile_group; a fold where it changes).
enum GroupMode : int { kChunkGroups = 0, kSmallGroups = 1, kTileGroups = 2 };

// A block takes 8 rows of x (one n8 B operand). M 9..16: p.row_blocks = 2 blocks per column tile
// (rows 0..7 and 8..15), neighbours in blockIdx.x, so they run at the same time and the second read
// of their weight tile is an L2 hit. Measured on the H200 against one block holding both row blocks
// (twice the accumulators: one block per SM instead of two), 6-18% faster on the Llama-3-8B shapes.
// WARPS per block (4 or 8): 4 halves the block, so twice as many fit an SM (same registers per
// thread) and the grid fills the GPU in finer steps (waves of 528 blocks instead of 264 on 132 SMs).
// One segment: chunks [c_lo, c_hi) of work tile `tile` (column tile tile >> (row_blocks - 1), row
// block tile & (row_blocks - 1)), reduced over the block and handed to finish_tile as part `part` of
// `nparts`. `pre_wait`: the block's first segment, whose first weight loads go before the PDL wait.
template <typename T, int WARPS, bool HAS_ZP, int GM>
__device__ __forceinline__ void decode_segment(const Params& p, int tile, int c_lo, int c_hi, int part, int nparts,
                                               bool pre_wait) {
  constexpr int kDecWarps = WARPS;
  using Tr = Traits<T>;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int ntile = tile >> (p.row_blocks - 1);
  const int row0 = 8 * (tile & (p.row_blocks - 1));
  const int n_tiles = p.N / kTileN, tiles_k = p.Kp / kTileK;
  const int s_lo = c_lo * kDecChunk;
  const int n_chunks = c_hi - c_lo;  // whole chunks: the launcher requires Kp % 128 == 0
  // tile kt of this column tile: 32 lanes x 16 bytes
  const uint4* wt = static_cast<const uint4*>(p.w) + (size_t)ntile * tiles_k * 32 + lane;
  const uint4* s4 = static_cast<const uint4*>(p.s);
  const uint4* z4 = static_cast<const uint4*>(p.zm);
  const T* x = static_cast<const T*>(p.x);
  const int tpg = p.group_k / kTileK;  // k tiles per group (group_k is Kp under act-order: unused)

  // B fragments read x[row][k .. k+1] for row row0 + g. Lanes of rows past M read row 0 instead:
  // each B column (row of x) only feeds its own output column, and those are never stored, so no
  // predicate or zeroing is needed per load.
  const int row = row0 + g;
  const T* xrow = x + (size_t)(row < p.M ? row : 0) * p.Kp + 2 * t;
  constexpr uint32_t kOnes = Tr::kIsBf16 ? 0x3F803F80u : 0x3C003C00u;  // 1.0 in each half
  const uint32_t ones[4] = {kOnes, kOnes, kOnes, kOnes};
  // (MAGIC + zero) without zero points: MAGIC + 8 (uint4b8)
  const float k_off = Tr::kMagicF + 8.f;

  float acc[4][4], gacc[4][4], xs[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    xs[i] = 0.f;
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[j][i] = gacc[j][i] = 0.f;
  }

  // a group's 8 scales (and zero offsets) for this lane: columns 16j + 8h + g, entry 2j + h
  auto group_values = [&](int grp, uint4& sv, uint4& zv) {
    const size_t sidx = ((size_t)grp * n_tiles + ntile) * 8 + g;
    sv = __ldg(s4 + sidx);
    if constexpr (HAS_ZP) zv = __ldg(z4 + sidx);
  };
  auto chunk_group = [&](int c) {  // the group of a chunk's first k tile
    const int kt0 = s_lo + c * kDecChunk;
    return GM == kTileGroups ? p.tile_group[kt0] : kt0 / tpg;
  };

  // scale a group's sums into acc (see the header): s * (sum x (MAGIC + q) - (MAGIC + zero) * sum x)
  auto fold = [&](const uint4& sv, const uint4& zv) {
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float s = elem<T>(sv, 2 * j + h);
        const float z = HAS_ZP ? elem<T>(zv, 2 * j + h) : k_off;
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          acc[j][2 * h + e] = fmaf(s, fmaf(-z, xs[e], gacc[j][2 * h + e]), acc[j][2 * h + e]);
          gacc[j][2 * h + e] = 0.f;
        }
      }
#pragma unroll
    for (int i = 0; i < 4; ++i) xs[i] = 0.f;
  };

  // Rolling prefetch: as soon as tile i of chunk c is in the mma, tile i of the warp's next chunk
  // (weights and activation fragments) is loaded into the same registers, and the next chunk's first
  // scales after its last tile: a whole chunk is in flight while one computes, without a second
  // buffer (so 2 blocks of 8 warps fit an SM). Every chunk is whole (Kp % 128 == 0, slices
  // of whole chunks), so the loads need no bounds: a chunk's tiles sit at fixed offsets from one
  // pointer (immediates in the load instructions, no per-tile address arithmetic).
  uint4 w[kDecChunk];
  uint32_t b[kDecChunk][2];
  auto load_x = [&](const T* xc, int i) {
    const unsigned int* xp = reinterpret_cast<const unsigned int*>(xc + i * kTileK);
    b[i][0] = __ldg(xp);
    b[i][1] = __ldg(xp + 4);  // k + 8
  };
  auto load_tile = [&](const uint4* wc, const T* xc, int i) {
    w[i] = ld_stream(wc + i * 32);
    load_x(xc, i);
  };
  constexpr int kStep = kDecWarps * kDecChunk;  // k tiles between a warp's chunks
  uint4 sv = make_uint4(0, 0, 0, 0), zv = make_uint4(0, 0, 0, 0);
  int c = warp;
  const uint4* wc = wt + (size_t)(s_lo + c * kDecChunk) * 32;
  const T* xc = xrow + (s_lo + c * kDecChunk) * kTileK;
  // the first chunk's weights and scales before waiting for the previous kernel (PDL, pdl.cuh: they
  // overlap its tail), its activations after
  if (c < n_chunks) {
#pragma unroll
    for (int i = 0; i < kDecChunk; ++i) w[i] = ld_stream(wc + i * 32);
    group_values(chunk_group(c), sv, zv);
  }
  if (pre_wait) grid_dependency_wait();
  if (c < n_chunks) {
#pragma unroll
    for (int i = 0; i < kDecChunk; ++i) load_x(xc, i);
  }
  for (; c < n_chunks; c += kDecWarps) {
    const int kt0 = s_lo + c * kDecChunk;
    const bool has_next = c + kDecWarps < n_chunks;
    wc += kStep * 32;
    xc += kStep * kTileK;
    int grp = chunk_group(c);
    int next_start = (grp + 1) * tpg;  // kSmallGroups: the first k tile of the next group
#pragma unroll
    for (int i = 0; i < kDecChunk; ++i) {
      const int kt = kt0 + i;
      const uint32_t words[4] = {w[i].x, w[i].y, w[i].z, w[i].w};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        // word j = n8 tiles 2j, 2j+1; nibble pairs (r, r+4) at shift 4r are B register r of the tile
        // layout: r0 = (cols 16j+g, k 2t..), r1 = (same cols, k+8), r2 = (cols 16j+8+g, k 2t..), r3.
        // As an A fragment of the 16 columns 16j.. x 16 k: {r0, r2, r1, r3}.
        const uint32_t q = words[j];
        uint32_t a[4];
        a[0] = mask_or<Tr::kMagic>(q);
        a[2] = mask_or<Tr::kMagic>(q >> 4);
        a[1] = mask_or<Tr::kMagic>(q >> 8);
        a[3] = mask_or<Tr::kMagic>(q >> 12);
        Tr::mma(gacc[j], a, b[i]);
      }
      Tr::mma(xs, ones, b[i]);
      if (has_next) load_tile(wc, xc, i);
      // fold at the end of a group or of the chunk
      const bool last = i == kDecChunk - 1;
      if constexpr (GM == kChunkGroups) {
        if (last) fold(sv, zv);
      } else if constexpr (GM == kTileGroups) {
        const int gn = last ? grp : p.tile_group[kt + 1];
        if (last || gn != grp) {
          fold(sv, zv);
          if (!last) group_values(gn, sv, zv);  // a second group inside the chunk (act-order)
        }
        grp = gn;
      } else {
        const bool boundary = kt + 1 == next_start;
        if (last || boundary) {
          fold(sv, zv);
          if (!last) group_values(grp + 1, sv, zv);  // groups smaller than a chunk (32, 64)
        }
        if (boundary) {
          ++grp;
          next_start += tpg;
        }
      }
    }
    if (has_next) group_values(chunk_group(c + kDecWarps), sv, zv);
  }

  decode_finish<T, WARPS>(p, acc, tile & (p.row_blocks - 1), ntile, part, nparts);
}

// The block of work unit u (a chunk of a work tile, u = tile * chunks per tile + chunk) when U units
// are dealt to G blocks in contiguous runs, block b taking [b*U/G, (b+1)*U/G).
__device__ __forceinline__ int streamk_owner(long long u, long long units, int blocks) {
  return (int)(((u + 1) * blocks - 1) / units);
}

// Split mode (p.streamk_units == 0): block (x, y) = work tile x, K slice y of p.slice_tiles.
// Stream-K mode (opt-in): gridDim.x blocks share all (tile, chunk) units evenly, so every resident
// block gets the same work whatever the tile count (split mode leaves a partial last wave: 1.70
// waves on 28672x4096, 0.73 on 6144x4096); a tile cut between blocks is added up by finish_tile in
// part order. Measured slower on every Llama-3-8B shape on the H200 (docs/gpu-results.md, sixth
// lease): the extra per-segment reductions cost more than the partial wave.
template <typename T, int WARPS, bool HAS_ZP, int GM>
__global__ void __launch_bounds__(WARPS * 32, 16 / WARPS) mp_decode_kernel(const Params p) {
  allow_dependent_launch();  // PDL (pdl.cuh): the next kernel's blocks may take SMs as ours leave
  const int cpt = p.Kp / (kTileK * kDecChunk);  // chunks per tile
  if (p.streamk_units == 0) {
    const int c_lo = blockIdx.y * (p.slice_tiles / kDecChunk);
    decode_segment<T, WARPS, HAS_ZP, GM>(p, blockIdx.x, c_lo, min(c_lo + p.slice_tiles / kDecChunk, cpt), blockIdx.y,
                                         p.splits, true);
    return;
  }
  const long long units = p.streamk_units;
  const int blocks = gridDim.x, b = blockIdx.x;
  long long u = (long long)b * units / blocks;
  const long long u_end = (long long)(b + 1) * units / blocks;
  for (bool first = true; u < u_end; first = false) {
    const int tile = (int)(u / cpt), c_lo = (int)(u % cpt);
    const int c_hi = (int)min((long long)cpt, c_lo + (u_end - u));
    const int b_first = streamk_owner((long long)tile * cpt, units, blocks);
    const int b_last = streamk_owner((long long)(tile + 1) * cpt - 1, units, blocks);
    if (!first) __syncthreads();  // the previous segment's shared-memory reduction is read out
    decode_segment<T, WARPS, HAS_ZP, GM>(p, tile, c_lo, c_hi, b - b_first, b_last - b_first + 1, first);
    u += c_hi - c_lo;
  }
}

// Split K like the tile kernel (choose_splits): as many slices as fill one wave of resident blocks,
// so each warp streams as many chunks as it can (its next chunk loads while one computes). Measured on
// the H200 at M=1 against every split count, this picked the fastest on all four Llama-3-8B shapes.
// Slices hold whole chunks (a group of 128 never straddles two warps).
inline void choose_decode_splits(Params& p, int resident, int chunk_tiles = kDecChunk) {
  const int blocks_per_slice = p.N / kTileN * p.row_blocks;
  const int chunks = (p.Kp / kTileK + chunk_tiles - 1) / chunk_tiles;
  int splits = p.want_splits > 0 ? p.want_splits : max(1, resident / blocks_per_slice);
  splits = min(splits, chunks);
  splits = (int)min((long long)splits, max(1LL, p.ws_floats / ((long long)p.M * p.N)));  // planes that fit in ws
  if (p.ws == nullptr || p.counters == nullptr) splits = 1;
  const int per_slice = (chunks + splits - 1) / splits;
  p.slice_tiles = per_slice * chunk_tiles;
  p.splits = (chunks + per_slice - 1) / per_slice;
}

// Stream-K: one wave of blocks (all resident ones, or one per chunk when there are fewer chunks)
// sharing the (tile, chunk) units evenly. A tile is cut between at most
// ceil((cpt - 1) / floor(U / G)) + 1 blocks; false (split mode instead) when the workspace cannot
// hold that many partial planes or there is nothing to balance (whole tiles already fill waves).
inline bool choose_streamk(Params& p, int resident) {
  const long long tiles = (long long)(p.N / kTileN) * p.row_blocks;
  const int cpt = p.Kp / (kTileK * kDecChunk);
  const long long units = tiles * cpt;
  const int blocks = (int)(units < resident ? units : resident);
  if (blocks < 1 || p.ws == nullptr || p.counters == nullptr || tiles % resident == 0) return false;
  const long long per_block = units / blocks;  // >= 1
  const long long max_parts = (cpt - 1 + per_block - 1) / per_block + 1;
  if (max_parts * p.M * p.N > p.ws_floats) return false;
  p.streamk_units = units;
  p.streamk_blocks = blocks;
  return true;
}

template <typename T, int WARPS, bool HAS_ZP, int GM>
cudaError_t launch_decode_t(Params p, cudaStream_t stream) {
  constexpr auto kern = mp_decode_kernel<T, WARPS, HAS_ZP, GM>;
  constexpr int kDecThreads = WARPS * 32;
  int resident = 1;
  const cudaError_t e = resident_blocks<kern>(kDecThreads, 0, resident);
  if (e != cudaSuccess) return e;
  if (p.streamk && choose_streamk(p, resident))
    return launch_pdl(kern, dim3(p.streamk_blocks), dim3(kDecThreads), stream, p.pdl != 0, p);
  p.streamk_units = 0;
  choose_decode_splits(p, resident);
  return launch_pdl(kern, dim3(p.N / kTileN * p.row_blocks, p.splits), dim3(kDecThreads), stream, p.pdl != 0, p);
}

// Warps per block when the caller leaves it to us (dec_warps 0): 4 when the 8-warp grid of whole-K
// blocks would need more than one wave (many column tiles: 28672x4096, and any layer at M > 8 with
// 448+ tiles), else 8. H200 A/B per layer (docs/gpu-results.md, fifth lease): 4 warps won there
// (gate_up 20.3 -> 19.6 us at M=1, 35.4 -> 32.8 at M=16) and lost or tied on the narrower layers,
// where 8-warp blocks already fit one wave (qkv at M=16: 10.9 vs 13.9).
template <auto Kern8>
cudaError_t pick_decode_warps(const Params& p, int& warps) {
  warps = p.dec_warps;
  if (warps != 0) return cudaSuccess;
  int resident8 = 1;
  const cudaError_t e = resident_blocks<Kern8>(8 * 32, 0, resident8);
  warps = (long long)(p.N / kTileN) * p.row_blocks > resident8 ? 4 : 8;
  return e;
}

template <typename T, int GM>
cudaError_t launch_decode_gm(const Params& p, bool has_zp, cudaStream_t stream) {
  int warps = 8;
  const cudaError_t e = pick_decode_warps<mp_decode_kernel<T, 8, false, GM>>(p, warps);
  if (e != cudaSuccess) return e;
  if (warps == 4)
    return has_zp ? launch_decode_t<T, 4, true, GM>(p, stream) : launch_decode_t<T, 4, false, GM>(p, stream);
  return has_zp ? launch_decode_t<T, 8, true, GM>(p, stream) : launch_decode_t<T, 8, false, GM>(p, stream);
}

// 4-bit integer codes, M <= 16, K a multiple of 128 (whole chunks); a block per 8 rows.
template <typename T>
cudaError_t launch_decode(Params p, bool has_zp, cudaStream_t stream) {
  if (!decode_applies(kIntCodes, p.M, 4, p.Kp, p.group_k, p.tile_group != nullptr)) return cudaErrorInvalidValue;
  p.row_blocks = p.M > 8 ? 2 : 1;
  if (p.tile_group) return launch_decode_gm<T, kTileGroups>(p, has_zp, stream);
  if (p.group_k % (kDecChunk * kTileK) == 0) return launch_decode_gm<T, kChunkGroups>(p, has_zp, stream);
  return launch_decode_gm<T, kSmallGroups>(p, has_zp, stream);
}

}  // namespace qlinear_marlin
