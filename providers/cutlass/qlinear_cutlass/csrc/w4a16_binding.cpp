// The torch-facing side of the W4A16 extension (its own module, so a W4A16 user builds only the
// mixed-input GEMMs for int4 codes): the argument checks of mixed_input_binding.h, then one call into
// the CUTLASS translation units. Launches go on torch's current stream with workspace from torch's
// caching allocator, so calls are CUDA-graph capturable.
#include "mixed_input_binding.h"

namespace qlc = qlinear_cutlass;

namespace {

// w: uint8 [N*K/2], int4 codes in the re-laid order (qlinear_cutlass.w4a16_layout).
void w4a16_mm(torch::Tensor out, torch::Tensor x, torch::Tensor w, torch::Tensor scale, c10::optional<torch::Tensor> zero,
              c10::optional<torch::Tensor> bias, int64_t group, int64_t config) {
  qlc::mixed_input_mm(out, x, w, scale, zero, bias, group, config, 4, qlc::w4a16_mm, qlc::w4a16_mm_workspace, "w4a16_mm");
}

// The decode kernel (M <= 16) on the same weight (mixed_input_decode).
void w4a16_decode(torch::Tensor out, torch::Tensor x, torch::Tensor w, torch::Tensor scale, c10::optional<torch::Tensor> zero,
                  c10::optional<torch::Tensor> bias, torch::Tensor ws, torch::Tensor counters, int64_t group, int64_t splits,
                  int64_t warps, bool pdl, int64_t rows, bool cluster) {
  qlc::mixed_input_decode(out, x, w, scale, zero, bias, ws, counters, group, splits, warps, pdl, rows, cluster, 4, qlc::w4a16_decode,
                          "w4a16_decode");
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("w4a16_mm", &w4a16_mm, "int4 x bf16/fp16 mixed-input GEMM (group scales, optional zero terms, bias)");
  m.def("w4a16_decode", &w4a16_decode, "the decode kernel (M <= 16) on the same int4 weight, split-K workspace given");
  m.def("w4a16_gather", &qlc::mixed_input_gather, "act-order: x's columns in the weight's sorted K order, PDL-launched (perm: uint16 in int16)");
}
