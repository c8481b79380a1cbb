// Declarations of the per-(A/B type, out type, tile) GEMM entry points, light enough for the dispatch
// TU: it includes CUTLASS's numeric types only, not the GEMM templates (defined in scaled_mm.cuh).
#pragma once

#include "cutlass/numeric_types.h"

#include "scaled_mm_api.h"

namespace qlinear_cutlass {

template <class AB, class D, int Config>
char const* run_config(ScaledMMArgs const& p, cudaStream_t stream);

template <class AB, class D, int Config>
size_t workspace_config(ScaledMMArgs const& p);

template <class D, int Config>
char const* run_block_config(ScaledMMArgs const& p, cudaStream_t stream);

template <class D, int Config>
size_t workspace_block_config(ScaledMMArgs const& p);

}  // namespace qlinear_cutlass
