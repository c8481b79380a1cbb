"""Just-in-time builds of a provider's CUDA extension: find nvcc, key the on-disk cache, build once.

Shared by the providers that compile C++/CUDA at first use (never at import or selection). The cache
directory is keyed by a hash of the sources, the build flags, torch's version and CUDA, nvcc's own
version and the target arch, so a changed kernel or toolchain builds into a fresh directory. Two
processes building the same key take turns on an ``flock`` (released by the kernel if a builder
dies, unlike torch's lock file, which a killed build leaves behind); an extension that fails to load
from a finished directory (a build killed while linking) is wiped and rebuilt once.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterable, Iterator


def find_nvcc() -> str | None:
    """nvcc on PATH, else under CUDA_HOME / CUDA_PATH."""
    found = shutil.which("nvcc")
    if found:
        return found
    for var in ("CUDA_HOME", "CUDA_PATH"):
        root = os.environ.get(var)
        if root:
            cand = os.path.join(root, "bin", "nvcc")
            if os.path.isfile(cand) and os.access(cand, os.X_OK):
                return cand
    return None


@functools.lru_cache(maxsize=4)
def nvcc_version(nvcc: str) -> str:
    """The last line of ``nvcc --version`` (the build id), or "unknown" if it cannot run."""
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    lines = [ln for ln in out.splitlines() if ln.strip()]
    return lines[-1] if lines else "unknown"


def cache_root(provider: str) -> Path:
    """``$QLINEAR_<PROVIDER>_CACHE`` or ``~/.cache/qlinear/<provider>``."""
    env = os.environ.get(f"QLINEAR_{provider.upper()}_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "qlinear" / provider


def source_key(files: Iterable[Path], *extra: str) -> str:
    """16 hex digits of sha256 over each file's name and bytes and the ``extra`` strings."""
    h = hashlib.sha256()
    for f in files:
        h.update(Path(f).name.encode())
        h.update(Path(f).read_bytes())
    for e in extra:
        h.update(b"\0" + e.encode())
    return h.hexdigest()[:16]


@contextlib.contextmanager
def build_lock(directory: Path) -> Iterator[None]:
    """Exclusive lock on ``directory/.build.lock`` while building / loading (no-op without fcntl)."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: fall back to torch's own lock file
        yield
        return
    with open(directory / ".build.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def load(name: str, sources: list[Path], build_dir: Path, *, include_dirs: list[str], cflags: list[str],
         cuda_cflags: list[str], verbose: bool = False):
    """Build (first time) or load the extension ``name`` into ``build_dir``; raises RuntimeError with
    the compiler's reason on failure."""
    from torch.utils.cpp_extension import load as torch_load

    def attempt():
        return torch_load(name=name, sources=[str(s) for s in sources], extra_include_paths=include_dirs,
                          extra_cflags=cflags, extra_cuda_cflags=cuda_cflags, build_directory=str(build_dir),
                          verbose=verbose)

    with build_lock(build_dir):
        # We hold the only lock that matters: a torch lock file left here is from a dead builder.
        (build_dir / "lock").unlink(missing_ok=True)
        try:
            return attempt()
        except ImportError:
            # the .so exists but does not load (truncated by a killed link): rebuild from scratch once
            for p in build_dir.iterdir():
                if p.name != ".build.lock":
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
            return attempt()
