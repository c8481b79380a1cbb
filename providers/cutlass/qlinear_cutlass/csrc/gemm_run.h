// How every GEMM of the provider launches: CUTLASS's can_implement, the workspace check, initialize,
// run on the given stream. A failure comes back as a static message, which the bindings raise.
// kPdl launches it as a programmatic dependent of the kernel before it (CUTLASS 3.x adapters; the GEMM
// must be built with CUTLASS_ENABLE_GDC_FOR_SM90 so it waits before its first load): only the tiles
// tool's `-gdc` candidates ask for it.
#pragma once

#include <cstddef>

#include <cuda_runtime.h>

#include "cutlass/cutlass.h"

namespace qlinear_cutlass {

template <class Gemm, bool kPdl = false>
char const* run_gemm(typename Gemm::Arguments const& args, void* workspace, size_t workspace_bytes, cudaStream_t stream,
                     char const* refused = "CUTLASS can_implement refused the problem (alignment?)") {
  Gemm gemm;
  if (gemm.can_implement(args) != cutlass::Status::kSuccess) return refused;
  if (Gemm::get_workspace_size(args) > workspace_bytes) return "workspace too small";
  if (gemm.initialize(args, workspace, stream) != cutlass::Status::kSuccess) return "CUTLASS initialize failed";
  cutlass::Status launched;
  if constexpr (kPdl)
    launched = gemm.run(stream, nullptr, /*launch_with_pdl=*/true);
  else
    launched = gemm.run(stream);
  if (launched != cutlass::Status::kSuccess) return "CUTLASS kernel launch failed";
  return nullptr;
}

}  // namespace qlinear_cutlass
