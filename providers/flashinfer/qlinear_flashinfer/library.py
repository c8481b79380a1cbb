"""Finding flashinfer: one cached import, its per-backend capability tables, and nothing else.

``import flashinfer`` compiles nothing; FlashInfer JIT-compiles each kernel with nvcc the first
time it is CALLED (measured on the H100: ``bmm_fp8`` ~34 s, ``fp8_blockscale_gemm_sm90`` ~100 s;
cached under ~/.cache/flashinfer afterwards). So this module imports flashinfer only from a
kernel's ``is_supported`` after the platform checks passed, and no kernel calls a flashinfer
function before its first ``apply``: import and selection never trigger a build.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading

from qlinear.platform import Platform, resolve_platform

DISTRIBUTION = "flashinfer-python"
MODULE = "flashinfer"
JIT_NOTE = "JIT-compiles on first use (nvcc; ~34 s for bmm_fp8, ~100 s for fp8_blockscale_gemm_sm90 on an H100)"

_lock = threading.Lock()
_import = importlib.import_module  # the one place the library is imported (tests swap it to fake missing/present)
_status: tuple[object | None, str | None] | None = None


def installed_version() -> str | None:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def library() -> tuple[object | None, str | None]:
    """(flashinfer module, None) or (None, "flashinfer not importable: <error>"). Cached."""
    global _status
    with _lock:
        if _status is None:
            try:
                _status = (_import(MODULE), None)
            except Exception as e:  # ImportError, or a CUDA/torch mismatch raised while importing
                _status = (None, f"flashinfer not importable: {type(e).__name__}: {e}")
        return _status


def module_available(name: str) -> bool:
    """Is an optional Python dependency importable (``cudnn`` for the cuDNN backend, ``cutlass`` for CuTe-DSL)?"""
    try:
        _import(name)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not usable"
        return False


def fn(name: str):
    """``flashinfer.<name>`` (or ``flashinfer.gemm.<name>``), importing the library on first use."""
    mod, why = library()
    if mod is None:
        raise RuntimeError(why)
    f = getattr(mod, name, None)
    if f is None:  # e.g. fp8_blockscale_gemm_sm90 lives in flashinfer.gemm only
        try:
            f = getattr(_import(f"{MODULE}.gemm"), name, None)
        except Exception:  # noqa: BLE001
            f = None
    if f is None:
        raise RuntimeError(f"flashinfer {installed_version() or '?'} has no {name}")
    return f


def reset_caches() -> None:
    """Forget the import result (tests that fake the library present or missing)."""
    global _status
    with _lock:
        _status = None


def cuda_gate(platform: "Platform | int | None", *, capabilities=None, min_capability: int | None = None,
              function: str, backend: str | None = None, needs: tuple[str, ...] = (), what: str = "") -> tuple[bool, str | None]:
    """The shared ``is_supported``: CUDA and capability first (nothing imported on a machine that can't
    run the kernel), then the library, then the function (and backend, where flashinfer's own
    ``is_backend_supported(backend, cc)`` table exists, it must agree), then optional modules."""
    p = resolve_platform(platform)
    label = what or (f"flashinfer {function}" + (f"(backend={backend!r})" if backend else ""))
    if not p.is_cuda():
        return False, f"needs an NVIDIA GPU (CUDA), platform is {p.kind}"
    cc = p.capability
    if capabilities is not None and cc not in capabilities:
        return False, f"{label} needs {' or '.join(f'sm_{c}' for c in capabilities)}, have sm_{cc}"
    if min_capability is not None and (cc is None or cc < min_capability):
        return False, f"{label} needs CUDA cc>={min_capability}, have {cc}"
    mod, why = library()
    if mod is None:
        return False, why
    try:
        f = fn(function)
    except RuntimeError as e:
        return False, str(e)
    check = getattr(f, "is_backend_supported", None)
    if backend is not None and callable(check):
        try:
            if not check(backend):
                return False, f"flashinfer {installed_version() or '?'} {function} has no backend {backend!r}"
            if not check(backend, cc):
                return False, f"flashinfer's {function} backend {backend!r} does not support sm_{cc}"
        except Exception as e:  # noqa: BLE001 - a library check that raises is a "no", with its reason
            return False, f"flashinfer {function}.is_backend_supported raised {type(e).__name__}: {e}"
    for m in needs:
        if not module_available(m):
            return False, f"{label} needs the Python module {m!r}, which is not importable"
    return True, None
