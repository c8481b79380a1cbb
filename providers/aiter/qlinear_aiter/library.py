"""Finding aiter (the ``amd-aiter`` distribution, ``import aiter``): one cached import, the gfx-arch
gate, and the Python entry points this provider calls.

``aiter`` is imported only here, only from a kernel's ``is_supported`` after the platform checks
(ROCm device, a gfx arch the kernel has code for), or at first use; never when this provider is
imported or discovered. aiter JIT-builds its HIP/CK modules on first call of each op, so the first
apply of each kernel on a fresh machine is slow (minutes); later runs reuse aiter's build cache.

The entry points used (names and argument order read in aiter 0.1.7's ``aiter/ops/gemm_op_a8w8.py``
and ``aiter/ops/gradlib.py``; the wheel is pure Python and can be inspected without a device):

* ``gemm_a8w8_CK(XQ [M,K], WQ [N,K], x_scale [M,1] f32, w_scale [1,N] f32, bias=None, dtype=bf16, splitK=None)``
  int8 or fp8 operands, per-token x per-channel scales applied in the CK epilogue, bias of the
  output dtype.
* ``gemm_a8w8_bpreshuffle(XQ, WQ_shuffled, x_scale, w_scale, bias=None, dtype=bf16, check=False)``
  fp8 only, no bias, weight in ``shuffle_weight(w, layout=(16, 16))`` order (``layouts.py``).
* ``gemm_a8w8_blockscale(XQ [M,K], WQ [N,K], x_scale [M, K/128] f32, w_scale [N/128, K/128] f32, dtype=bf16)``
* ``hipb_mm(mat1 [M,K], mat2 [K,N], solution_index, bias=None, out_dtype=None, scaleA=None, scaleB=None,
  scaleOut=None)`` hipBLASLt; ``solution_index=-1`` lets hipBLASLt's heuristic choose;
  ``hipb_create_extension()`` once per process before the first call.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading

from qlinear.platform import Platform, resolve_platform

DISTRIBUTION = "amd-aiter"
MODULE = "aiter"
MI300 = "gfx942"  # MI300X / MI300A / MI325X: FP8 is e4m3fnuz
MI350 = "gfx950"  # MI350X / MI355X: FP8 is OCP e4m3fn, plus MXFP4
ARCH_NAMES = {MI300: "MI300 (gfx942)", MI350: "MI350/MI355 (gfx950)"}

# The leading parameters this provider passes positionally, per aiter entry point (and the module of
# aiter's source that defines it). tests/providers/aiter checks them against an installed amd-aiter.
SIGNATURES = {
    "gemm_a8w8_CK": ("aiter/ops/gemm_op_a8w8.py", ("XQ", "WQ", "x_scale", "w_scale", "bias", "dtype")),
    "gemm_a8w8_bpreshuffle": ("aiter/ops/gemm_op_a8w8.py", ("XQ", "WQ", "x_scale", "w_scale", "bias", "dtype")),
    "gemm_a8w8_blockscale": ("aiter/ops/gemm_op_a8w8.py", ("XQ", "WQ", "x_scale", "w_scale", "dtype")),
    "hipb_mm": ("aiter/ops/gradlib.py", ("mat1", "mat2", "solution_index", "bias", "out_dtype", "scaleA", "scaleB", "scaleOut")),
    "hipb_create_extension": ("aiter/ops/gradlib.py", ()),
    "gemm_afp4wfp4": ("aiter/ops/triton/gemm_afp4wfp4.py", ("x", "w", "x_scales", "w_scales", "dtype", "y")),
}
TRITON_FP4 = "aiter.ops.triton.gemm_afp4wfp4"  # aiter's Triton MXFP4 GEMM (gfx950), a submodule import

_lock = threading.Lock()
_import = importlib.import_module  # the one place the library is imported (tests swap it to fake missing/present)
_status: tuple[bool, str | None] | None = None
_module = None
_submodules: dict[str, object] = {}
_hipb_ready = False


def installed_version() -> str | None:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def library_status() -> tuple[bool, str | None]:
    """(True, None) once ``import aiter`` worked; else (False, reason). Cached."""
    global _status, _module
    with _lock:
        if _status is None:
            try:
                _module = _import(MODULE)
                _status = (True, None)
            except Exception as e:  # ImportError, or a JIT/HIP error raised while aiter initialises
                ver = installed_version()
                _status = (False, f"{DISTRIBUTION} not importable: {type(e).__name__}: {e}"
                                  + (f" (installed {ver})" if ver else " (pip install amd-aiter, on ROCm)"))
        return _status


def has(name: str) -> bool:
    """Does the imported aiter expose ``aiter.<name>``?"""
    ok, _ = library_status()
    return ok and hasattr(_module, name)


def fn(name: str):
    """``aiter.<name>``, importing aiter on first use."""
    ok, why = library_status()
    if not ok:
        raise RuntimeError(why)
    return getattr(_module, name)


def submodule(name: str):
    """An aiter submodule (``aiter.ops.triton...``), imported once after ``import aiter`` worked;
    raises with the reason otherwise."""
    ok, why = library_status()
    if not ok:
        raise RuntimeError(why)
    with _lock:
        if name not in _submodules:
            _submodules[name] = _import(name)
        return _submodules[name]


def submodule_status(name: str, attr: str) -> tuple[bool, str | None]:
    try:
        mod = submodule(name)
    except Exception as e:  # noqa: BLE001 - the import error is the reason shown
        return False, f"{name} not importable: {type(e).__name__}: {e}"
    return (True, None) if hasattr(mod, attr) else (False, f"{DISTRIBUTION} {installed_version() or '?'} has no {name}.{attr}")


def hipb_mm():
    """``aiter.hipb_mm``, after ``hipb_create_extension()`` ran once in this process."""
    global _hipb_ready
    f = fn("hipb_mm")
    with _lock:
        if not _hipb_ready:
            _module.hipb_create_extension()
            _hipb_ready = True
    return f


def reset_caches() -> None:
    """Forget the import result (tests that fake the library present or missing)."""
    global _status, _module, _hipb_ready
    with _lock:
        _status, _module, _hipb_ready = None, None, False
        _submodules.clear()


def rocm_gate(platform: "Platform | int | None", archs: tuple[str, ...], names: tuple[str, ...],
              what: str = "this kernel") -> tuple[bool, str | None]:
    """The shared ``is_supported``: ROCm first, then the gfx arch (no import on a machine that can't
    run the kernel), then ``import aiter``, then each entry point this kernel calls."""
    p = resolve_platform(platform)
    if not p.is_rocm():
        return False, f"needs an AMD Instinct GPU (ROCm), platform is {p.kind}"
    arch = getattr(p, "gfx_arch", "") or ""
    if arch not in archs:
        want = " or ".join(ARCH_NAMES.get(a, a) for a in archs)
        return False, f"{what} has code for {want}, this GPU is {arch or 'an unknown gfx arch'}"
    ok, why = library_status()
    if not ok:
        return False, f"{why}; kernel unverified on hardware"
    for name in names:
        if not has(name):
            return False, f"{DISTRIBUTION} {installed_version() or '?'} has no aiter.{name}"
    return True, None


def fp8_dtype_for(platform: "Platform | None" = None):
    """The FP8 dtype the GPU's matrix cores read: e4m3fnuz on MI300 (gfx942), OCP e4m3fn from gfx950."""
    import torch

    p = resolve_platform(platform)
    return torch.float8_e4m3fnuz if getattr(p, "gfx_arch", "") == MI300 else torch.float8_e4m3fn


def out16_reason(c) -> str | None:
    """Why a config's output dtype (its own, else its activation dtype) is not one aiter's GEMMs
    write (bf16 / fp16), or None."""
    import torch

    from qlinear.families import out_dtype

    out = out_dtype(c)
    return None if out in (torch.bfloat16, torch.float16) else f"output dtype {out} is not bf16/fp16"
