"""JIT builds of the provider's CUDA extensions, at a layer's ``process_weights_after_loading``.

Sources (``csrc/``): ``binding.cpp`` (the only file that sees torch), ``act_quant.cu`` (activation
quantization, plain CUDA), ``scaled_mm_dispatch.cu`` (the switch over instantiations) and one CUTLASS
translation unit per GEMM instantiation (``scaled_mm_<family>_<out>_<tile>.cu``,
``block_fp8_<out>_<tile>.cu``), so ninja compiles them in parallel (``MAX_JOBS``). The cache key
(sources, flags, nvcc and host compiler, CUTLASS headers), the build lock and the on-disk failure
record are ``qlinear.cuda_jit``'s; the directory is ``$QLINEAR_CUTLASS_CACHE/<key>`` or
``<qlinear cache>/cutlass/<key>`` (``QLINEAR_CACHE_DIR`` honoured); ``QLINEAR_CUTLASS_REBUILD=1``
retries a build that failed before.

The W4A16 mixed-input GEMMs are an extension per activation dtype (``w4a16-bf16`` / ``w4a16-fp16``:
``w4a16_binding.cpp``, ``w4a16_dispatch_<act>.cu``, the decode kernel ``w4a16_decode_<act>.cu`` and
``w4a16_<scale|zero>_<act>_<tile>.cu``,
``load_w4a16_extension``), the same GEMMs on int8 codes (W8A16) likewise (``w8a16_binding.cpp``,
``w8a16_dispatch_<act>.cu``, ``w8a16_decode_<act>.cu``, ``w8a16_<act>_<tile>.cu``, ``load_w8a16_extension``), FP4 codes
(NVFP4 / MXFP4 weight-only) likewise (``fp4_binding.cpp``, ``fp4_dispatch_<act>.cu``, the float decode kernel
``fp4_decode_<act>.cu``, ``fp4_<nv|mx>_<act>_<tile>.cu``, MXFP4 in bf16 only) and MXFP8 E4M3 codes on the 8-bit order
(``mxfp8_binding.cpp``, ``mxfp8_dispatch_bf16.cu``, ``mxfp8_decode_bf16.cu``, ``mxfp8_bf16_<tile>.cu``), and the W4A8 int4 x
FP8 GEMMs another (``w4a8_binding.cpp``, ``act_quant.cu``, ``w4a8_dispatch.cu``, ``w4a8_<bf16|fp16>_<tile>.cu``,
``load_w4a8_extension``), and the SM100 NVFP4 GEMM a fourth, compiled for sm_100a
(``nvfp4_binding.cpp``, ``nvfp4_quant.cu``, ``nvfp4_sm100_<bf16|fp16>.cu``, ``load_nvfp4_extension``):
a model builds only the family it uses.
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
MIXED_TILES = ("m16", "m16w", "m64", "m64w", "m128", "m128w", "m256")  # configs.W4A16_TILES, W4A16Config
# one extension per (code width, activation dtype): a bf16 GPTQ model compiles 14 GEMM objects, not 28
W4A16_BY_ACT = {o: ("w4a16_binding.cpp", f"w4a16_dispatch_{o}.cu", f"w4a16_decode_{o}.cu",
                    *(f"w4a16_{z}_{o}_{t}.cu" for z in ("scale", "zero") for t in MIXED_TILES)) for o in OUTS}
W8A16_BY_ACT = {o: ("w8a16_binding.cpp", f"w8a16_dispatch_{o}.cu", f"w8a16_decode_{o}.cu", *(f"w8a16_{o}_{t}.cu" for t in MIXED_TILES))
                for o in OUTS}
# FP4 weight-only (NVFP4 group 16, MXFP4 group 32) on the same GEMM; MXFP4's E8M0 scales need bf16
FP4_BY_ACT = {o: ("fp4_binding.cpp", f"fp4_dispatch_{o}.cu", f"fp4_decode_{o}.cu",
                  *(f"fp4_{f}_{o}_{t}.cu" for f in (("nv", "mx") if o == "bf16" else ("nv",)) for t in MIXED_TILES)) for o in OUTS}
W4A16_SOURCES = tuple(dict.fromkeys(f for o in OUTS for f in W4A16_BY_ACT[o]))  # every W4A16 source, both dtypes
W8A16_SOURCES = tuple(dict.fromkeys(f for o in OUTS for f in W8A16_BY_ACT[o]))
FP4_SOURCES = tuple(dict.fromkeys(f for o in OUTS for f in FP4_BY_ACT[o]))
MXFP8_SOURCES = ("mxfp8_binding.cpp", "mxfp8_dispatch_bf16.cu", "mxfp8_decode_bf16.cu", *(f"mxfp8_bf16_{t}.cu" for t in MIXED_TILES))  # bf16 only (E8M0)
NVFP4_SOURCES = ("nvfp4_binding.cpp", "nvfp4_quant.cu", *(f"nvfp4_sm100_{o}.cu" for o in OUTS))
W4A8_SOURCES = ("w4a8_binding.cpp", "act_quant.cu", "w4a8_dispatch.cu", *(f"w4a8_{o}_{t}.cu" for o in OUTS for t in TILES))
SHARED_HEADERS = ("torch_binding_util.h", "gemm_run.h")  # in every extension: part of every cache key
MIXED_INPUT_HEADERS = ("w4a16_api.h", "w4a16_layout.h", "mixed_input_tiles.h", "w4a16.cuh", "mixed_input_float.cuh", "mixed_input_dispatch.h",
                       "mixed_input_binding.h", "w4a16_decode.cuh", "act_order_gather.cuh", "float_decode.cuh", "float_code_bits.h",
                       *SHARED_HEADERS)  # the mixed-input (integer and float code) extensions'
NVFP4_HEADERS = ("nvfp4_api.h", "nvfp4_sm100.cuh", *SHARED_HEADERS)
W4A8_HEADERS = ("w4a8_api.h", "w4a16_layout.h", "mixed_input_tiles.h", "w4a8.cuh", "act_quant.h", *SHARED_HEADERS)
HEADERS = ("act_quant.h", "scaled_mm_api.h", "scaled_mm_dispatch.h", "scaled_mm.cuh", "block_fp8.cuh", *SHARED_HEADERS)
GENCODE = "-gencode=arch=compute_90a,code=sm_90a"  # wgmma / TMA / setmaxnreg exist only on sm_90a
GENCODE_SM100 = "-gencode=arch=compute_100a,code=sm_100a"  # tcgen05 block-scaled MMA: B200 / GB200 only
CUDA_FLAGS = ["-O3", "-std=c++17", "-DNDEBUG", "--expt-relaxed-constexpr", "--expt-extended-lambda",
              "-DCUTLASS_ENABLE_TENSOR_CORE_MMA=1", GENCODE,
              # torch's extension flags hide the 16-bit operators CUTLASS's own types do not need
              "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
              "-U__CUDA_NO_BFLOAT16_CONVERSIONS__", "-U__CUDA_NO_HALF2_OPERATORS__"]
CXX_FLAGS = ["-O3"]


def cuda_flags(arch: int = 90) -> list[str]:
    return CUDA_FLAGS if arch == 90 else [GENCODE_SM100 if f == GENCODE else f for f in CUDA_FLAGS]


def build_key(sources=SOURCES, headers=HEADERS, arch: int = 90) -> str:
    """Sources, flags, torch / CUDA / nvcc versions and the CUTLASS headers' location and version."""
    import torch

    from qlinear.cuda_jit import source_key, toolchain

    from .gates import cutlass_include_dirs

    inc = cutlass_include_dirs() or []
    version_h = Path(inc[0]) / "cutlass" / "version.h" if inc else None
    return source_key([CSRC / s for s in tuple(sources) + tuple(headers)] + ([version_h] if version_h and version_h.is_file() else []),
                      " ".join(cuda_flags(arch) + CXX_FLAGS), f"torch={torch.__version__}", f"cuda={torch.version.cuda}",
                      toolchain(cuda=True), f"arch=sm_{arch}a", *inc)


# extension name -> (sources, headers, arch); each is its own module, cache directory and build lock
EXTENSIONS = {"w8a8": (SOURCES, HEADERS, 90),
              **{f"w4a16-{o}": (W4A16_BY_ACT[o], MIXED_INPUT_HEADERS, 90) for o in OUTS},
              **{f"w8a16-{o}": (W8A16_BY_ACT[o], MIXED_INPUT_HEADERS, 90) for o in OUTS},
              **{f"fp4-{o}": (FP4_BY_ACT[o], MIXED_INPUT_HEADERS, 90) for o in OUTS},
              "mxfp8-bf16": (MXFP8_SOURCES, MIXED_INPUT_HEADERS, 90),
              "w4a8": (W4A8_SOURCES, W4A8_HEADERS, 90), "nvfp4": (NVFP4_SOURCES, NVFP4_HEADERS, 100)}


def build_dir(name: str) -> Path:
    """Where extension ``name`` is (or will be) built: ``<cutlass cache>/<name>-<key>``."""
    from qlinear import cuda_jit

    return cuda_jit.cache_root("cutlass") / f"{name}-{build_key(*EXTENSIONS[name])}"


@functools.lru_cache(maxsize=None)
def load(name: str):
    """Compile (first time) or load extension ``name`` (a key of ``EXTENSIONS``)."""
    from qlinear import cuda_jit

    from .gates import cutlass_include_dirs

    inc = cutlass_include_dirs()
    if inc is None:
        raise RuntimeError("CUTLASS headers not found: pip install nvidia-cutlass (or set QLINEAR_CUTLASS_DIR)")
    d = build_dir(name)
    sources, _, arch = EXTENSIONS[name]
    return cuda_jit.load(f"qlinear_cutlass_{d.name.replace('-', '_')}", [CSRC / s for s in sources], d,
                         include_dirs=[str(CSRC), *inc], cflags=CXX_FLAGS, cuda_cflags=cuda_flags(arch),
                         verbose=bool(os.environ.get("QLINEAR_CUTLASS_VERBOSE")), provider="cutlass")


def load_extension():
    """The W8A8 extension (FP8 / INT8 / block FP8 and their quantizers): compiled (first time, ~1 min
    per GEMM family with enough cores) or loaded."""
    return load("w8a8")


def load_w4a16_extension(act: str = "bf16"):
    """The W4A16 extension for ``act`` (bf16 / fp16) activations: compiled (first time; 14 GEMM
    objects in parallel) or loaded."""
    return load(f"w4a16-{act}")


def load_w8a16_extension(act: str = "bf16"):
    """The W8A16 extension for ``act`` (bf16 / fp16) activations: compiled (first time; 7 GEMM
    objects in parallel) or loaded."""
    return load(f"w8a16-{act}")


def load_nvfp4_extension():
    """The NVFP4 extension for SM100 (sm_100a): compiled (first time) or loaded. UNVERIFIED: built and
    run on no SM100 GPU here; compile-checked only."""
    return load("nvfp4")


def load_w4a8_extension():
    """The W4A8 extension: compiled (first time; 6 GEMM objects and the quantizer in parallel) or loaded."""
    return load("w4a8")
