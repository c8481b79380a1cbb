"""Just-in-time builds of a provider's C++ / CUDA extension (``torch.utils.cpp_extension``): the cache
folder and key, the toolchain the key names, the build lock, and failed builds remembered on disk.

Shared by every provider that compiles at first use (marlin, cutlass, cpu): at a layer's
``process_weights_after_loading``, never at import, selection or in a call.

- Folder: ``$QLINEAR_<PROVIDER>_CACHE/<key>``, else ``<qlinear cache>/<provider>/<key>`` (the cache
  root honours ``QLINEAR_CACHE_DIR``, see ``qlinear.cache_file``).
- Key: a hash of the sources, the flags, torch's version and CUDA, and the toolchain (nvcc's build
  line and the host C++ compiler's version line), so a changed kernel or toolchain builds into a
  fresh folder instead of loading a stale module.
- Lock: many processes (one per GPU) may start at once; they take turns on an OS file lock
  (``filelock``: ``flock``, released by the kernel when its holder dies, so a build killed mid-nvcc
  never blocks the next process), given up after a timeout. torch's own lock file is a plain file
  only its creator deletes: holding ours, one left in the folder is a killed build's and is removed.
- A module that exists but does not load (a link killed half-way) is wiped and built once more.
- A failed build is remembered on disk (``FAILED`` next to ``build.log``, which holds the compiler's
  output): later processes get the log instead of recompiling; delete ``FAILED`` or set
  ``QLINEAR_<PROVIDER>_REBUILD=1`` to try again.
- Building inside a CUDA-graph capture is refused (it would run nvcc during a capture).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import subprocess
import traceback
from pathlib import Path
from typing import Iterable, Iterator

from .cache_file import cache_root as qlinear_cache_root
from .settings import env_flag

LOCK_NAME = "qlinear-build.lock"  # ours (flock); torch's is "lock"
FAILED_NAME = "FAILED"
LOG_NAME = "build.log"


class BuildError(RuntimeError):
    """The extension could not be built; ``log`` is the file with the compiler's output."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


# ---- the toolchain ------------------------------------------------------------------------------
def find_nvcc() -> str | None:
    """The nvcc torch's extension builder runs: under ``CUDA_HOME`` / ``CUDA_PATH``, else on PATH
    (torch's order); None when there is none."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        root = os.environ.get(var)
        if root:
            cand = os.path.join(root, "bin", "nvcc")
            if os.path.isfile(cand) and os.access(cand, os.X_OK):
                return cand
    return shutil.which("nvcc")


def toolchain_reason(nvcc: str | None) -> str | None:
    """Why a JIT-built CUDA extension cannot be compiled on this machine (a CPU build of torch, no
    ``nvcc``: pass ``find_nvcc()``), or None. For the providers' ``is_supported`` gates."""
    import torch

    if getattr(torch.version, "cuda", None) is None:
        return "torch is a CPU build (torch.version.cuda is None)"
    if nvcc is None:
        return "nvcc not found (not on PATH, nor under CUDA_HOME/CUDA_PATH): the kernels are JIT-compiled"
    return None


def _version_lines(cmd: list[str]) -> list[str] | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [ln.strip() for ln in out.splitlines() if ln.strip()]


@functools.lru_cache(maxsize=4)
def nvcc_version(nvcc: str) -> str:
    """The last line of ``nvcc --version`` (the build id), or "unknown" if it cannot run."""
    lines = _version_lines([nvcc, "--version"])
    return lines[-1] if lines else "unknown"


def host_compiler() -> str:
    """The host C++ compiler torch's builder runs: ``$CXX``, else ``c++``."""
    return os.environ.get("CXX") or "c++"


@functools.lru_cache(maxsize=4)
def cxx_version(cxx: str) -> str | None:
    """The first line of ``<cxx> --version`` ("g++ (GCC) 13.2.0"), or None if it cannot run."""
    lines = _version_lines([cxx, "--version"])
    return lines[0] if lines else None


def toolchain(cuda: bool = True) -> str:
    """The compilers a build will run, as text for the cache key and the build log."""
    cxx = host_compiler()
    parts = [f"cxx={cxx_version(cxx) or 'unavailable'}"]
    if cuda:
        nvcc = find_nvcc()
        parts.insert(0, f"nvcc={nvcc_version(nvcc) if nvcc else 'none'}")
    return ";".join(parts)


# ---- folder and key -----------------------------------------------------------------------------
def cache_root(provider: str) -> Path:
    """``$QLINEAR_<PROVIDER>_CACHE``, else ``<qlinear cache root>/<provider>``."""
    env = os.environ.get(f"QLINEAR_{provider.upper()}_CACHE")
    return Path(env) if env else qlinear_cache_root() / provider


def source_key(files: Iterable[Path], *extra: str) -> str:
    """16 hex digits of sha256 over each file's name and bytes and the ``extra`` strings."""
    h = hashlib.sha256()
    for f in files:
        h.update(Path(f).name.encode())
        h.update(Path(f).read_bytes())
    for e in extra:
        h.update(b"\0" + e.encode())
    return h.hexdigest()[:16]


# ---- lock ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def file_lock(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Exclusive OS lock on the file ``path`` (created); TimeoutError after ``timeout`` seconds of
    waiting for another holder (None: wait for ever)."""
    from filelock import FileLock, Timeout

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=-1 if timeout is None else timeout)
    try:
        lock.acquire(poll_interval=0.2)
    except Timeout:
        raise TimeoutError(f"waited {timeout:.0f}s for another process building in {path.parent}; "
                           f"is a build hung? ({path} is released when its holder exits)") from None
    try:
        yield
    finally:
        lock.release()


def build_lock(directory: Path, timeout: float | None = None):
    """The lock of one build folder (``directory/qlinear-build.lock``)."""
    return file_lock(Path(directory) / LOCK_NAME, timeout)


def refuse_in_capture(label: str) -> None:
    """RuntimeError while the current CUDA stream is capturing a graph: a build belongs at load."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
        raise RuntimeError(f"{label}: the extension cannot be built inside a CUDA-graph capture; "
                           "process_weights_after_loading builds it, run that before capturing")


# ---- build or load ------------------------------------------------------------------------------
def load(name: str, sources: list[Path], build_dir: Path, *, include_dirs: Iterable[str] = (),
         cflags: Iterable[str] = (), cuda_cflags: Iterable[str] | None = None, ldflags: Iterable[str] = (),
         verbose: bool = False, provider: str | None = None, timeout: float | None = None, cuda: bool = True):
    """Build (first time) or load the extension ``name`` into ``build_dir``, under its lock.

    Raises BuildError naming ``build.log`` when the compiler fails (and, until ``FAILED`` is removed
    or ``QLINEAR_<PROVIDER>_REBUILD`` is set, at once on later calls in any process), TimeoutError
    when another builder holds the lock over ``timeout`` seconds, RuntimeError in a CUDA-graph
    capture. ``cuda``: a CUDA extension (nvcc in the toolchain, the capture check)."""
    from torch.utils.cpp_extension import load as torch_load

    label = provider or name
    if cuda:
        refuse_in_capture(label)
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    log, failed = build_dir / LOG_NAME, build_dir / FAILED_NAME
    rebuild_var = f"QLINEAR_{(provider or 'JIT').upper()}_REBUILD"

    def attempt():
        return torch_load(name=name, sources=[str(s) for s in sources], extra_include_paths=list(include_dirs),
                          extra_cflags=list(cflags), extra_cuda_cflags=None if cuda_cflags is None else list(cuda_cflags),
                          extra_ldflags=list(ldflags), build_directory=str(build_dir), verbose=verbose)

    with build_lock(build_dir, timeout):
        if failed.exists() and not env_flag(rebuild_var):
            raise BuildError(f"{label}: the extension failed to build before ({failed.read_text().strip()}); "
                             f"fix the cause and delete {failed} or set {rebuild_var}=1 to retry", log)
        # we hold the only lock that matters: a torch lock file left here is from a dead builder
        (build_dir / "lock").unlink(missing_ok=True)
        try:
            try:
                ext = attempt()
            except ImportError:
                # the module exists but does not load (truncated by a killed link): start clean once
                for p in build_dir.iterdir():
                    if p.name != LOCK_NAME:
                        shutil.rmtree(p) if p.is_dir() else p.unlink()
                ext = attempt()
        except Exception as e:
            log.write_text(f"{toolchain(cuda)}\n\n{e}\n\n{traceback.format_exc()}")
            failed.write_text(f"log: {log}")
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BuildError(f"{label}: the extension failed to build (log: {log}): {first}", log) from e
        failed.unlink(missing_ok=True)
        return ext
