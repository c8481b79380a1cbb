"""JIT build of the C++ extension on first use, cached on disk, safe with concurrent builders.

Cache: ``$QLINEAR_CPU_CACHE/<key>``, else ``$QLINEAR_CACHE_DIR/cpu/<key>`` (default
``~/.cache/qlinear/cpu/<key>``); the key hashes the source, the flags, the compiler's version line
and the torch version and location, so any change builds into a fresh directory. The lock, the
recovery and the failure record are ``qlinear.cuda_jit``'s: one process builds at a time (an OS file
lock, waited for up to ``QLINEAR_CPU_BUILD_TIMEOUT`` seconds, default 600); a module left corrupt
by a killed build fails to load and is wiped and built once more; a failed build is remembered on
disk (``FAILED`` beside ``build.log``) until ``QLINEAR_CPU_REBUILD=1`` or the record is deleted.
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

from qlinear import cuda_jit

CSRC = Path(__file__).parent / "csrc"
SOURCES = ("qlinear_cpu.cpp",)
# the ISA subsets the kernels use (gcc >= 11); the Python gate checks the CPU has them before loading
CFLAGS = ["-O3", "-fopenmp", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512bf16", "-mavx512vnni", "-mavx512vbmi", "-mfma", "-mf16c",
          "-mamx-tile", "-mamx-int8", "-mamx-bf16"]
LDFLAGS = ["-fopenmp"]


def cache_root() -> Path:
    return cuda_jit.cache_root("cpu")


def compiler_version() -> str:
    cxx = cuda_jit.host_compiler()
    version = cuda_jit.cxx_version(cxx)
    if version is None:
        raise RuntimeError(f"no C++ compiler: `{cxx} --version` failed; install gcc or set CXX")
    return version


def source_key() -> str:
    import torch

    # torch's own location too: its loader writes this environment's include paths into build.ninja,
    # and ninja rebuilds when they change, so two environments sharing one directory would rebuild
    # each other's module back and forth
    return cuda_jit.source_key([CSRC / name for name in SOURCES], " ".join(CFLAGS + LDFLAGS),
                               f"torch={torch.__version__}", f"at={os.path.dirname(torch.__file__)}",
                               f"cxx={compiler_version()}")


def _ensure_ninja() -> None:
    """torch's loader runs ``ninja``; use the ``ninja`` wheel's binary when none is on PATH."""
    if shutil.which("ninja"):
        return
    try:
        import ninja  # type: ignore[import-not-found]
    except ImportError as e:
        raise RuntimeError("ninja is needed to build the qlinear_cpu extension: `pip install ninja`") from e
    os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")


@functools.lru_cache(maxsize=1)
def load_extension():
    """The compiled module (built the first time, loaded from the cache after); RuntimeError with the
    cause when it cannot be built. Also asks Linux for the AMX tile state for this process."""
    _ensure_ninja()
    key = source_key()
    mod = cuda_jit.load(f"qlinear_cpu_{key}", [CSRC / s for s in SOURCES], cache_root() / key, cflags=CFLAGS,
                        ldflags=LDFLAGS, verbose=bool(os.environ.get("QLINEAR_CPU_VERBOSE")), provider="cpu",
                        timeout=float(os.environ.get("QLINEAR_CPU_BUILD_TIMEOUT", "600")), cuda=False)
    if not mod.amx_init():
        raise RuntimeError("Linux refused the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM); kernel too old?")
    return mod
