"""Compile-check of the C++ sources for sm_90a where nvcc and the CUTLASS headers are present (skipped
otherwise), and a look at the SASS: the GEMM must issue Hopper warpgroup MMAs (HGMMA) on FP8 inputs.
The W4A16 extension: its dispatch TU, one representative mixed-input GEMM (int4 x bf16 with zero
terms; register-sourced bf16 HGMMA) and a host-side probe of the int4 weight order (``w4a16_layout.h``
against ``qlinear_cutlass.w4a16_layout`` and CUTLASS's own ``compute_memory_reordering_atom``).

A CUTLASS GEMM translation unit takes minutes on a 2-core CI machine, so by default this compiles the
quantizers, the dispatch TU and ONE representative GEMM (FP8 -> bf16, large tile: the EVT epilogue, the
ping-pong FP8 mainloop, the TMA descriptors); ``QLINEAR_CUTLASS_COMPILE_CHECK=all`` compiles all twelve
instantiations (and the twelve W4A16 ones), ``=0`` skips. The GPU run (providers/cutlass/gpu_check.sh) builds everything.
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
W4A16_REPRESENTATIVE = "w4a16_zero_bf16_mid.cu"
W4A16_GEMMS = [s for s in build.W4A16_SOURCES if s.endswith(".cu") and s != "w4a16_dispatch.cu"]
TIMEOUT_S = 1800  # one CUTLASS TU: ~1 min on a free core, several on a loaded 2-core machine


def _compile(src: str, out_dir) -> str:
    obj = str(out_dir / (src + ".o"))
    cmd = [NVCC, *build.CUDA_FLAGS, f"-I{build.CSRC}", *(f"-I{d}" for d in INCLUDES), "-c", str(build.CSRC / src), "-o", obj]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert r.returncode == 0, f"{src} failed to compile for sm_90a:\n{r.stderr[-4000:]}"
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


@pytest.mark.parametrize("src", ["act_quant.cu", "scaled_mm_dispatch.cu", "w4a16_dispatch.cu"])
def test_light_sources_compile(src, tmp_path):
    obj = _compile(src, tmp_path)
    if src == "act_quant.cu":
        sass = _sass(obj)
        assert "arch = sm_90a" in sass
        assert "F2FP.SATFINITE.E4M3" in sass  # the hardware e4m3 conversion, not a software emulation


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


@pytest.mark.parametrize("src", W4A16_GEMMS if MODE == "all" else [W4A16_REPRESENTATIVE])
def test_w4a16_gemm_compiles_to_register_sourced_wgmma(src, tmp_path):
    sass = _sass(_compile(src, tmp_path))
    assert "arch = sm_90a" in sass
    assert "HGMMA.64x" in sass, "no 16-bit warpgroup MMA in the SASS"
    # bf16 inputs print as HGMMA.<shape>.F32.BF16; fp16 ones as plain HGMMA.<shape>.F32
    assert ("HGMMA.64x" in sass and ".F32.BF16" in sass) == ("_bf16_" in src)
    assert "UTMALDG" in sass  # TMA loads (int4 weight, x, scales)
    assert "LOP3.LUT" in sass  # the int4 -> 16-bit lop3 conversion


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
#endif
int main(int argc, char** argv) {
  int n = std::atoi(argv[1]), k = std::atoi(argv[2]);
  auto l = qlinear_cutlass::w4_layout(n, k);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < k; ++j) std::printf("%d\n", int(l(i, j, 0)));
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


def test_w4a16_weight_order_matches_the_kernel_and_cutlass(tmp_path):
    import torch

    from qlinear_cutlass.w4a16_layout import reorder_offsets

    (tmp_path / "probe.cu").write_text(_PROBE)
    (tmp_path / "curand_kernel.h").write_text(_CURAND_STUB)
    exe = str(tmp_path / "probe")
    cmd = [NVCC, "-std=c++17", "-DQLC_PROBE_CUTLASS_ATOM", f"-I{tmp_path}", f"-I{build.CSRC}", *(f"-I{d}" for d in INCLUDES),
           str(tmp_path / "probe.cu"), "-o", exe]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert r.returncode == 0, f"layout probe failed to compile:\n{r.stderr[-4000:]}"
    for n, k in ((16, 16), (48, 64), (128, 192)):
        out = subprocess.run([exe, str(n), str(k)], capture_output=True, text=True, timeout=60, check=True).stdout
        cpp = torch.tensor([int(v) for v in out.split()], dtype=torch.int64).reshape(n, k)
        assert torch.equal(cpp, reorder_offsets(n, k)), f"w4a16_layout.py and w4a16_layout.h disagree at N={n} K={k}"

