// Programmatic dependent launch (PDL, sm_90+), shared by the decode kernel and the activation gather.
//
// A kernel launched with `launch_pdl(..., pdl = true)` may start while the kernel before it on the
// stream is still finishing: it does the work that reads nothing an earlier kernel writes (loading
// weights, scales, gather indices), then `grid_dependency_wait()`, which returns once the earlier
// kernel is complete and its memory visible; every read of activations and every write comes after
// it. `allow_dependent_launch()` at a kernel's start lets the next PDL kernel be launched at once, so
// its blocks take SMs as ours leave. Both are no-ops on a launch without the attribute.
#pragma once

#include <cuda_runtime.h>

namespace qlinear_marlin {

__device__ __forceinline__ void grid_dependency_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void allow_dependent_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

template <typename... Args>
cudaError_t launch_pdl(void (*kern)(Args...), dim3 grid, dim3 block, cudaStream_t stream, bool pdl, Args... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kern, args...);
}

}  // namespace qlinear_marlin
