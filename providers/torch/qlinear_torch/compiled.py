"""``torch.compile`` for the small elementwise chains around the GEMMs, optional and fallback-safe.

Activation quantization (amax, divide, round, clamp, cast) and the INT8/FP8 epilogues (scale,
zero-point correction, bias, cast) are 4-8 eager ops, each a full pass over the tensor (and, on
CUDA, a launch). Compiled, each chain is one or two fused loops. ``QLINEAR_TORCH_COMPILE``:
``1``/``auto`` (default) compile, ``0`` stay eager. Compilation happens at
``process_weights_after_loading`` (``warmup``), not on the hot path; any failure (no C++
compiler, an inductor error) switches that function to eager for good and is recorded in
``STATUS`` (shown by ``qlinear_torch.kernels.compile_report()`` / doctor).
"""

from __future__ import annotations

import os
import re
import threading
import types
from typing import Callable

import torch

# On CPU a compiled call costs ~15-20 us of guard/dispatch overhead, more than the eager chain
# at small M (measured here, 1 thread, K=4096: int8 sym quant M=1 eager 17 us vs compiled 34 us;
# M=16 59 vs 61; M=128 2373 vs 286). So CPU rows <= this run eager, larger ones compiled.
# CUDA runs the eager chain. A compiled call there cost ~100-200 us of host time per eager call
# (H200: the per-tensor FP8 layer's call 195 us for a 19 us graph), and inside a CUDA-graph
# capture (torch.compile's reduce-overhead recording) a guard miss recompiles, which synchronizes:
# "operation not permitted when stream is capturing" (H200, INT8 and FP8 layers). Under
# torch.compile the caller's graph traces ``fn`` and fuses it anyway.
CPU_EAGER_MAX_M = 16

STATUS: dict[str, str] = {}  # function variant -> "compiled" | "eager: <why>"
_lock = threading.Lock()


def compile_enabled() -> bool:
    v = os.environ.get("QLINEAR_TORCH_COMPILE", "auto").strip().lower()
    return v not in ("0", "false", "off", "no")


class MaybeCompiled:
    """Calls the torch.compile'd ``fn`` when enabled and working, else ``fn`` itself."""

    def __init__(self, fn: Callable, name: str):
        self.fn = fn
        self.name = name
        self.compiled = None
        self.failed: str | None = None

    def __call__(self, *args):
        x = args[0]
        if (self.failed is not None or not compile_enabled() or torch.compiler.is_compiling()
                or x.device.type == "cuda" or (x.device.type == "cpu" and x.shape[0] <= CPU_EAGER_MAX_M)):
            return self.fn(*args)
        try:
            if self.compiled is None:
                # dynamic=True: one graph for every M and K instead of a recompile per batch size
                self.compiled = torch.compile(self.fn, dynamic=True, fullgraph=True)
            # inference only: a fixed grad mode keeps dynamo from recompiling on grad-mode changes
            with torch.no_grad():
                out = self.compiled(*args)
            STATUS.setdefault(self.name, "compiled")
            return out
        except Exception as e:  # noqa: BLE001 - stay correct: eager from now on, and say why
            msg = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
            self.failed = f"{type(e).__name__}: {msg}"
            STATUS[self.name] = f"eager: torch.compile failed ({self.failed})"
            return self.fn(*args)


_CACHE: dict[tuple, MaybeCompiled] = {}


def get(fn: Callable, variant: tuple = ()) -> MaybeCompiled:
    """One compiled wrapper per (function, variant), shared by every layer: layers of the same
    kind reuse one graph (dynamic shapes) instead of each tracing its own."""
    key = (fn, variant)
    w = _CACHE.get(key)
    if w is None:
        with _lock:
            w = _CACHE.get(key)
            if w is None:
                name = fn.__name__ + (f"[{','.join(map(str, variant))}]" if variant else "")
                w = _CACHE[key] = MaybeCompiled(_own_code(fn, name), name)
    return w


def _own_code(fn: Callable, name: str) -> Callable:
    """A copy of ``fn`` with its own code object. Dynamo keys its graph cache (and its recompile
    limit of 8) on the code object, so variants sharing one would evict each other and fall back
    to eager; a copy per variant keeps each variant's graphs apart."""
    code = fn.__code__.replace(co_name=re.sub(r"\W", "_", name))
    g = types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)
    g.__kwdefaults__ = fn.__kwdefaults__
    return g


def warmup(run: Callable[[int], object]) -> None:
    """Call ``run(m)`` for M = 1 and 17 (size 1 is its own specialization under dynamic shapes; 17
    is above CPU_EAGER_MAX_M) so compilation happens at load time. Errors propagate: a kernel that cannot run should fail here."""
    if not compile_enabled():
        return
    with torch.no_grad():
        for m in (1, 17):
            run(m)
