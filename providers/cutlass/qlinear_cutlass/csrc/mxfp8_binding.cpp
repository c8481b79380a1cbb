// The torch-facing side of the MXFP8 weight-only extension (E4M3 codes, a scale per 32 k, on the W8A16
// GEMM, mixed_input_float.cuh; bf16 activations only): the argument checks of mixed_input_binding.h,
// then one call into the CUTLASS translation units, on torch's current stream (CUDA-graph capturable).
#include "mixed_input_binding.h"

namespace qlc = qlinear_cutlass;

namespace {

void mxfp8_mm(torch::Tensor out, torch::Tensor x, torch::Tensor w, torch::Tensor scale, c10::optional<torch::Tensor> bias,
              int64_t group, int64_t config, double alpha) {
  qlc::float_codes_mm(out, x, w, scale, bias, group, config, alpha, 8, false, qlc::mxfp8_mm, qlc::mxfp8_mm_workspace,
                      "mxfp8_mm");
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("mxfp8_mm", &mxfp8_mm, "E4M3 x bf16 mixed-input GEMM (a scale per 32 k, fp32 alpha, bias)");
}
