"""Finding fbgemm-gpu-genai: one cached import, the torch pairing, and per-op presence.

``import fbgemm_gpu.experimental.gen_ai`` registers the ``torch.ops.fbgemm.*`` GEMM ops. It is
imported only here, only from a kernel's ``is_supported`` (after the platform checks) or at first
use, never when this provider is imported or discovered. fbgemm-gpu-genai wheels are built against
one torch release each, and a mismatched pair fails at import with an undefined-symbol error; the
reason string names the pairing so ``qlinear doctor`` says what to install.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading

import torch

from qlinear.platform import Platform, resolve_platform

DISTRIBUTION = "fbgemm-gpu-genai"
MODULE = "fbgemm_gpu.experimental.gen_ai"
# fbgemm-gpu-genai release -> the torch minor it was built against (pip metadata pins it the same way).
TORCH_PAIRING = {"1.6.0": "2.11", "1.9.0": "2.14"}

_lock = threading.Lock()
_import = importlib.import_module  # the one place the library is imported (tests swap it to fake missing/present)
_status: tuple[bool, str | None] | None = None
_ops: dict[str, bool] = {}


def pairing_hint() -> str:
    pairs = ", ".join(f"{DISTRIBUTION} {v} <-> torch {t}" for v, t in TORCH_PAIRING.items())
    return f"builds are tied to torch versions ({pairs}); this is torch {torch.__version__}"


def installed_version() -> str | None:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def library_status() -> tuple[bool, str | None]:
    """(True, None) once ``fbgemm_gpu.experimental.gen_ai`` imported; else (False, reason). Cached."""
    global _status
    with _lock:
        if _status is None:
            try:
                _import(MODULE)
                _status = (True, None)
            except Exception as e:  # ImportError, or OSError/RuntimeError from a wheel built for another torch
                ver = installed_version()
                _status = (False, f"{DISTRIBUTION} not importable: {type(e).__name__}: {e}"
                                  + (f" (installed {ver}; {pairing_hint()})" if ver else f" ({pairing_hint()})"))
        return _status


def op_available(name: str) -> bool:
    """Is ``torch.ops.fbgemm.<name>`` registered (after the library imported)? Cached."""
    with _lock:
        if name not in _ops:
            try:
                getattr(torch.ops.fbgemm, name)
                _ops[name] = True
            except (AttributeError, RuntimeError):
                _ops[name] = False
        return _ops[name]


def op(name: str):
    """The ``torch.ops.fbgemm.<name>`` op, importing the library on first use. Once the import is
    known to have worked (the kernel's gate ran it), no lock is taken: this is on every call's path,
    and torch.compile cannot trace into a lock."""
    st = _status
    if st is not None and st[0]:
        return getattr(torch.ops.fbgemm, name)
    ok, why = library_status()
    if not ok:
        raise RuntimeError(why)
    return getattr(torch.ops.fbgemm, name)


def reset_caches() -> None:
    """Forget the import result and op lookups (tests that fake the library present or missing)."""
    global _status
    with _lock:
        _status = None
        _ops.clear()


def cuda_gate(platform: "Platform | int | None", ops: tuple[str, ...], *, capabilities: tuple[int, ...] | None = None,
              min_capability: int | None = None, what: str = "") -> tuple[bool, str | None]:
    """The shared ``is_supported``: device kind and capability first (no import on a machine that
    can't run the kernel), then the library, then each op this kernel calls."""
    p = resolve_platform(platform)
    if not p.is_cuda():
        return False, f"needs an NVIDIA GPU (CUDA), platform is {p.kind}"
    cc = p.capability
    if capabilities is not None and cc not in capabilities:
        want = " or ".join(f"sm_{c}" for c in capabilities)
        return False, f"{what or 'this kernel'} needs {want}, have sm_{cc}"
    if min_capability is not None and (cc is None or cc < min_capability):
        return False, f"needs CUDA cc>={min_capability}, have {cc}"
    ok, why = library_status()
    if not ok:
        return False, why
    for name in ops:
        if not op_available(name):
            return False, f"{DISTRIBUTION} {installed_version() or '?'} has no torch.ops.fbgemm.{name}"
    return True, None
