// Launch parameters of the mixed-precision kernels: plain C++, shared with the torch binding (g++).
#pragma once

#include <cuda_runtime_api.h>

namespace qlinear_marlin {

struct Params {
  const void* x;          // [M][Kp]
  const void* w;          // [N/64][Kp/16][32][BITS] int32
  const void* s;          // [G][N/64][8][8]
  const void* zm;         // [G][N/64][8][8] or null
  const int* tile_group;  // [Kp/16] group of each k tile (act-order) or null
  const void* bias;       // [N] or null
  const float* col_scale; // [N] fp32 applied to the fp32 sums before the bias, or null
  void* out;              // [M][N] (GEMM) or [N][Kp] (dequant)
  float* ws;              // [splits][M][N] fp32 partial planes (no state between calls); null: no split-K
  int* counters;          // [m_blocks][N/64], zero between calls; null: no split-K
  long long ws_floats;    // capacity of ws: the launcher keeps splits * M * N within it
  int M, N, Kp;
  int group_k;      // group size along K (Kp for per-channel); a multiple of 16 unless tile_group is set
  int splits;       // K slices (set by the launcher)
  int slice_tiles;  // k tiles per slice (set by the launcher)
  int want_splits;  // decode kernel: K slices asked for (0: the launcher's choice; sweeps and tests)
  int row_blocks;   // decode kernel: blocks per column tile along M (set by the launcher)
  int pdl;          // decode kernel: launch as a programmatic dependent of the previous kernel (sm_90+)
  int dec_warps;    // decode kernel: warps per block, 4 or 8 (0: the launcher's rule, pick_decode_warps)
  int streamk;      // 4-bit decode kernel: deal (tile, chunk) units evenly over one wave of blocks (stream-K)
  long long streamk_units;  // set by the launcher: units dealt (0: split mode)
  int streamk_blocks;       // set by the launcher: blocks of the stream-K grid
};

// Code formats: integer (uint4/uint8, optional zero points) or float (E2M1 / E4M3 by bits).
enum CodeFormat : int { kIntCodes = 0, kFloatCodes = 1 };

// Defined in mp_kernels_int.cu / mp_kernels_fp.cu. dtype 0 = fp16, 1 = bf16; bits 4 or 8;
// mt = m16 tiles per block (1, 2, 4).
cudaError_t launch_mp_int(const Params& p, int dtype, int bits, int mt, bool has_zp, cudaStream_t stream);
cudaError_t launch_mp_fp(const Params& p, int dtype, int bits, int mt, cudaStream_t stream);
#ifdef __CUDACC__
#define QLM_HOST_DEVICE __host__ __device__
#else
#define QLM_HOST_DEVICE
#endif
// Decode kernels: k tiles (of 16) a warp loads at once: 128 bytes of weight per lane either way.
QLM_HOST_DEVICE constexpr int decode_chunk_tiles(int bits) { return bits == 4 ? 8 : 4; }
// Which calls the decode kernels take (the binding checks it; qlinear_marlin/runtime.py mirrors it):
// M <= 16 and K whole chunks; 4-bit integer codes (any groups, act-order: mp_decode.cuh); float codes
// (4 or 8-bit) and 8-bit integer codes in plain groups that divide a chunk or are whole chunks
// (mp_decode_scaled.cuh).
inline bool decode_applies(int fmt, int M, int bits, long long Kp, long long group_k, bool has_tile_group) {
  if (M > 16 || (bits != 4 && bits != 8) || Kp % (16LL * decode_chunk_tiles(bits)) != 0) return false;
  if (fmt == kIntCodes && bits == 4) return true;
  const long long ch = decode_chunk_tiles(bits), tpg = group_k / 16;
  return !has_tile_group && group_k % 16 == 0 && tpg > 0 && (tpg % ch == 0 || ch % tpg == 0);
}
// The decode kernels (fmt, bits as above); defined in mp_kernels_int.cu, the float-code ones in
// mp_kernels_fp.cu (launch_mp_decode_fp).
cudaError_t launch_mp_decode(const Params& p, int dtype, int fmt, int bits, bool has_zp, cudaStream_t stream);
cudaError_t launch_mp_decode_fp(const Params& p, int dtype, int bits, cudaStream_t stream);
// Act-order activation gather xp[m][j] = x[m][kidx[j]] (mp_gather.cuh), PDL-launched when pdl.
cudaError_t launch_mp_gather(const void* x, const long long* kidx, void* xp, int M, int K, int Kp, int dtype, bool pdl,
                             cudaStream_t stream);
// Dense dequantized weight [N][Kp] of the dtype into p.out (p.x, p.bias, p.ws, p.counters unused).
cudaError_t launch_mp_dequant(const Params& p, int dtype, int bits, bool has_zp, int fmt, cudaStream_t stream);

}  // namespace qlinear_marlin
