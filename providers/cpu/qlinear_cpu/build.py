"""JIT build of the C++ extension on first use, cached on disk, safe with concurrent builders.

Cache: ``$QLINEAR_CACHE_DIR/cpu/<key>`` (default ``~/.cache/qlinear/cpu/<key>``); the key hashes the
source, the flags, the compiler's version line and the torch version and location, so any change builds into a
fresh directory. One process builds at a time (an ``fcntl`` lock file next to the directory, waited
for up to ``QLINEAR_CPU_BUILD_TIMEOUT`` seconds, default 600). A build directory left half-done by a
killed build, or with a corrupt module, fails to load; it is then wiped and built once more.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

CSRC = Path(__file__).parent / "csrc"
SOURCES = ("qlinear_cpu.cpp",)
# the ISA subsets the kernels use (gcc >= 11); the Python gate checks the CPU has them before loading
CFLAGS = ["-O3", "-fopenmp", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512bf16", "-mavx512vnni", "-mavx512vbmi", "-mfma", "-mf16c",
          "-mamx-tile", "-mamx-int8", "-mamx-bf16"]
LDFLAGS = ["-fopenmp"]


def cache_root() -> Path:
    root = os.environ.get("QLINEAR_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "qlinear") / "cpu"


@functools.lru_cache(maxsize=1)
def compiler_version() -> str:
    cxx = os.environ.get("CXX", "c++")
    try:
        return subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError) as e:
        raise RuntimeError(f"no C++ compiler: `{cxx} --version` failed ({e}); install gcc or set CXX") from e


def source_key() -> str:
    import torch

    h = hashlib.sha256()
    for name in SOURCES:
        h.update(name.encode())
        h.update((CSRC / name).read_bytes())
    h.update(" ".join(CFLAGS + LDFLAGS).encode())
    # torch's own location too: its loader writes this environment's include paths into build.ninja,
    # and ninja rebuilds when they change, so two environments sharing one directory would rebuild
    # each other's module back and forth
    h.update(f"torch={torch.__version__};at={os.path.dirname(torch.__file__)};cxx={compiler_version()}".encode())
    return h.hexdigest()[:16]


def _ensure_ninja() -> None:
    """torch's loader runs ``ninja``; use the ``ninja`` wheel's binary when none is on PATH."""
    if shutil.which("ninja"):
        return
    try:
        import ninja  # type: ignore[import-not-found]
    except ImportError as e:
        raise RuntimeError("ninja is needed to build the qlinear_cpu extension: `pip install ninja`") from e
    os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")


class _FileLock:
    def __init__(self, path: Path, timeout: float):
        self.path, self.timeout, self.fd = path, timeout, None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    raise TimeoutError(f"waited {self.timeout:.0f}s for another process building in {self.path.parent}; "
                                       f"remove {self.path} if no build is running") from None
                time.sleep(0.2)

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _load(build: Path, key: str):
    from torch.utils.cpp_extension import load

    return load(
        name=f"qlinear_cpu_{key}",
        sources=[str(CSRC / s) for s in SOURCES],
        extra_cflags=CFLAGS,
        extra_ldflags=LDFLAGS,
        build_directory=str(build),
        verbose=bool(os.environ.get("QLINEAR_CPU_VERBOSE")),
    )


@functools.lru_cache(maxsize=1)
def load_extension():
    """The compiled module (built the first time, loaded from the cache after); RuntimeError with the
    cause when it cannot be built. Also asks Linux for the AMX tile state for this process."""
    _ensure_ninja()
    key = source_key()
    root = cache_root()
    build = root / key
    timeout = float(os.environ.get("QLINEAR_CPU_BUILD_TIMEOUT", "600"))
    with _FileLock(root / f"{key}.lock", timeout):
        build.mkdir(parents=True, exist_ok=True)
        # torch's loader waits forever on its own "lock" file; one left by a killed build is stale
        # (we hold the only lock that matters now)
        (build / "lock").unlink(missing_ok=True)
        try:
            mod = _load(build, key)
        except Exception as first:  # noqa: BLE001 - a half-written or corrupt build dir: start clean once
            shutil.rmtree(build, ignore_errors=True)
            build.mkdir(parents=True, exist_ok=True)
            try:
                mod = _load(build, key)
            except Exception as e:
                raise RuntimeError(f"qlinear_cpu extension build failed in {build}: {e}") from first
    if not mod.amx_init():
        raise RuntimeError("Linux refused the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM); kernel too old?")
    return mod
