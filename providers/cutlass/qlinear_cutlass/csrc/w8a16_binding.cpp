// The torch-facing side of the W8A16 extension (its own module: a W8A16 model builds only the int8
// mixed-input GEMMs): the argument checks of mixed_input_binding.h, then one call into the CUTLASS
// translation units, on torch's current stream (CUDA-graph capturable).
#include "mixed_input_binding.h"

namespace qlc = qlinear_cutlass;

namespace {

// w: uint8 [N*K], int8 codes in the re-laid order (qlinear_cutlass.w4a16_layout, 8-bit atom).
void w8a16_mm(torch::Tensor out, torch::Tensor x, torch::Tensor w, torch::Tensor scale, c10::optional<torch::Tensor> zero,
              c10::optional<torch::Tensor> bias, int64_t group, int64_t config) {
  TORCH_CHECK(!zero, "zero: the W8A16 GEMM takes symmetric (uint8b128) codes only");
  qlc::mixed_input_mm(out, x, w, scale, zero, bias, group, config, 8, qlc::w8a16_mm, qlc::w8a16_mm_workspace, "w8a16_mm");
}

// The decode kernel (M <= 16) on the same int8 weight (mixed_input_decode).
void w8a16_decode(torch::Tensor out, torch::Tensor x, torch::Tensor w, torch::Tensor scale, c10::optional<torch::Tensor> zero,
                  c10::optional<torch::Tensor> bias, torch::Tensor ws, torch::Tensor counters, int64_t group, int64_t splits,
                  int64_t warps, bool pdl, int64_t rows, bool cluster) {
  TORCH_CHECK(!zero, "zero: the W8A16 decode kernel takes symmetric (uint8b128) codes only");
  qlc::mixed_input_decode(out, x, w, scale, zero, bias, ws, counters, group, splits, warps, pdl, rows, cluster, 8, qlc::w8a16_decode,
                          "w8a16_decode");
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("w8a16_mm", &w8a16_mm, "int8 x bf16/fp16 mixed-input GEMM (group scales, bias)");
  m.def("w8a16_decode", &w8a16_decode, "the decode kernel (M <= 16) on the same int8 weight, split-K workspace given");
  m.def("w4a16_gather", &qlc::mixed_input_gather, "act-order: x's columns in the weight's sorted K order, PDL-launched (perm: uint16 in int16)");
}
