"""JIT build of the one CUDA extension, at load time (``process_weights_after_loading``), cached on disk.

The cache key hashes the sources, the torch version, its CUDA version, the target arch, the nvcc
version and the host C++ compiler, so a changed kernel or toolchain rebuilds into a fresh
directory: ``$QLINEAR_MARLIN_CACHE/<key>``, else ``$QLINEAR_CACHE_DIR/marlin/<key>`` (default
``~/.cache/qlinear/marlin/<key>``). The kernels (``mp_kernels_int.cu``, ``mp_kernels_fp.cu``) build
without torch headers; only the thin binding (``binding.cpp``) sees torch, and ninja builds the
three in parallel.

The folder, key, lock and on-disk failure record are ``qlinear.cuda_jit``'s: many processes may
start at once (one per GPU), the first builds, the others wait on an OS file lock (given up after
``QLINEAR_MARLIN_BUILD_TIMEOUT`` seconds, default 1800); a failed build is remembered on disk
(``FAILED`` next to ``build.log``), so later processes report the log instead of recompiling
(delete ``FAILED`` or set ``QLINEAR_MARLIN_REBUILD=1`` to try again). This module adds the memory of
this process: the loaded module, or the failure (no retry per layer, and ``gates`` takes marlin out
of selection). Building inside a CUDA-graph capture is refused.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import torch

from qlinear import cuda_jit
from qlinear.cuda_jit import BuildError  # noqa: F401 - raised by load_extension; the provider's name for it
from qlinear.settings import env_int

CSRC = Path(__file__).parent / "csrc"
SOURCES = ("binding.cpp", "mp_kernels_int.cu", "mp_kernels_fp.cu")
HEADERS = tuple(sorted(p.name for p in CSRC.iterdir() if p.suffix in (".cuh", ".h")))  # all: any edit rebuilds


def _arch_flags() -> tuple[list[str], str]:
    major, minor = torch.cuda.get_device_capability()
    cc = f"{major}{minor}"
    return [f"-gencode=arch=compute_{cc},code=sm_{cc}"], cc


def cache_base() -> Path:
    return cuda_jit.cache_root("marlin")


def cache_dir(key: str) -> Path:
    return cache_base() / key


def toolchain() -> str:
    """The nvcc and the host compiler torch will use (``$CXX``, else ``c++``), as text."""
    return cuda_jit.toolchain(cuda=True)


def source_key(cc: str) -> str:
    return cuda_jit.source_key([CSRC / name for name in SOURCES + HEADERS], f"torch={torch.__version__}",
                               f"cuda={torch.version.cuda}", f"cc={cc}", toolchain())


_state_lock = threading.Lock()
_ext = None
_failure: BaseException | None = None


def loaded():
    """The extension if this process has built/loaded it, else None (never builds)."""
    return _ext


def failure() -> BaseException | None:
    """The error of this process's failed build (or None)."""
    return _failure


def load_extension():
    """Compile (first time, under the file lock) or load the extension module; raises BuildError
    naming the log on failure, and the same error again on later calls without rebuilding."""
    global _ext, _failure
    if _ext is not None:
        return _ext
    with _state_lock:
        if _ext is not None:
            return _ext
        if _failure is not None:
            raise _failure
        cuda_jit.refuse_in_capture("marlin")  # not remembered as a failure: a later load may build
        try:
            _ext = _build()
        except Exception as e:  # noqa: BLE001 - remembered: every later layer gets this error, no rebuild
            _failure = e
            raise
        return _ext


def _build():
    arch, cc = _arch_flags()
    key = source_key(cc)
    return cuda_jit.load(f"qlinear_marlin_{key}", [CSRC / s for s in SOURCES], cache_dir(key),
                         include_dirs=[str(CSRC)],
                         cflags=["-O3"],  # the -std is torch's choice (it may need C++20 for its headers)
                         cuda_cflags=["-O3", *arch], verbose=bool(os.environ.get("QLINEAR_MARLIN_VERBOSE")),
                         provider="marlin", timeout=env_int("QLINEAR_MARLIN_BUILD_TIMEOUT", 1800, minimum=1))


def _forget() -> None:
    """Tests: forget this process's extension and failure."""
    global _ext, _failure
    with _state_lock:
        _ext = None
        _failure = None
