// torch binding of the mixed-precision kernels: checks tensors, picks the m tiling, launches.
// Built by the host compiler; the kernels live in mp_kernels_int.cu / mp_kernels_fp.cu (no torch there).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>

#include <algorithm>
#include <optional>

#include "mp_params.h"

namespace {

#define QLM_CHECK(cond, ...) TORCH_CHECK_VALUE(cond, __VA_ARGS__)

void check_cuda(const torch::Tensor& t, const char* name) {
  QLM_CHECK(t.is_cuda(), name, ": must be a CUDA tensor");
  QLM_CHECK(t.is_contiguous(), name, ": must be contiguous");
}

void check_same_device(const torch::Tensor& t, const torch::Tensor& ref, const char* name) {
  QLM_CHECK(t.device() == ref.device(), name, ": on ", t.device(), ", the weights are on ", ref.device());
}

// Without act-order the kernel reads scale group (k / group_k): every such group must exist.
void check_groups(const torch::Tensor& s, bool has_tile_group, int64_t group_k, int64_t Kp) {
  if (has_tile_group) return;
  QLM_CHECK(group_k > 0 && group_k % 16 == 0, "group_k: must be a positive multiple of 16");
  QLM_CHECK((Kp + group_k - 1) / group_k <= s.size(0), "s: ", s.size(0), " groups, but K=", Kp, " in groups of ",
            group_k, " needs ", (Kp + group_k - 1) / group_k);
}

// x [M, Kp] (fp16/bf16), w int32 [N/64, Kp/16, 32, BITS], s [G, N/64, 8, 8], zm like s or None,
// tile_group int32 [Kp/16] or None, bias [N] or None, ws fp32 [>= M*N] (split-K planes: splits * M * N
// within its size), counters int32 zeroed.
void check_col_scale(const std::optional<torch::Tensor>& cs, int64_t N) {
  if (!cs) return;
  check_cuda(*cs, "col_scale");
  QLM_CHECK(cs->scalar_type() == at::kFloat && cs->numel() == N, "col_scale: expected float32 [N]");
}

void check_format(int64_t fmt, bool has_zp) {
  QLM_CHECK(fmt == qlinear_marlin::kIntCodes || fmt == qlinear_marlin::kFloatCodes, "fmt: must be 0 (int) or 1 (float)");
  QLM_CHECK(!(fmt == qlinear_marlin::kFloatCodes && has_zp), "zm: float codes take no zero points");
}

torch::Tensor mp_gemm(torch::Tensor x, torch::Tensor w, torch::Tensor s, std::optional<torch::Tensor> zm,
                      std::optional<torch::Tensor> tile_group, std::optional<torch::Tensor> bias,
                      std::optional<torch::Tensor> col_scale, torch::Tensor ws, torch::Tensor counters, int64_t group_k,
                      int64_t fmt, int64_t decode, int64_t want_splits, int64_t pdl, std::optional<torch::Tensor> kidx, int64_t dec_warps, int64_t streamk) {
  check_cuda(x, "x");
  check_cuda(w, "w");
  check_cuda(s, "s");
  QLM_CHECK(x.dim() == 2, "x: expected 2-D [M, K], got ", x.dim(), "-D");
  QLM_CHECK(x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16, "x.dtype: must be float16 or bfloat16");
  QLM_CHECK(s.scalar_type() == x.scalar_type(), "s.dtype: must match x.dtype");
  QLM_CHECK(w.scalar_type() == at::kInt && w.dim() == 4 && w.size(2) == 32 && (w.size(3) == 4 || w.size(3) == 8),
            "w: expected int32 [N/64, K/16, 32, BITS] with BITS 4 or 8");
  const int bits = static_cast<int>(w.size(3));
  const int64_t M = x.size(0), n_tiles = w.size(0), tiles_k = w.size(1), N = n_tiles * 64;
  // act-order: x [M, K] is gathered to [M, Kp] by kidx [Kp] (our gather kernel; kidx comes from the
  // repack, its entries are < K); else x is [M, Kp] as packed
  const int64_t Kp = kidx ? kidx->numel() : x.size(1);
  if (kidx) {
    check_cuda(*kidx, "kidx");
    QLM_CHECK(kidx->scalar_type() == at::kLong && kidx->dim() == 1, "kidx: expected int64 [Kp]");
    check_same_device(*kidx, w, "kidx");
  }
  QLM_CHECK(tiles_k * 16 == Kp, "x.shape: K=", Kp, kidx ? " (gathered)" : "", " but the packed weight holds K=", tiles_k * 16);
  QLM_CHECK(s.dim() == 4 && s.size(1) == n_tiles && s.size(2) == 8 && s.size(3) == 8, "s: expected [G, N/64, 8, 8]");
  QLM_CHECK(reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 == 0, "x: data must be 16-byte aligned");
  QLM_CHECK(M <= INT32_MAX / 2 && N * Kp < (int64_t(1) << 40), "x.shape: too large");
  if (zm) {
    check_cuda(*zm, "zm");
    QLM_CHECK(zm->sizes() == s.sizes() && zm->scalar_type() == x.scalar_type(), "zm: must match s");
  }
  if (tile_group) {
    check_cuda(*tile_group, "tile_group");
    QLM_CHECK(tile_group->scalar_type() == at::kInt && tile_group->numel() == tiles_k, "tile_group: expected int32 [K/16]");
  }
  check_groups(s, tile_group.has_value(), group_k, Kp);
  if (bias) {
    check_cuda(*bias, "bias");
    QLM_CHECK(bias->numel() == N && bias->scalar_type() == x.scalar_type(), "bias: expected [N] of x.dtype");
    check_same_device(*bias, w, "bias");
  }
  check_col_scale(col_scale, N);
  check_format(fmt, zm.has_value());
  check_same_device(x, w, "x");
  check_same_device(s, w, "s");
  check_same_device(ws, w, "ws");
  check_same_device(counters, w, "counters");
  if (zm) check_same_device(*zm, w, "zm");
  if (tile_group) check_same_device(*tile_group, w, "tile_group");
  if (col_scale) check_same_device(*col_scale, w, "col_scale");
  c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::empty({M, N}, x.options());
  if (M == 0) return out;
  const int dtype = x.scalar_type() == at::kHalf ? 0 : 1;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.get_device()).stream();

  // 16, 32 or 64 rows per block; the launcher splits K when the output has too few tiles to fill the GPU.
  const int mt = M <= 16 ? 1 : (M <= 32 ? 2 : 4);
  // decode: 0 the tile kernel, 1 the decode kernel (mp_decode.cuh; float and 8-bit codes mp_decode_scaled.cuh)
  QLM_CHECK(decode == 0 || decode == 1, "decode: must be 0 or 1");
  QLM_CHECK(decode == 0 || qlinear_marlin::decode_applies(static_cast<int>(fmt), static_cast<int>(M), bits, Kp, group_k,
                                                         tile_group.has_value()),
            "decode: the decode kernels take M <= 16, K in whole chunks, 4-bit integer codes, or 8-bit integer and "
            "4/8-bit float codes in groups that divide or fill a chunk; got M=", M, ", ", bits, "-bit, fmt ", fmt, ", K=", Kp, ", group_k=", group_k);
  QLM_CHECK(want_splits >= 0, "want_splits: must be >= 0");
  QLM_CHECK(dec_warps == 0 || dec_warps == 4 || dec_warps == 8, "dec_warps: must be 0 (the launcher's rule), 4 or 8");
  QLM_CHECK(ws.is_cuda() && ws.scalar_type() == at::kFloat && ws.numel() >= M * N, "ws: needs >= M*N fp32");
  QLM_CHECK(counters.is_cuda() && counters.scalar_type() == at::kInt && counters.numel() >= ((M + 7) / 8) * n_tiles,
            "counters: needs >= ceil(M/8) * N/64 zeroed int32");

  torch::Tensor xg = x;  // act-order: x gathered by our kernel (PDL-launched like the decode kernel)
  if (kidx) {
    xg = torch::empty({M, Kp}, x.options());
    const cudaError_t e = qlinear_marlin::launch_mp_gather(x.data_ptr(), reinterpret_cast<const long long*>(kidx->data_ptr<int64_t>()), xg.data_ptr(),
                                                           static_cast<int>(M), static_cast<int>(x.size(1)),
                                                           static_cast<int>(Kp), dtype, pdl != 0, stream);
    TORCH_CHECK(e == cudaSuccess, "qlinear marlin gather launch failed: ", cudaGetErrorString(e));
  }

  qlinear_marlin::Params p{};
  p.x = xg.data_ptr();
  p.w = w.data_ptr();
  p.s = s.data_ptr();
  p.zm = zm ? zm->data_ptr() : nullptr;
  p.tile_group = tile_group ? tile_group->data_ptr<int>() : nullptr;
  p.bias = bias ? bias->data_ptr() : nullptr;
  p.col_scale = col_scale ? col_scale->data_ptr<float>() : nullptr;
  p.out = out.data_ptr();
  p.ws = ws.data_ptr<float>();
  p.ws_floats = ws.numel();
  p.counters = counters.data_ptr<int>();
  p.M = static_cast<int>(M);
  p.N = static_cast<int>(N);
  p.Kp = static_cast<int>(Kp);
  p.group_k = static_cast<int>(tile_group ? Kp : group_k);
  p.want_splits = static_cast<int>(std::min<int64_t>(want_splits, 1 << 20));
  p.pdl = pdl != 0;
  p.dec_warps = static_cast<int>(dec_warps);
  p.streamk = streamk != 0;
  cudaError_t e = decode ? qlinear_marlin::launch_mp_decode(p, dtype, static_cast<int>(fmt), bits, zm.has_value(), stream)
                  : fmt == qlinear_marlin::kFloatCodes ? qlinear_marlin::launch_mp_fp(p, dtype, bits, mt, stream)
                                                       : qlinear_marlin::launch_mp_int(p, dtype, bits, mt, zm.has_value(), stream);
  TORCH_CHECK(e == cudaSuccess, "qlinear marlin GEMM launch failed: ", cudaGetErrorString(e));
  return out;
}

// Dense dequantized weight [N, Kp] in `dtype` (float16/bfloat16), for the large-M path.
torch::Tensor mp_dequant(torch::Tensor w, torch::Tensor s, std::optional<torch::Tensor> zm,
                         std::optional<torch::Tensor> tile_group, std::optional<torch::Tensor> col_scale, int64_t group_k,
                         int64_t fmt) {
  check_cuda(w, "w");
  check_cuda(s, "s");
  QLM_CHECK(s.scalar_type() == at::kHalf || s.scalar_type() == at::kBFloat16, "s.dtype: must be float16 or bfloat16");
  QLM_CHECK(w.scalar_type() == at::kInt && w.dim() == 4 && w.size(2) == 32 && (w.size(3) == 4 || w.size(3) == 8),
            "w: expected int32 [N/64, K/16, 32, BITS] with BITS 4 or 8");
  const int bits = static_cast<int>(w.size(3));
  const int64_t n_tiles = w.size(0), tiles_k = w.size(1), N = n_tiles * 64, Kp = tiles_k * 16;
  QLM_CHECK(s.dim() == 4 && s.size(1) == n_tiles && s.size(2) == 8 && s.size(3) == 8, "s: expected [G, N/64, 8, 8]");
  QLM_CHECK(tiles_k <= 65535, "w: K/16 must be <= 65535");
  if (zm) {
    check_cuda(*zm, "zm");
    QLM_CHECK(zm->sizes() == s.sizes() && zm->scalar_type() == s.scalar_type(), "zm: must match s");
  }
  if (tile_group) {
    check_cuda(*tile_group, "tile_group");
    QLM_CHECK(tile_group->scalar_type() == at::kInt && tile_group->numel() == tiles_k, "tile_group: expected int32 [K/16]");
  }
  check_groups(s, tile_group.has_value(), group_k, Kp);
  check_col_scale(col_scale, N);
  check_format(fmt, zm.has_value());
  c10::cuda::CUDAGuard guard(w.device());
  auto out = torch::empty({N, Kp}, s.options());
  qlinear_marlin::Params p{};
  p.w = w.data_ptr();
  p.s = s.data_ptr();
  p.zm = zm ? zm->data_ptr() : nullptr;
  p.tile_group = tile_group ? tile_group->data_ptr<int>() : nullptr;
  p.col_scale = col_scale ? col_scale->data_ptr<float>() : nullptr;
  p.out = out.data_ptr();
  p.N = static_cast<int>(N);
  p.Kp = static_cast<int>(Kp);
  p.group_k = static_cast<int>(tile_group ? Kp : group_k);
  const int dtype = s.scalar_type() == at::kHalf ? 0 : 1;
  cudaError_t e = qlinear_marlin::launch_mp_dequant(p, dtype, bits, zm.has_value(), static_cast<int>(fmt), c10::cuda::getCurrentCUDAStream(w.get_device()).stream());
  TORCH_CHECK(e == cudaSuccess, "qlinear marlin dequant launch failed: ", cudaGetErrorString(e));
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("mp_gemm", &mp_gemm, "qlinear Marlin-class W4A16/W8A16 GEMM");
  m.def("mp_dequant", &mp_dequant, "dense 16-bit weight from the tile layout");
}
