"""JIT builds of the provider's CUDA extensions, at a layer's ``process_weights_after_loading``.

Sources (``csrc/``): ``binding.cpp`` (the only file that sees torch), ``act_quant.cu`` (activation
quantization, plain CUDA), ``scaled_mm_dispatch.cu`` (the switch over instantiations) and one CUTLASS
translation unit per GEMM instantiation (``scaled_mm_<family>_<out>_<tile>.cu``,
``block_fp8_<out>_<tile>.cu``), so ninja compiles them in parallel (``MAX_JOBS``). The cache key
(sources, flags, nvcc and host compiler, CUTLASS headers), the build lock and the on-disk failure
record are ``qlinear.cuda_jit``'s; the directory is ``$QLINEAR_CUTLASS_CACHE/<key>`` or
``<qlinear cache>/cutlass/<key>`` (``QLINEAR_CACHE_DIR`` honoured); ``QLINEAR_CUTLASS_REBUILD=1``
retries a build that failed before.

The W4A16 mixed-input GEMMs are a second extension (``w4a16_binding.cpp``, ``w4a16_dispatch.cu`` and
``w4a16_<scale|zero>_<bf16|fp16>_<tile>.cu``, ``load_w4a16_extension``): a W4A16 model builds only
those, and an FP8/INT8 model never waits for them.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

CSRC = Path(__file__).parent / "csrc"
FAMILIES, OUTS, TILES = ("fp8", "int8"), ("bf16", "fp16"), ("small", "mid", "large")
GEMM_SOURCES = {fam: tuple(f"scaled_mm_{fam}_{o}_{t}.cu" for o in OUTS for t in TILES) for fam in FAMILIES}
GEMM_SOURCES["fp8_block"] = tuple(f"block_fp8_{o}_{t}.cu" for o in OUTS for t in ("small", "large"))
FAMILIES = (*FAMILIES, "fp8_block")
SOURCES = ("binding.cpp", "act_quant.cu", "scaled_mm_dispatch.cu", *(s for f in FAMILIES for s in GEMM_SOURCES[f]))
W4A16_SOURCES = ("w4a16_binding.cpp", "w4a16_dispatch.cu",
                 *(f"w4a16_{z}_{o}_{t}.cu" for z in ("scale", "zero") for o in OUTS for t in TILES))
SHARED_HEADERS = ("torch_binding_util.h",)  # both bindings include it: part of both cache keys
W4A16_HEADERS = ("w4a16_api.h", "w4a16_layout.h", "w4a16.cuh", *SHARED_HEADERS)
HEADERS = ("act_quant.h", "scaled_mm_api.h", "scaled_mm_dispatch.h", "scaled_mm.cuh", "block_fp8.cuh", *SHARED_HEADERS)
GENCODE = "-gencode=arch=compute_90a,code=sm_90a"  # wgmma / TMA / setmaxnreg exist only on sm_90a
CUDA_FLAGS = ["-O3", "-std=c++17", "-DNDEBUG", "--expt-relaxed-constexpr", "--expt-extended-lambda",
              "-DCUTLASS_ENABLE_TENSOR_CORE_MMA=1", GENCODE,
              # torch's extension flags hide the 16-bit operators CUTLASS's own types do not need
              "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
              "-U__CUDA_NO_BFLOAT16_CONVERSIONS__", "-U__CUDA_NO_HALF2_OPERATORS__"]
CXX_FLAGS = ["-O3"]


def build_key(sources=SOURCES, headers=HEADERS) -> str:
    """Sources, flags, torch / CUDA / nvcc versions and the CUTLASS headers' location and version."""
    import torch

    from qlinear.cuda_jit import source_key, toolchain

    from .gates import cutlass_include_dirs

    inc = cutlass_include_dirs() or []
    version_h = Path(inc[0]) / "cutlass" / "version.h" if inc else None
    return source_key([CSRC / s for s in tuple(sources) + tuple(headers)] + ([version_h] if version_h and version_h.is_file() else []),
                      " ".join(CUDA_FLAGS + CXX_FLAGS), f"torch={torch.__version__}", f"cuda={torch.version.cuda}",
                      toolchain(cuda=True), "arch=sm_90a", *inc)


@functools.lru_cache(maxsize=1)
def load_extension():
    """Compile (first time, ~1 min per GEMM family with enough cores) or load the extension."""
    from qlinear import cuda_jit

    from .gates import cutlass_include_dirs

    inc = cutlass_include_dirs()
    if inc is None:
        raise RuntimeError("CUTLASS headers not found: pip install nvidia-cutlass (or set QLINEAR_CUTLASS_DIR)")
    key = build_key()
    return cuda_jit.load(f"qlinear_cutlass_{key}", [CSRC / s for s in SOURCES], cuda_jit.cache_root("cutlass") / key,
                         include_dirs=[str(CSRC), *inc], cflags=CXX_FLAGS, cuda_cflags=CUDA_FLAGS,
                         verbose=bool(os.environ.get("QLINEAR_CUTLASS_VERBOSE")), provider="cutlass")


@functools.lru_cache(maxsize=1)
def load_w4a16_extension():
    """The W4A16 extension: compiled (first time; 12 GEMM objects in parallel) or loaded."""
    from qlinear import cuda_jit

    from .gates import cutlass_include_dirs

    inc = cutlass_include_dirs()
    if inc is None:
        raise RuntimeError("CUTLASS headers not found: pip install nvidia-cutlass (or set QLINEAR_CUTLASS_DIR)")
    key = build_key(W4A16_SOURCES, W4A16_HEADERS)
    return cuda_jit.load(f"qlinear_cutlass_w4a16_{key}", [CSRC / s for s in W4A16_SOURCES],
                         cuda_jit.cache_root("cutlass") / f"w4a16-{key}", include_dirs=[str(CSRC), *inc], cflags=CXX_FLAGS,
                         cuda_cflags=CUDA_FLAGS, verbose=bool(os.environ.get("QLINEAR_CUTLASS_VERBOSE")), provider="cutlass")
