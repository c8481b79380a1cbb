"""Finding triton (lazily, once) and making its CPU interpreter usable for our tests.

``triton_import_error()`` imports triton the first time it is asked and caches the outcome, so
discovering the provider never imports triton. When ``TRITON_INTERPRET=1`` (kernels run on CPU
tensors through triton's NumPy interpreter, which is how this provider is tested without a GPU),
``load()`` patches three interpreter defects found with triton 3.6 + NumPy 2.4 (see
``_patch_interpreter``); compiled GPU runs are never touched.
"""

from __future__ import annotations

import functools
import os


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def inline_ptx() -> bool:
    """Kernels may take their inline-PTX paths: compiled (not interpreted), for an NVIDIA GPU (not ROCm)."""
    import torch

    return not interpreting() and getattr(torch.version, "hip", None) is None


@functools.lru_cache(maxsize=1)
def triton_import_error() -> str | None:
    """None if ``import triton`` works, else the error text."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any failure means "not usable", and we say why
        return f"{type(e).__name__}: {e}"
    return None


@functools.lru_cache(maxsize=1)
def load():
    """Import triton for kernel code; apply the interpreter fixes when interpreting."""
    import triton

    if interpreting():
        _patch_interpreter()
    return triton


def _patch_interpreter() -> None:
    """Fix two triton-3.6 interpreter defects (interpreter mode only).

    1. A runtime scalar used as a Python index (``range(0, K, BK)``) calls ``int()`` on a
       1-element NumPy array, which NumPy >= 2.4 refuses.
    2. ``tl.dot`` on bfloat16 operands multiplies their raw uint16 storage; widen them to fp32.
    3. Down-casts fp32 -> bf16 truncate and fp32 -> fp8 e4m3 round without carrying a mantissa
       overflow into the exponent (124.8 -> 64), unlike the GPU's round-to-nearest-even. Our
       kernels' numerics are defined by the GPU conversion, so route those casts through torch,
       which rounds to nearest even like the hardware.
    """
    import numpy as np
    import torch
    import triton.language as tl
    import triton.runtime.interpreter as interp

    if getattr(interp, "_qlinear_patched", False):
        return
    orig_patch_tensor = interp._patch_lang_tensor

    def patch_tensor(tensor, scope):
        orig_patch_tensor(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(np.asarray(self.handle.data).reshape(-1)[0]))

    interp._patch_lang_tensor = patch_tensor

    orig_convert = interp._convert_float
    targets = {tl.bfloat16: (torch.bfloat16, np.uint16), tl.float16: (torch.float16, np.uint16),
               tl.float8e4nv: (torch.float8_e4m3fn, np.uint8)}

    def convert(data, src_dtype, dst_dtype, rounding_mode):
        if src_dtype == tl.float32 and dst_dtype in targets:
            tdt, npdt = targets[dst_dtype]
            arr = np.ascontiguousarray(np.asarray(data)).view(np.float32)
            out = torch.from_numpy(arr.copy()).to(tdt)
            return out.view(torch.uint8 if npdt == np.uint8 else torch.int16).numpy().view(npdt)
        return orig_convert(data, src_dtype, dst_dtype, rounding_mode)

    interp._convert_float = convert

    orig_dot = interp.InterpreterBuilder.create_dot

    def create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
        def widen(h):
            if h.dtype.scalar == tl.bfloat16:
                f32 = (np.asarray(h.data).astype(np.uint32) << 16).view(np.float32)
                return interp.TensorHandle(f32, tl.float32)
            return h

        return orig_dot(self, widen(a), widen(b), d, input_precision, max_num_imprecise_acc)

    interp.InterpreterBuilder.create_dot = create_dot
    interp._qlinear_patched = True
