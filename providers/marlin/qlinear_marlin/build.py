"""JIT build of the one CUDA extension, on first use, cached on disk.

The cache key hashes the sources, the torch version, its CUDA version and the target arch, so a
changed kernel or toolchain rebuilds into a fresh directory: ``$QLINEAR_MARLIN_CACHE`` or
``~/.cache/qlinear/marlin/<key>``. The kernels (``mp_kernels_int.cu``, ``mp_kernels_fp.cu``) build without torch headers;
only the thin binding (``binding.cpp``) sees torch, and ninja builds the three in parallel.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import torch

CSRC = Path(__file__).parent / "csrc"
SOURCES = ("binding.cpp", "mp_kernels_int.cu", "mp_kernels_fp.cu")
HEADERS = ("mp_params.h", "marlin_mp.cuh", "mp_dequant.cuh")


def _arch_flags() -> tuple[list[str], str]:
    major, minor = torch.cuda.get_device_capability()
    cc = f"{major}{minor}"
    return [f"-gencode=arch=compute_{cc},code=sm_{cc}"], cc


def cache_dir(key: str) -> Path:
    root = os.environ.get("QLINEAR_MARLIN_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "qlinear" / "marlin"
    return base / key


def source_key(cc: str) -> str:
    h = hashlib.sha256()
    for name in SOURCES + HEADERS:
        h.update(name.encode())
        h.update((CSRC / name).read_bytes())
    h.update(f"torch={torch.__version__};cuda={torch.version.cuda};cc={cc}".encode())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def load_extension():
    """Compile (first time) or load the extension module; raises RuntimeError with the build log cause."""
    from torch.utils.cpp_extension import load

    arch, cc = _arch_flags()
    key = source_key(cc)
    build = cache_dir(key)
    build.mkdir(parents=True, exist_ok=True)
    return load(
        name=f"qlinear_marlin_{key}",
        sources=[str(CSRC / s) for s in SOURCES],
        extra_include_paths=[str(CSRC)],
        extra_cflags=["-O3"],  # the -std is torch's choice (it may need C++20 for its headers)
        extra_cuda_cflags=["-O3", *arch],
        build_directory=str(build),
        verbose=bool(os.environ.get("QLINEAR_MARLIN_VERBOSE")),
    )
