"""Compile-check of the C++ sources for sm_90a where nvcc and the CUTLASS headers are present (skipped
otherwise), and a look at the SASS: the GEMM must issue Hopper warpgroup MMAs (HGMMA) on FP8 inputs.

A CUTLASS GEMM translation unit takes minutes on a 2-core CI machine, so by default this compiles the
quantizers, the dispatch TU and ONE representative GEMM (FP8 -> bf16, large tile: the EVT epilogue, the
ping-pong FP8 mainloop, the TMA descriptors); ``QLINEAR_CUTLASS_COMPILE_CHECK=all`` compiles all twelve
instantiations, ``=0`` skips. The GPU run (providers/cutlass/gpu_check.sh) builds everything.
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


@pytest.mark.parametrize("src", ["act_quant.cu", "scaled_mm_dispatch.cu"])
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
