// Instantiations for float codes: E2M1 (4-bit: NVFP4, MXFP4) and E4M3 (8-bit: FP8, MXFP8) weights with
// 16-bit activations: the tile GEMM (fp16/bf16 x 1/2/4 m16 tiles) and the decode kernel. A separate
// file so ninja compiles it in parallel with the integer instantiations.
// Checks alone: nvcc -std=c++17 -arch=sm_90a -c mp_kernels_fp.cu
#include "marlin_mp.cuh"
#include "mp_decode_scaled.cuh"

namespace qlinear_marlin {

cudaError_t launch_mp_fp(const Params& p, int dtype, int bits, int mt, cudaStream_t stream) {
  if (bits == 4) return dtype == 0 ? launch_fp<__half, 4>(p, mt, stream) : launch_fp<__nv_bfloat16, 4>(p, mt, stream);
  if (bits == 8) return dtype == 0 ? launch_fp<__half, 8>(p, mt, stream) : launch_fp<__nv_bfloat16, 8>(p, mt, stream);
  return cudaErrorInvalidValue;
}

cudaError_t launch_mp_decode_fp(const Params& p, int dtype, int bits, cudaStream_t stream) {
  if (bits == 4) return dtype == 0 ? launch_decode_scaled<__half, 4, true, false>(p, stream) : launch_decode_scaled<__nv_bfloat16, 4, true, false>(p, stream);
  if (bits == 8) return dtype == 0 ? launch_decode_scaled<__half, 8, true, false>(p, stream) : launch_decode_scaled<__nv_bfloat16, 8, true, false>(p, stream);
  return cudaErrorInvalidValue;
}

}  // namespace qlinear_marlin
