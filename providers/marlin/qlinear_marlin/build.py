"""JIT build of the one CUDA extension, at load time (``process_weights_after_loading``), cached on disk.

The cache key hashes the sources, the torch version, its CUDA version, the target arch, the nvcc
version and the host C++ compiler, so a changed kernel or toolchain rebuilds into a fresh
directory: ``$QLINEAR_MARLIN_CACHE/<key>``, else ``$QLINEAR_CACHE_DIR/marlin/<key>`` (default
``~/.cache/qlinear/marlin/<key>``). The kernels (``mp_kernels_int.cu``, ``mp_kernels_fp.cu``) build
without torch headers; only the thin binding (``binding.cpp``) sees torch, and ninja builds the
three in parallel.

Many processes may start at once (one per GPU): the first builds, the others wait on an OS file
lock (``filelock``, ``flock``: released by the kernel when its holder dies, so a build killed
mid-nvcc never blocks the next process; waiting gives up after ``QLINEAR_MARLIN_BUILD_TIMEOUT``
seconds). torch's own build lock is a plain file only its creator deletes; holding ours, any such
file in the directory is a killed build's leftover and is removed. A failed build is remembered:
in this process (no retry per layer) and on disk (``FAILED`` next to ``build.log``), so later
processes report the log instead of recompiling; delete ``FAILED`` or set
``QLINEAR_MARLIN_REBUILD=1`` to try again. Building inside a CUDA-graph capture is refused.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import threading
import traceback
from pathlib import Path

import torch

from qlinear.cache_file import cache_root
from qlinear.settings import env_flag, env_int

CSRC = Path(__file__).parent / "csrc"
SOURCES = ("binding.cpp", "mp_kernels_int.cu", "mp_kernels_fp.cu")
HEADERS = ("mp_params.h", "marlin_mp.cuh", "mp_dequant.cuh")
LOCK_NAME = "qlinear-build.lock"  # ours (flock); torch's is "lock"
FAILED_NAME = "FAILED"
LOG_NAME = "build.log"


class BuildError(RuntimeError):
    """The extension could not be built; ``log`` is the file with the compiler's output."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


def _arch_flags() -> tuple[list[str], str]:
    major, minor = torch.cuda.get_device_capability()
    cc = f"{major}{minor}"
    return [f"-gencode=arch=compute_{cc},code=sm_{cc}"], cc


def cache_base() -> Path:
    root = os.environ.get("QLINEAR_MARLIN_CACHE")
    return Path(root) if root else cache_root() / "marlin"


def cache_dir(key: str) -> Path:
    return cache_base() / key


def _first_line(cmd: list[str], pick=lambda lines: lines[0]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return f"unavailable ({type(e).__name__})"
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    return pick(lines) if lines else "no version output"


def _nvcc() -> str:
    from torch.utils.cpp_extension import CUDA_HOME

    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or CUDA_HOME
    if home and (Path(home) / "bin" / "nvcc").exists():
        return str(Path(home) / "bin" / "nvcc")
    return shutil.which("nvcc") or "nvcc"


@functools.lru_cache(maxsize=None)
def _toolchain_for(nvcc: str, cxx: str) -> str:
    # "Cuda compilation tools, release 13.0, V13.0.48" / "c++ (GCC) 13.2.0"
    release = _first_line([nvcc, "--version"], lambda ls: next((ln for ln in ls if "release" in ln), ls[-1]))
    return f"nvcc={release};cxx={_first_line([cxx, '--version'])}"


def toolchain() -> str:
    """The nvcc release and the host compiler torch will use (``$CXX``, else ``c++``), as text."""
    return _toolchain_for(_nvcc(), os.environ.get("CXX") or "c++")


def source_key(cc: str) -> str:
    h = hashlib.sha256()
    for name in SOURCES + HEADERS:
        h.update(name.encode())
        h.update((CSRC / name).read_bytes())
    h.update(f"torch={torch.__version__};cuda={torch.version.cuda};cc={cc};{toolchain()}".encode())
    return h.hexdigest()[:16]


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
        if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
            raise RuntimeError("marlin: the CUDA extension cannot be built inside a CUDA-graph capture; "
                               "process_weights_after_loading builds it, run that before capturing")
        try:
            _ext = _build()
        except Exception as e:  # noqa: BLE001 - remembered: every later layer gets this error, no rebuild
            _failure = e
            raise
        return _ext


def _build():
    from filelock import FileLock, Timeout
    from torch.utils.cpp_extension import load

    arch, cc = _arch_flags()
    key = source_key(cc)
    build = cache_dir(key)
    build.mkdir(parents=True, exist_ok=True)
    log, failed = build / LOG_NAME, build / FAILED_NAME
    timeout = env_int("QLINEAR_MARLIN_BUILD_TIMEOUT", 1800, minimum=1)
    try:
        with FileLock(str(build / LOCK_NAME), timeout=timeout):
            if failed.exists() and not env_flag("QLINEAR_MARLIN_REBUILD"):
                raise BuildError(f"marlin: the CUDA extension failed to build before ({failed.read_text().strip()}); "
                                 f"fix the cause and delete {failed} or set QLINEAR_MARLIN_REBUILD=1 to retry", log)
            # we hold the OS lock, so no live qlinear build owns torch's lock file: a leftover of a kill
            (build / "lock").unlink(missing_ok=True)
            try:
                ext = load(
                    name=f"qlinear_marlin_{key}",
                    sources=[str(CSRC / s) for s in SOURCES],
                    extra_include_paths=[str(CSRC)],
                    extra_cflags=["-O3"],  # the -std is torch's choice (it may need C++20 for its headers)
                    extra_cuda_cflags=["-O3", *arch],
                    build_directory=str(build),
                    verbose=bool(os.environ.get("QLINEAR_MARLIN_VERBOSE")),
                )
            except Exception as e:
                log.write_text(f"{toolchain()}\n\n{e}\n\n{traceback.format_exc()}")
                failed.write_text(f"log: {log}")
                raise BuildError(f"marlin: the CUDA extension failed to build (log: {log}): "
                                 f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}", log) from e
            failed.unlink(missing_ok=True)
            return ext
    except Timeout as e:
        raise BuildError(f"marlin: another process holds {build / LOCK_NAME} for over {timeout} s "
                         "(QLINEAR_MARLIN_BUILD_TIMEOUT); is a build hung?") from e


def _forget() -> None:
    """Tests: forget this process's extension and failure."""
    global _ext, _failure
    with _state_lock:
        _ext = None
        _failure = None
