// GEMM instantiations for integer codes (fp16/bf16 x 4/8-bit x 1/2/4 m16 tiles x zero points or not),
// the integer decode kernels (4-bit: mp_decode.cuh, 8-bit: mp_decode_scaled.cuh) and every
// dequantizer. No torch headers: compiles fast and checks alone:
//   nvcc -std=c++17 -arch=sm_90a -c mp_kernels_int.cu
#include "marlin_mp.cuh"
#include "mp_decode.cuh"
#include "mp_decode_scaled.cuh"
#include "mp_dequant.cuh"
#include "mp_gather.cuh"

namespace qlinear_marlin {

cudaError_t launch_mp_int(const Params& p, int dtype, int bits, int mt, bool has_zp, cudaStream_t stream) {
  if (bits == 4) return dtype == 0 ? launch_int<__half, 4>(p, mt, has_zp, stream) : launch_int<__nv_bfloat16, 4>(p, mt, has_zp, stream);
  if (bits == 8) return dtype == 0 ? launch_int<__half, 8>(p, mt, has_zp, stream) : launch_int<__nv_bfloat16, 8>(p, mt, has_zp, stream);
  return cudaErrorInvalidValue;
}

template <typename T>
cudaError_t launch_decode_int8(const Params& p, bool has_zp, cudaStream_t stream) {
  return has_zp ? launch_decode_scaled<T, 8, false, true>(p, stream) : launch_decode_scaled<T, 8, false, false>(p, stream);
}

cudaError_t launch_mp_decode(const Params& p, int dtype, int fmt, int bits, bool has_zp, cudaStream_t stream) {
  if (fmt == kFloatCodes) return launch_mp_decode_fp(p, dtype, bits, stream);
  if (bits == 8) return dtype == 0 ? launch_decode_int8<__half>(p, has_zp, stream) : launch_decode_int8<__nv_bfloat16>(p, has_zp, stream);
  return dtype == 0 ? launch_decode<__half>(p, has_zp, stream) : launch_decode<__nv_bfloat16>(p, has_zp, stream);
}

cudaError_t launch_mp_gather(const void* x, const long long* kidx, void* xp, int M, int K, int Kp, int dtype, bool pdl,
                             cudaStream_t stream) {
  return launch_gather(x, kidx, xp, M, K, Kp, dtype, pdl, stream);
}

cudaError_t launch_mp_dequant(const Params& p, int dtype, int bits, bool has_zp, int fmt, cudaStream_t stream) {
  return launch_dequant(p, dtype, bits, has_zp, fmt == kFloatCodes, stream);
}

}  // namespace qlinear_marlin
