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

// The decode kernel (M <= 16, float_decode.cuh) on the same weight and packets.
void mxfp8_decode(torch::Tensor out, torch::Tensor x, torch::Tensor w, torch::Tensor scale, c10::optional<torch::Tensor> bias,
                  torch::Tensor ws, torch::Tensor counters, int64_t group, int64_t splits, int64_t warps, bool pdl, int64_t rows,
                  bool cluster, double alpha) {
  qlc::float_codes_decode(out, x, w, scale, bias, ws, counters, group, splits, warps, pdl, rows, cluster, alpha, 8, false, qlc::mxfp8_decode,
                          "mxfp8_decode");
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("mxfp8_mm", &mxfp8_mm, "E4M3 x bf16 mixed-input GEMM (a scale per 32 k, fp32 alpha, bias)");
  m.def("mxfp8_decode", &mxfp8_decode, "the decode kernel (M <= 16) on the same E4M3 weight, split-K workspace given");
}
