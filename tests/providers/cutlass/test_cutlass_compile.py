"""Compile-check of the C++ sources for sm_90a where nvcc and the CUTLASS headers are present (skipped
otherwise), and a look at the SASS: the GEMM must issue Hopper warpgroup MMAs (HGMMA) on FP8 inputs.
The W4A16, W8A16, FP4 and MXFP8 weight-only extensions: their dispatch TUs, one representative mixed-input
GEMM each (int4 x bf16 with zero terms, int8 x fp16, NVFP4 E2M1 x bf16, MXFP8 E4M3 x bf16; register-sourced
16-bit HGMMA) and a host-side probe of the int4 and
int8 weight orders (``w4a16_layout.h`` against ``qlinear_cutlass.w4a16_layout`` and CUTLASS's own
``compute_memory_reordering_atom``).
The W4A8 extension: its dispatch TU, one representative int4 x FP8 GEMM (FP8 QGMMA fed by prmt table
lookups) and the 8-bit atom in the same probe (against ``qlinear_cutlass.w4a8_layout``).

A CUTLASS GEMM translation unit takes minutes on a 2-core CI machine, so by default this compiles the
quantizers, the dispatch TU and ONE representative GEMM (FP8 -> bf16, large tile: the EVT epilogue, the
ping-pong FP8 mainloop, the TMA descriptors); ``QLINEAR_CUTLASS_COMPILE_CHECK=all`` compiles all twelve
instantiations (and the twelve W4A16 and six W4A8 ones), ``=0`` skips. The GPU run (providers/cutlass/gpu_check.sh) builds everything.
"""

import importlib.util
import os
import shutil
import subprocess

import pytest

pytest.importorskip("qlinear_cutlass")

from qlinear.cuda_jit import find_nvcc  # noqa: E402
from qlinear_cutlass import build  # noqa: E402
from qlinear_cutlass.gates import cutlass_include_dirs  # noqa: E402

MODE = os.environ.get("QLINEAR_CUTLASS_COMPILE_CHECK", "one")
NVCC, INCLUDES = find_nvcc(), cutlass_include_dirs()
pytestmark = [
    pytest.mark.skipif(NVCC is None, reason="nvcc not found"),
    pytest.mark.skipif(INCLUDES is None, reason="CUTLASS headers not found (pip install nvidia-cutlass)"),
    pytest.mark.skipif(MODE == "0", reason="QLINEAR_CUTLASS_COMPILE_CHECK=0"),
]
REPRESENTATIVE = "scaled_mm_fp8_bf16_large.cu"
GEMMS = [s for s in build.SOURCES if s.startswith("scaled_mm_") and s != "scaled_mm_dispatch.cu"]
W4A16_REPRESENTATIVE = ["w4a16_zero_bf16_m128.cu", "w8a16_fp16_m64w.cu", "fp4_nv_bf16_m64.cu", "mxfp8_bf16_m64.cu"]
W4A16_GEMMS = [s for s in build.W4A16_SOURCES + build.W8A16_SOURCES + build.FP4_SOURCES + build.MXFP8_SOURCES
               if s.endswith(".cu") and "_dispatch_" not in s]
W4A8_REPRESENTATIVE = "w4a8_bf16_mid.cu"
W4A8_GEMMS = [s for s in build.W4A8_SOURCES if s.startswith("w4a8_") and s.endswith(".cu") and s != "w4a8_dispatch.cu"]
TIMEOUT_S = 1800  # one CUTLASS TU: ~1 min on a free core, several on a loaded 2-core machine


def _compile(src: str, out_dir, arch: int = 90) -> str:
    obj = str(out_dir / (src + ".o"))
    cmd = [NVCC, *build.cuda_flags(arch), f"-I{build.CSRC}", *(f"-I{d}" for d in INCLUDES), "-c", str(build.CSRC / src), "-o", obj]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert r.returncode == 0, f"{src} failed to compile for sm_{arch}a:\n{r.stderr[-4000:]}"
    return obj


def _cuobjdump() -> str | None:
    """cuobjdump on PATH, beside nvcc, or the copy triton ships (found without importing triton)."""
    cands = [shutil.which("cuobjdump"), os.path.join(os.path.dirname(NVCC), "cuobjdump")]
    spec = importlib.util.find_spec("triton")
    if spec is not None and spec.submodule_search_locations:
        cands += [os.path.join(p, "backends", "nvidia", "bin", "cuobjdump") for p in spec.submodule_search_locations]
    return next((c for c in cands if c and os.path.isfile(c) and os.access(c, os.X_OK)), None)


def _sass(obj: str) -> str:
    tool = _cuobjdump()
    if tool is None:
        pytest.skip("compiled; cuobjdump not found to read the SASS")
    r = subprocess.run([tool, "-sass", obj], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("src", ["act_quant.cu", "scaled_mm_dispatch.cu", "w4a16_dispatch_bf16.cu", "w4a16_dispatch_fp16.cu",
                                 "w8a16_dispatch_bf16.cu", "w8a16_dispatch_fp16.cu", "fp4_dispatch_bf16.cu",
                                 "fp4_dispatch_fp16.cu", "mxfp8_dispatch_bf16.cu", "w4a8_dispatch.cu"])
def test_light_sources_compile(src, tmp_path):
    obj = _compile(src, tmp_path)
    if src == "act_quant.cu":
        sass = _sass(obj)
        assert "arch = sm_90a" in sass
        assert "F2FP.SATFINITE.E4M3" in sass  # the hardware e4m3 conversion, not a software emulation


@pytest.mark.parametrize("src", ["w4a16_decode_bf16.cu", "w4a16_decode_fp16.cu", "w8a16_decode_bf16.cu", "w8a16_decode_fp16.cu",
                                 "fp4_decode_bf16.cu", "fp4_decode_fp16.cu", "mxfp8_decode_bf16.cu"])
def test_decode_kernel_streams_into_mma_sync(src, tmp_path):
    """The decode kernels (plain CUDA, seconds to build): m16n8k16 HMMAs of the activation dtype fed by
    loads that skip L1 (ld.global.nc.L1::no_allocate), no warpgroup MMA, no shared memory in the loop;
    float codes scaled by HMUL2 in the activation dtype."""
    sass = _sass(_compile(src, tmp_path))
    assert "arch = sm_90a" in sass
    hmma = "HMMA.16816.F32.BF16" if "bf16" in src else "HMMA.16816.F32 "
    assert hmma in sass and "HGMMA" not in sass
    wide = src.startswith(("w8a16", "mxfp8"))
    assert ("LDG.E.NA.64.CONSTANT" if wide else "LDG.E.NA.CONSTANT") in sass  # the weight stream (8 / 4 bytes a lane)
    if src.startswith(("fp4", "mxfp8")):
        # (4 / 8 warps) x (one / two 8-row halves of x a block) x the groups the extension holds (bf16 E2M1:
        # 16 and 32); no act-order gathers
        groups = 2 if src == "fp4_decode_bf16.cu" else 1
        assert sass.count("Function : ") == 4 * groups and "gather" not in sass
        assert ("HMUL2.BF16_V2" if "bf16" in src else "HMUL2 ") in sass
        return
    # (4 / 8 warps) x (one / two 8-row halves of x a block) x, for int4, (zero terms or not) x (fold per
    # chunk / per half), and act-order's gathers (a thread per element; rows staged in shared memory
    # through 16-byte cp.async copies, with and without the next indices read ahead)
    kernels = 2 * 2 * (4 if src.startswith("w4a16") else 1)
    assert sass.count("Function : ") == kernels + 3 and "gather_kernel" in sass
    assert sass.count("gather_rows_kernelILb1E") >= 1 and sass.count("gather_rows_kernelILb0E") >= 1
    assert "LDGSTS.E.BYPASS.128" in sass


@pytest.mark.parametrize("src", GEMMS if MODE == "all" else [REPRESENTATIVE])
def test_gemm_compiles_to_hopper_wgmma(src, tmp_path):
    sass = _sass(_compile(src, tmp_path))
    assert "arch = sm_90a" in sass
    assert "HGMMA" in sass or "IGMMA" in sass or "QGMMA" in sass, "no warpgroup MMA in the SASS"
    if "_fp8_" in src:
        assert "QGMMA" in sass  # FP8 warpgroup MMA (e4m3 x e4m3)
    else:
        assert "IGMMA" in sass  # INT8 warpgroup MMA
    assert "UTMALDG" in sass  # TMA loads


@pytest.mark.parametrize("src", W4A16_GEMMS if MODE == "all" else W4A16_REPRESENTATIVE)
def test_mixed_input_gemm_compiles_to_register_sourced_wgmma(src, tmp_path):
    sass = _sass(_compile(src, tmp_path))
    assert "arch = sm_90a" in sass
    assert "HGMMA.64x" in sass, "no 16-bit warpgroup MMA in the SASS"
    # bf16 inputs print as HGMMA.<shape>.F32.BF16; fp16 ones as plain HGMMA.<shape>.F32
    assert ("HGMMA.64x" in sass and ".F32.BF16" in sass) == ("_bf16_" in src)
    assert "UTMALDG" in sass  # TMA loads (int4 weight, x, scales)
    assert "LOP3.LUT" in sass  # the int4 / int8 -> 16-bit lop3 conversion
    if src.startswith("fp4_"):  # E2M1 placement (mixed_input_float.cuh): the sign at bit 15, exponent|mantissa
        # under the 16-bit exponent (ptxas folds the shifts into the masks: bf16 << 6, fp16 << 9)
        assert "0x80008000" in sass and ("0x1c001c0" if "_bf16_" in src else "0xe000e00") in sass
    if src.startswith("mxfp8_"):  # E4M3 placement: the sign at bit 15, exponent|mantissa << 4 (bf16)
        assert "0x80008000" in sass and "0x7f007f0" in sass


@pytest.mark.parametrize("src", W4A8_GEMMS if MODE == "all" else [W4A8_REPRESENTATIVE])
def test_w4a8_gemm_compiles_to_fp8_wgmma_with_lookups(src, tmp_path):
    sass = _sass(_compile(src, tmp_path))
    assert "arch = sm_90a" in sass
    assert "QGMMA.64x" in sass and ".E4M3.E4M3" in sass, "no FP8 (e4m3 x e4m3) warpgroup MMA in the SASS"
    assert "UTMALDG" in sass  # TMA loads (int4 weight, FP8 x, scale tables)
    assert "PRMT" in sass  # the int4 -> E4M3 table lookups


# The SM100 NVFP4 extension (UNVERIFIED on hardware: no SM100 GPU here): both TUs compile for sm_100a
# and carry the Blackwell instructions; its scale-factor layout is the project's 128x4 swizzle.
def test_nvfp4_quantizer_compiles_for_sm100_with_hardware_conversions(tmp_path):
    sass = _sass(_compile("nvfp4_quant.cu", tmp_path, arch=100))
    assert "arch = sm_100a" in sass
    assert "F2FP.SATFINITE.E2M1" in sass and "F2FP.SATFINITE.E4M3" in sass  # cvt.rn.satfinite e2m1x2 / e4m3x2


@pytest.mark.parametrize("src", [s for s in build.NVFP4_SOURCES if s.startswith("nvfp4_sm100_")] if MODE == "all"
                         else ["nvfp4_sm100_bf16.cu"])
def test_nvfp4_gemm_compiles_to_tcgen05_block_scaled_mma(src, tmp_path):
    sass = _sass(_compile(src, tmp_path, arch=100))
    assert "arch = sm_100a" in sass
    assert "UTCOMMA" in sass or "UTCQMMA" in sass, "no tcgen05 block-scaled MMA in the SASS"
    assert "UTCCP" in sass  # scale factors copied into tensor memory
    assert "UTMALDG" in sass  # TMA loads


_SF_PROBE = r"""
#include <cstdio>
#include <cstdlib>
#include "cutlass/detail/sm100_blockscaled_layout.hpp"
int main(int argc, char** argv) {
  int m = std::atoi(argv[1]), k = std::atoi(argv[2]);
  auto l = cutlass::detail::Sm1xxBlockScaledConfig<16>::tile_atom_to_shape_SFA(cute::make_shape(m, 8, k, 1));
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < k; j += 16) std::printf("%d\n", int(l(i, j, 0)));
}
"""


def test_nvfp4_scale_layout_is_the_128x4_swizzle(tmp_path):
    import torch

    from qlinear.formats.swizzle import swizzle_128x4

    (tmp_path / "sf_probe.cu").write_text(_SF_PROBE)
    exe = str(tmp_path / "sf_probe")
    cmd = [NVCC, "-std=c++17", *(f"-I{d}" for d in INCLUDES), str(tmp_path / "sf_probe.cu"), "-o", exe]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert r.returncode == 0, f"scale-layout probe failed to compile:\n{r.stderr[-4000:]}"
    for m, k in ((128, 64), (256, 256), (128, 512)):
        out = subprocess.run([exe, str(m), str(k)], capture_output=True, text=True, timeout=60, check=True).stdout
        cpp = torch.tensor([int(v) for v in out.split()], dtype=torch.int64).reshape(m, k // 16)
        ids = torch.arange(m * (k // 16), dtype=torch.int64).reshape(m, k // 16)
        where = torch.empty_like(ids).reshape(-1)
        where[swizzle_128x4(ids).reshape(-1)] = torch.arange(ids.numel())  # slot of each (row, block)
        assert torch.equal(cpp, where.reshape(m, k // 16)), f"SM100 scale layout differs from swizzle_128x4 at M={m} K={k}"


# The int4 weight order, printed by the C++ type the kernels use. With QLC_PROBE_CUTLASS_ATOM the
# probe also static_asserts that the atom is what CUTLASS's compute_memory_reordering_atom builds;
# that header (tools/util mixed_dtype_utils.hpp) includes curand and names cutlass::int8_t, so the
# probe gets a do-nothing curand_kernel.h and the two aliases (it only needs the layout function).
_PROBE = r"""
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include "w4a16_layout.h"
#ifdef QLC_PROBE_CUTLASS_ATOM
namespace cutlass { using ::int8_t; using ::uint8_t; }
#include "cutlass/numeric_types.h"
#include "cutlass/util/mixed_dtype_utils.hpp"
using Shuffle = cute::Layout<cute::Shape<cute::_2, cute::_4>, cute::Stride<cute::_4, cute::_1>>;
using One = cute::Layout<cute::Shape<cute::_1, cute::_1>>;
static_assert(std::is_same_v<decltype(cutlass::compute_memory_reordering_atom<cutlass::bfloat16_t, One, Shuffle>()),
                             qlinear_cutlass::W4ReorderAtom>, "the bf16 atom differs from CUTLASS's");
static_assert(std::is_same_v<decltype(cutlass::compute_memory_reordering_atom<cutlass::half_t, One, Shuffle>()),
                             qlinear_cutlass::W4ReorderAtom>, "the fp16 atom differs from CUTLASS's");
using Pairs = cute::Layout<cute::Shape<cute::_2, cute::_2>, cute::Stride<cute::_2, cute::_1>>;
static_assert(std::is_same_v<decltype(cutlass::compute_memory_reordering_atom<cutlass::bfloat16_t, One, Pairs>()),
                             qlinear_cutlass::W8ReorderAtom>, "the int8 (bf16) atom differs from CUTLASS's");
static_assert(std::is_same_v<decltype(cutlass::compute_memory_reordering_atom<cutlass::half_t, One, Pairs>()),
                             qlinear_cutlass::W8ReorderAtom>, "the int8 (fp16) atom differs from CUTLASS's");
static_assert(std::is_same_v<decltype(cutlass::compute_memory_reordering_atom<cutlass::float_e4m3_t>()),
                             qlinear_cutlass::W4A8ReorderAtom>, "the W4A8 (e4m3) atom differs from CUTLASS's");
#endif
template <class L>
void dump(L const& l, int n, int k) {
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < k; ++j) std::printf("%d\n", int(l(i, j, 0)));
}
int main(int argc, char** argv) {
  int n = std::atoi(argv[2]), k = std::atoi(argv[3]);
  if (argv[1][0] == '8') dump(qlinear_cutlass::w4a8_layout(n, k), n, k);
  else if (argv[1][0] == 'w') dump(qlinear_cutlass::w8_layout(n, k), n, k);
  else dump(qlinear_cutlass::w4_layout(n, k), n, k);
}
"""
_CURAND_STUB = """#pragma once
struct curandStateXORWOW {};
typedef curandStateXORWOW curandState_t;
template <class... T> __device__ inline void curand_init(T...) {}
__device__ inline float curand_uniform(curandState_t*) { return 0.f; }
__device__ inline double curand_uniform_double(curandState_t*) { return 0.; }
__device__ inline float curand_normal(curandState_t*) { return 0.f; }
__device__ inline double curand_normal_double(curandState_t*) { return 0.; }
"""


def test_int4_weight_orders_match_the_kernels_and_cutlass(tmp_path):
    import torch

    from qlinear_cutlass.w4a16_layout import W8A16_ATOM, reorder_offsets
    from qlinear_cutlass.w4a8_layout import W4A8_ATOM

    (tmp_path / "probe.cu").write_text(_PROBE)
    (tmp_path / "curand_kernel.h").write_text(_CURAND_STUB)
    exe = str(tmp_path / "probe")
    cmd = [NVCC, "-std=c++17", "-DQLC_PROBE_CUTLASS_ATOM", f"-I{tmp_path}", f"-I{build.CSRC}", *(f"-I{d}" for d in INCLUDES),
           str(tmp_path / "probe.cu"), "-o", exe]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert r.returncode == 0, f"layout probe failed to compile:\n{r.stderr[-4000:]}"
    for n, k in ((16, 16), (48, 64), (128, 192)):
        out = subprocess.run([exe, "16", str(n), str(k)], capture_output=True, text=True, timeout=60, check=True).stdout
        cpp = torch.tensor([int(v) for v in out.split()], dtype=torch.int64).reshape(n, k)
        assert torch.equal(cpp, reorder_offsets(n, k)), f"w4a16_layout.py and w4a16_layout.h disagree at N={n} K={k}"
    for n, k in ((16, 16), (48, 64), (128, 192)):
        out = subprocess.run([exe, "w8", str(n), str(k)], capture_output=True, text=True, timeout=60, check=True).stdout
        cpp = torch.tensor([int(v) for v in out.split()], dtype=torch.int64).reshape(n, k)
        assert torch.equal(cpp, W8A16_ATOM.offsets(n, k)), f"the W8A16 atom of w4a16_layout.py and w4a16_layout.h disagree at N={n} K={k}"
    for n, k in ((16, 32), (48, 128), (128, 256)):
        out = subprocess.run([exe, "8", str(n), str(k)], capture_output=True, text=True, timeout=60, check=True).stdout
        cpp = torch.tensor([int(v) for v in out.split()], dtype=torch.int64).reshape(n, k)
        assert torch.equal(cpp, W4A8_ATOM.offsets(n, k)), f"w4a8_layout.py and w4a16_layout.h disagree at N={n} K={k}"

