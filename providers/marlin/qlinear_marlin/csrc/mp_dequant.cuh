// Dequantize the tile layout back to a dense 16-bit weight [N][Kp] (row-major, K contiguous), for
// large M, where a dense tensor-core GEMM (cuBLAS) on the dequantized weight beats re-reading and
// re-dequantizing tiles for every 64-row block. Same decode and rounding as the GEMM (marlin_mp.cuh).
#pragma once

#include "marlin_mp.cuh"

namespace qlinear_marlin {

// One block per (64 n) x (16 k) tile; thread = lane (32) x word (BITS). Each thread decodes its word
// into shared memory so the tile leaves as 64 rows of 32 contiguous bytes.
template <typename T, int BITS, bool HAS_ZP, bool FP>
__global__ void __launch_bounds__(32 * BITS) mp_dequant_kernel(const Params p) {
  using Tr = Traits<T>;
  __shared__ __align__(16) T tile[kTileN][kTileK + 8];  // +8 halves: rows 48 bytes apart
  const int lane = threadIdx.x % 32, j = threadIdx.x / 32;
  const int g = lane / 4, t = lane % 4;
  const int ntile = blockIdx.x, kt = blockIdx.y;
  const int n_tiles = p.N / kTileN, tiles_k = p.Kp / kTileK;
  const uint32_t q = static_cast<const uint32_t*>(p.w)[(((size_t)ntile * tiles_k + kt) * 32 + lane) * BITS + j];
  const int grp = p.tile_group ? p.tile_group[kt] : (kt * kTileK) / p.group_k;
  const size_t vbase = (((size_t)grp * n_tiles + ntile) * 8 + g) * 8;
  const T* s = static_cast<const T*>(p.s) + vbase;
  const T* zm = HAS_ZP ? static_cast<const T*>(p.zm) + vbase : nullptr;
  // (code - zero) is exact, its product with a 16-bit scale is exact in fp32, and the one rounding to
  // T matches the GEMM's 16-bit multiply (8-bit bf16: the GEMM rounds the fp32 product the same way).
  constexpr float kZmMagic = (BITS == 8 && Tr::kIsBf16) ? 0.f : Tr::kMagicF;
  constexpr int kPer = 32 / BITS;  // codes per word
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    int n8, row;
    if (BITS == 4) {  // nibble i: register r = i % 4 (n8 tile 2j + r/2, rows +8 when r odd), half = i / 4
      const int r = i % 4, half = i / 4;
      n8 = 2 * j + r / 2;
      row = 8 * (r % 2) + 2 * t + half;
    } else {  // byte i: register i % 2 (rows +8 when odd), half = i / 2; word j is n8 tile j
      n8 = j;
      row = 8 * (i % 2) + 2 * t + i / 2;
    }
    const uint32_t bits = (q >> (BITS * i)) & ((1u << BITS) - 1);
    float v;
    if constexpr (FP) {  // the GEMM's own multiply (dequant_pair), low half
      const uint32_t pr = dequant_pair<T, BITS, false, true>(bits, T(), s[n8]);
      v = Tr::to_float(as_t2<T>(pr).x);
    } else {
      const float zero = HAS_ZP ? Tr::to_float(zm[n8]) - kZmMagic : (BITS == 4 ? 8.f : 128.f);
      v = ((float)bits - zero) * Tr::to_float(s[n8]);
    }
    // the GEMM rounds the scaled weight to T, then applies col_scale to the fp32 sum: same here
    if (p.col_scale) v = Tr::to_float(Tr::from_float(v)) * p.col_scale[ntile * kTileN + 8 * n8 + g];
    tile[8 * n8 + g][row] = Tr::from_float(v);
  }
  __syncthreads();
  // 64 rows x 16 values = 128 16-byte pieces
  for (int i = threadIdx.x; i < 128; i += 32 * BITS) {
    const int row = i / 2, c = i % 2;
    T* out = static_cast<T*>(p.out) + (size_t)(ntile * kTileN + row) * p.Kp + kt * kTileK + c * 8;
    *reinterpret_cast<int4*>(out) = *reinterpret_cast<const int4*>(&tile[row][c * 8]);
  }
}

template <typename T, int BITS, bool HAS_ZP, bool FP>
cudaError_t launch_dequant_t(const Params& p, cudaStream_t stream) {
  dim3 grid(p.N / kTileN, p.Kp / kTileK);
  mp_dequant_kernel<T, BITS, HAS_ZP, FP><<<grid, 32 * BITS, 0, stream>>>(p);
  return cudaGetLastError();
}

template <typename T, int BITS>
cudaError_t launch_dequant_bits(const Params& p, bool has_zp, bool fp, cudaStream_t stream) {
  if (fp) return launch_dequant_t<T, BITS, false, true>(p, stream);
  return has_zp ? launch_dequant_t<T, BITS, true, false>(p, stream) : launch_dequant_t<T, BITS, false, false>(p, stream);
}

template <typename T>
cudaError_t launch_dequant_dt(const Params& p, int bits, bool has_zp, bool fp, cudaStream_t stream) {
  if (bits == 4) return launch_dequant_bits<T, 4>(p, has_zp, fp, stream);
  if (bits == 8) return launch_dequant_bits<T, 8>(p, has_zp, fp, stream);
  return cudaErrorInvalidValue;
}

inline cudaError_t launch_dequant(const Params& p, int dtype, int bits, bool has_zp, bool fp, cudaStream_t stream) {
  return dtype == 0 ? launch_dequant_dt<__half>(p, bits, has_zp, fp, stream)
                    : launch_dequant_dt<__nv_bfloat16>(p, bits, has_zp, fp, stream);
}

}  // namespace qlinear_marlin
