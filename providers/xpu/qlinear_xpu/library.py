"""What the XPU kernels need: an Intel GPU (platform kind ``xpu``, which detection reports only when
``torch.xpu.is_available()``), the torch ops registered for it, and — for one kernel — the
vllm-xpu-kernels package, whose ``import vllm_xpu_kernels._xpu_C`` registers ``torch.ops._xpu_C``.

Op schemas (read, not run): torch 2.13 ``aten::_weight_int4pack_mm_with_scales_and_zeros(Tensor self,
Tensor mat2, int qGroupSize, Tensor qScale, Tensor qZeros)``, ``aten::_convert_weight_to_int4pack(Tensor
self, int innerKTiles)``, ``aten::_scaled_mm(...)``; vllm-xpu-kernels 0.1.16 ``_xpu_C::fp8_gemm`` and
``_xpu_C::int4_gemm_w4a16`` (``FP8_GEMM_SCHEMA`` / ``INT4_GEMM_W4A16_SCHEMA`` below, found in the op
registry strings of its ``_xpu_C.abi3.so``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading

import torch

from qlinear.platform import Platform, resolve_platform

KERNELS_DISTRIBUTION = "vllm-xpu-kernels"
KERNELS_MODULE = "vllm_xpu_kernels._xpu_C"
# The schema this provider calls, as registered by vllm-xpu-kernels 0.1.16's _xpu_C.abi3.so (the test
# suite looks for it in an installed wheel's library; it is read without loading the library).
FP8_GEMM_SCHEMA = ("fp8_gemm(Tensor A, Tensor B, ScalarType? out_dtype, Tensor? A_scale_, Tensor? B_scale_, "
                   "Tensor? bias_) -> Tensor")
INT4_GEMM_W4A16_SCHEMA = ("int4_gemm_w4a16(Tensor A, Tensor B, Tensor? bias, Tensor B_scale, Tensor B_zp, "
                          "int group_size, Tensor? g_idx) -> Tensor")

_lock = threading.Lock()
_import = importlib.import_module  # the one place vllm-xpu-kernels is imported (tests swap it)
_status: tuple[bool, str | None] | None = None


def aten(name: str):
    """``torch.ops.aten.<name>`` (one indirection, so CPU tests can stand in for the XPU kernels)."""
    return getattr(torch.ops.aten, name)


def xpu_gate(platform: "Platform | int | None", aten_ops: tuple[str, ...] = ()) -> tuple[bool, str | None]:
    p = resolve_platform(platform)
    if not p.is_xpu():
        return False, f"needs an Intel GPU (XPU), platform is {p.kind}"
    for name in aten_ops:
        if not hasattr(torch.ops.aten, name):
            return False, f"torch {torch.__version__} has no aten::{name}"
    return True, None


def kernels_version() -> str | None:
    try:
        return importlib.metadata.version(KERNELS_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def kernels_status() -> tuple[bool, str | None]:
    """(True, None) once ``vllm_xpu_kernels._xpu_C`` imported; else (False, reason). Cached."""
    global _status
    with _lock:
        if _status is None:
            try:
                _import(KERNELS_MODULE)
                _status = (True, None)
            except Exception as e:  # ImportError, or an OSError from a wheel built for another torch / oneAPI
                ver = kernels_version()
                _status = (False, f"{KERNELS_DISTRIBUTION} not importable: {type(e).__name__}: {e}"
                                  + (f" (installed {ver})" if ver else " (pip install vllm-xpu-kernels)"))
        return _status


def kernels_gate(platform: "Platform | int | None") -> tuple[bool, str | None]:
    """The gate of the kernels from vllm-xpu-kernels: an XPU, and the package importable."""
    ok, why = xpu_gate(platform)
    if not ok:
        return ok, why
    ok, why = kernels_status()
    return (True, None) if ok else (False, f"{why}; kernel unverified on hardware")


def xpu_op(name: str):
    """``torch.ops._xpu_C.<name>``, importing vllm-xpu-kernels on first use."""
    ok, why = kernels_status()
    if not ok:
        raise RuntimeError(why)
    return getattr(torch.ops._xpu_C, name)


def reset_caches() -> None:
    global _status
    with _lock:
        _status = None
