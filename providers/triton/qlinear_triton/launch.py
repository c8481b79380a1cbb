"""Launching a compiled Triton kernel again without Triton's per-call binder.

``kernel[grid](*args, **kw)`` on a ``triton.jit`` function binds the arguments, specializes every one
of them (dtype, 16-byte alignment, value 1, divisibility by 16), hashes that into a cache key, checks
the globals the kernel used and builds launch metadata: tens of microseconds of Python per launch,
more than the GPU time of a decode GEMV (issue #13 measured 100-120 us of eager wall per call on an
H200 host for 8-35 us kernels). ``FastKernel`` keeps, per call site signature, the compiled kernel the
first launch returned and calls its launcher directly next time.

Its key is at least as fine as Triton's: every tensor's dtype and whether its address is 16-byte
aligned, every integer's "is 1", "divisible by 16" and "fits in int32", every float/bool/None by
kind, every keyword (constexprs, num_warps, num_stages) by value, the current device. Two calls with
equal keys get the same specialization from Triton, so reusing its compiled kernel is exact; a call
whose key is new goes through ``kernel[grid]`` (compiling if needed) and is remembered. The Triton
interpreter, and launch hooks (profilers such as proton), always take Triton's own path.
"""

from __future__ import annotations

import inspect

import torch

from .runtime import interpreting

_I32 = (-(2**31), 2**31 - 1)


def _spec(a):
    if isinstance(a, torch.Tensor):
        return a.dtype, a.data_ptr() % 16 == 0
    if isinstance(a, bool):
        return bool, a
    if isinstance(a, int):
        return int, a == 1, a % 16 == 0, _I32[0] <= a <= _I32[1]
    if isinstance(a, float):
        return float
    if a is None:
        return None
    return type(a), a  # anything else (a dtype, a constexpr): by value; unhashable -> TypeError -> slow path


def _hooked(hook) -> bool:
    """A launch hook is installed (triton 3.6 keeps an always-present HookChain; older ones None)."""
    return hook is not None and bool(getattr(hook, "calls", True))


class FastKernel:
    """A ``triton.jit`` kernel launched as ``kernel[grid](*args, **kw)``; repeat launches skip the binder."""

    def __init__(self, fn) -> None:
        import triton

        self.fn = fn
        self._knobs = triton.knobs.runtime
        params = list(inspect.signature(fn.fn).parameters.values())
        self._names = tuple(p.name for p in params)
        self._defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
        self._compiled: dict = {}

    def __getitem__(self, grid):
        return lambda *args, **kw: self.launch(grid, args, kw)

    def launch(self, grid, args: tuple, kw: dict):
        knobs = self._knobs
        if _hooked(knobs.launch_enter_hook) or _hooked(knobs.launch_exit_hook):
            return self.fn[grid](*args, **kw)
        device = torch.cuda.current_device()
        try:
            key = (device, tuple(map(_spec, args)), tuple(kw.items()))
            hit = self._compiled.get(key)
        except TypeError:  # an unhashable argument: no fast path for this call
            return self.fn[grid](*args, **kw)
        if hit is None:
            compiled = self.fn[grid](*args, **kw)
            if compiled is not None:
                names, defaults = self._names, self._defaults
                # the launcher takes every parameter in order (it skips the constexprs itself)
                tail = names[len(args):]
                missing = [n for n in tail if n not in kw and n not in defaults]
                if not missing:
                    self._compiled[key] = (compiled, tail)
            return compiled
        compiled, tail = hit
        full = args + tuple(kw[n] if n in kw else self._defaults[n] for n in tail)
        g1 = grid[1] if len(grid) > 1 else 1
        g2 = grid[2] if len(grid) > 2 else 1
        compiled.run(grid[0], g1, g2, torch._C._cuda_getCurrentRawStream(device), compiled.function,
                     compiled.packed_metadata, None, None, None, *full)
        return compiled


def fast_kernels(namespace: dict) -> None:
    """Wrap every top-level ``*_kernel`` of a kernels module (``namespace``: its globals()) in a
    FastKernel. Helpers called from kernels keep their names unwrapped (Triton inlines them)."""
    import triton

    if interpreting():
        return
    for name, obj in list(namespace.items()):
        if name.endswith("_kernel") and isinstance(obj, triton.runtime.jit.JITFunction):
            namespace[name] = FastKernel(obj)
