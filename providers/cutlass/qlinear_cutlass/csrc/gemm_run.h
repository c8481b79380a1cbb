// How every GEMM of the provider launches: CUTLASS's can_implement, the workspace check, initialize,
// run on the given stream. A failure comes back as a static message, which the bindings raise.
#pragma once

#include <cstddef>

#include <cuda_runtime.h>

#include "cutlass/cutlass.h"

namespace qlinear_cutlass {

template <class Gemm>
char const* run_gemm(typename Gemm::Arguments const& args, void* workspace, size_t workspace_bytes, cudaStream_t stream,
                     char const* refused = "CUTLASS can_implement refused the problem (alignment?)") {
  Gemm gemm;
  if (gemm.can_implement(args) != cutlass::Status::kSuccess) return refused;
  if (Gemm::get_workspace_size(args) > workspace_bytes) return "workspace too small";
  if (gemm.initialize(args, workspace, stream) != cutlass::Status::kSuccess) return "CUTLASS initialize failed";
  if (gemm.run(stream) != cutlass::Status::kSuccess) return "CUTLASS kernel launch failed";
  return nullptr;
}

}  // namespace qlinear_cutlass
