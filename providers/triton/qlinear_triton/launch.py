"""Launching a compiled Triton kernel again without Triton's per-call binder.

``kernel[grid](*args, **kw)`` on a ``triton.jit`` function binds the arguments, specializes every one
of them (dtype, 16-byte alignment, value 1, divisibility by 16), hashes that into a cache key, checks
the globals the kernel used and builds launch metadata: tens of microseconds of Python per launch,
more than the GPU time of a decode GEMV (issue #13 measured 100-120 us of eager wall per call on an
H200 host for 8-35 us kernels). ``FastKernel`` keeps, per call site signature, the compiled kernel the
first launch returned and calls its launcher directly next time.

Its key is at least as fine as Triton's: every tensor's dtype and whether its address is 16-byte
aligned, every integer's "is 1", "divisible by 16" and "fits in int32", every float/bool/None by
kind (run-time arguments passed by keyword too), constexprs and launch options (num_warps,
num_stages) by value, the current device. Two calls with
equal keys get the same specialization from Triton, so reusing its compiled kernel is exact; a call
whose key is new goes through ``kernel[grid]`` (compiling if needed) and is remembered. The Triton
interpreter, and launch hooks (profilers such as proton), always take Triton's own path.
"""

from __future__ import annotations

import inspect

import torch

from .runtime import interpreting

_I32 = (-(2**31), 2**31 - 1)
_Tensor, _Parameter = torch.Tensor, torch.nn.Parameter
_current_device = getattr(torch._C, "_cuda_getDevice", None) or torch.cuda.current_device


def _spec(a):
    t = type(a)
    if t is int:  # the commonest argument first (type() is, not isinstance: bool is an int subclass)
        return int, a == 1, a % 16 == 0, _I32[0] <= a <= _I32[1]
    if t is _Tensor or t is _Parameter or isinstance(a, torch.Tensor):
        return a.dtype, a.data_ptr() % 16 == 0
    if t is bool:
        return bool, a
    if t is float:
        return float
    if a is None:
        return None
    if isinstance(a, int):  # an int subclass (numpy ints are not): by its int value
        return int, a == 1, a % 16 == 0, _I32[0] <= a <= _I32[1]
    return type(a), a  # anything else (a dtype, a constexpr): by value; unhashable -> TypeError -> slow path


def _key_of(args: tuple) -> tuple:
    """``tuple(map(_spec, args))`` with the two common kinds inline: one frame per call instead of
    one per argument (a W4A16 GEMV launch has 20; their frames were ~40% of its host time)."""
    return tuple([(int, a == 1, a % 16 == 0, _I32[0] <= a <= _I32[1]) if type(a) is int else
                  (a.dtype, a.data_ptr() % 16 == 0) if isinstance(a, _Tensor) else _spec(a) for a in args])


def _is_constexpr(annotation) -> bool:
    """A ``tl.constexpr`` parameter annotation (the object, or its text under postponed annotations)."""
    import triton.language as tl

    return annotation is tl.constexpr or (isinstance(annotation, str) and annotation.split(".")[-1] == "constexpr")


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
        # run-time parameters (not tl.constexpr): passed by keyword they are keyed by kind, like
        # positional ones; constexprs and launch options (num_warps, ...) by value
        self._runtime = frozenset(p.name for p in params if not _is_constexpr(p.annotation))
        self._compiled: dict = {}

    def __getitem__(self, grid):
        return lambda *args, **kw: self.launch(grid, args, kw)

    def kw_key(self, kw: dict) -> tuple:
        """The key of a call's keywords. A run-time argument passed by keyword (a tensor, a size) is
        keyed by what Triton specializes on, never by value: a fresh output tensor per call must
        not make every call a new entry (each one missed the cache and kept its tensor alive)."""
        rt = self._runtime
        return tuple((n, _spec(v)) if n in rt else (n, v) for n, v in kw.items())

    def launch(self, grid, args: tuple, kw: dict, kw_key: tuple | None = None):
        """``kw_key``: ``tuple(kw.items())`` kept by a caller whose keywords, values included, never
        change (a launch site: constexprs, launch options, a per-layer constant), saving the key's
        construction per call."""
        knobs = self._knobs
        if _hooked(knobs.launch_enter_hook) or _hooked(knobs.launch_exit_hook):
            return self.fn[grid](*args, **kw)
        device = _current_device()
        try:
            key = (device, _key_of(args), kw_key if kw_key is not None else self.kw_key(kw))
            hit = self._compiled.get(key)
        except TypeError:  # an unhashable argument: no fast path for this call
            return self.fn[grid](*args, **kw)
        if hit is None:
            compiled = self.fn[grid](*args, **kw)
            if compiled is not None:
                self._remember(key, compiled, len(args), kw, kw_key is not None)
            return compiled
        launch, head, tail, tail_names, compiled = hit
        if tail is None:  # run-time values among the keywords: this call's, in parameter order
            defaults = self._defaults
            tail = tuple(kw[n] if n in kw else defaults[n] for n in tail_names)
        g1 = grid[1] if len(grid) > 1 else 1
        g2 = grid[2] if len(grid) > 2 else 1
        launch(grid[0], g1, g2, torch._C._cuda_getCurrentRawStream(device), *head, *args, *tail)
        return compiled

    def _remember(self, key, compiled, n_args: int, kw: dict, site: bool) -> None:
        """Cache what a repeat of this key passes besides its positional arguments. The launcher
        takes every parameter in order (it skips the constexprs itself); at a launch site, or with
        no run-time keyword, the tail (keywords, defaults) is fixed for the key and kept as a tuple."""
        names, defaults = self._names, self._defaults
        tail_names = names[n_args:]
        if any(n not in kw and n not in defaults for n in tail_names):
            return
        # a site's keywords never change (its key holds them by value); elsewhere run-time keywords
        # (keyed by kind) take this call's values at each launch
        fixed = site or not any(n in self._runtime for n in kw)
        tail = tuple(kw[n] if n in kw else defaults[n] for n in tail_names) if fixed else None
        run = compiled.run
        c_launch = getattr(run, "launch", None)
        if (c_launch is not None and getattr(run, "global_scratch_size", 1) == 0
                and getattr(run, "profile_scratch_size", 1) == 0 and hasattr(run, "launch_pdl")):
            # the C launcher itself: CudaLauncher.__call__ only adds scratch buffers, none here
            head = (compiled.function, run.launch_cooperative_grid, run.launch_pdl, None, None,
                    compiled.packed_metadata, None, None, None)
            self._compiled[key] = (c_launch, head, tail, tail_names, compiled)
        else:
            self._compiled[key] = (run, (compiled.function, compiled.packed_metadata, None, None, None), tail,
                                   tail_names, compiled)


def launch_site(kernel, grid, args: tuple, kw: dict, kw_key: tuple) -> None:
    """A launch site's call: ``FastKernel.launch`` with the key the site keeps, or Triton's own launch
    where the kernel is not wrapped (the interpreter)."""
    if isinstance(kernel, FastKernel):
        kernel.launch(grid, args, kw, kw_key)
    else:
        kernel[grid](*args, **kw)


def fast_kernels(namespace: dict) -> None:
    """Wrap every top-level ``*_kernel`` of a kernels module (``namespace``: its globals()) in a
    FastKernel. Helpers called from kernels keep their names unwrapped (Triton inlines them)."""
    import triton

    if interpreting():
        return
    for name, obj in list(namespace.items()):
        if name.endswith("_kernel") and isinstance(obj, triton.runtime.jit.JITFunction):
            namespace[name] = FastKernel(obj)
