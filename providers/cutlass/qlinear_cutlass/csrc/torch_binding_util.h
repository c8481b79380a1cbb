// Helpers shared by the torch bindings (binding.cpp, mixed_input_binding.h, w4a8_binding.cpp); host code with torch.
#pragma once

#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/extension.h>

namespace qlinear_cutlass {

// SMs of a device, cached: CUTLASS's persistent scheduler sizes its grid by it.
inline int sm_count(int device) {
  static int cached[64] = {0};
  if (device >= 0 && device < 64 && cached[device]) return cached[device];
  int n = 0;
  TORCH_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) == cudaSuccess, "cudaDeviceGetAttribute failed");
  if (device >= 0 && device < 64) cached[device] = n;
  return n;
}

// `bytes` of GEMM workspace from torch's caching allocator on `like`'s device, set into the launch
// parameters `p` (workspace, workspace_bytes); the returned tensor must live until the launch is
// queued. None when the GEMM needs none.
template <typename P>
torch::Tensor attach_workspace(P& p, size_t bytes, const torch::Tensor& like) {
  torch::Tensor ws;
  if (bytes) {
    ws = torch::empty({int64_t(bytes)}, like.options().dtype(torch::kUInt8));
    p.workspace = ws.data_ptr(), p.workspace_bytes = bytes;
  }
  return ws;
}

}  // namespace qlinear_cutlass
