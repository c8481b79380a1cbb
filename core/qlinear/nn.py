"""``QuantLinear``: an ``nn.Module`` that owns a quantized layer's parameters, picks its kernel and runs it.

    layer = QuantLinear.from_linear(torch.nn.Linear(4096, 4096).bfloat16(), "w4a16-g128")
    y = layer(x)                      # the selected kernel's GEMM
    print(layer.selection.explain())  # why that kernel

Schemes (``SCHEMES`` lists them; ``scheme_config``, the one grammar in ``qlinear.families.schemes``,
turns one into a layer config): ``w4a16[-gG|-ch][-actorder]`` GPTQ uint4b8, ``w8a16[-gG|-ch]`` GPTQ
uint8b128, ``awq[-gG]`` uint4 + zero points (``w4a16-asym``, ``w8a16-asym``: uint4 / uint8 + zero points),
``int8-dynamic[-asym]``, ``int8-static[-asym]`` (per-channel int8 weights), ``fp8-tensor`` (per-tensor
weight, static per-tensor activation), ``fp8-dynamic`` (per-channel weight, dynamic per-token
activation), ``fp8-block`` (128x128 weight blocks, 1x128 activation groups), ``nvfp4``, ``mxfp4``, ``mxfp8``.
"""

from __future__ import annotations

import bisect
import copy

import torch

from .config import LayerConfig
from .families import act_dtype, family_of
from .families.schemes import SCHEMES, scheme_config
from .kernel import LinearKernel, check_input, propagate_non_finite, saturates_non_finite
from .layers import make_layer, quantize_layer_params
from .selection import Selection, select
from .settings import get_settings

# QLINEAR_AUTOTUNE=1 with a table: a kernel of another weight layout takes an M only when it is more
# than this much faster than the best kernel of the layout the layer has (a second layout is a second
# weight copy). On the H200 the cutlass W4A16 decode kernel is within 0-10 % of marlin's at M <= 16
# on the Llama-3-8B shapes (docs/gpu-results.md, tenth lease): not worth twice the weight.
EXTRA_LAYOUT_MIN_GAIN = 0.10

__all__ = ["QuantLinear", "SCHEMES", "scheme_config"]


class QuantLinear(torch.nn.Module):
    """A quantized linear layer: parameters in the engine (vLLM) layout + the kernel chosen for them."""

    def __init__(self, config: LayerConfig, params: dict[str, torch.Tensor], bias: torch.Tensor | None = None,
                 kernel: type[LinearKernel] | str | None = None, regime: str | None = None, *,
                 keep_loaded_params: bool = False) -> None:
        """``regime``: the M range this layer will mostly see (``decode`` M <= 16, ``prefill``
        M >= 128, ``mixed``; default ``QLINEAR_REGIME`` or mixed). Where a measured table applies it
        picks the kernel fastest over that range; kernels sharing its weight layout then take the M
        they are fastest at, at call time. ``keep_loaded_params``: keep the as-loaded tensors (for
        ``qlinear.parallel`` to shard later)."""
        super().__init__()
        self.config = config
        # the as-loaded tensors, for qlinear.parallel to shard later (kernels re-lay the Parameters)
        self.loaded_params = dict(params) if keep_loaded_params else None
        make_layer(config, params, module=self)
        self.bias = torch.nn.Parameter(bias.detach(), requires_grad=False) if bias is not None else None
        # selection looks at where the weights live: a CPU layer on a GPU machine gets CPU kernels
        device = next(iter(params.values())).device if params else None
        force = [kernel] if kernel is not None else None
        self.selection: Selection = select(config, force=force, regime=regime, device=device,
                                           raise_on_failure=kernel is None)
        if kernel is not None:
            _check_requested(kernel, self.selection)
        chosen = self.selection.kernel
        self.dispatch = None
        autotune = get_settings().autotune and kernel is None
        viable = (select(config, evaluate_all=True, device=device).viable
                  if autotune and self.selection.table is None else [])
        if autotune and self.selection.table is not None:  # opted in: the table's per-M winners, any layout
            self._table_dispatch(config, params, chosen)
        elif len(viable) > 1:  # QLINEAR_AUTOTUNE=1 and no table: time the usable kernels per M bucket
            from .autotune import tune

            self.dispatch, self.autotune_winners = tune(config, params, viable)
            self._layers = torch.nn.ModuleList(layer for _, layer in self.dispatch.entries)
            self.kernel = self.dispatch.entries[0][0]
            # the winners run on their own re-laid copies: the as-loaded parameters are dead weight
            for name in list(params):
                delattr(self, name)
        else:
            self.kernel = chosen.create(config)
            self.kernel.process_weights_after_loading(self)
            if len(self.selection.plan) > 1:  # a table's per-M choice among kernels of one weight layout
                made = {chosen: self.kernel}
                for _, cls in self.selection.plan:
                    if cls not in made:
                        made[cls] = cls.create(config)
                        made[cls].attach_shared(self)
                self.dispatch = _PerM([hi for hi, _ in self.selection.plan],
                                      [(made[cls], self) for _, cls in self.selection.plan])
        self._freeze_call_facts()
        from . import ops

        self._handle = ops.register(self)

    def _table_dispatch(self, config: LayerConfig, params: dict[str, torch.Tensor], chosen) -> None:
        """QLINEAR_AUTOTUNE=1 with a table: each M goes to the table's fastest usable kernel at the
        nearest measured M whatever its layout, unless a kernel of the chosen kernel's layout is within
        EXTRA_LAYOUT_MIN_GAIN of it; each extra layout is one more weight copy (the opt-in), kernels
        of one layout share theirs. Nothing is timed."""
        from .tables import per_m_plan

        by_name = {k.full_name(): k for k in self.selection.viable}
        layout_of = lambda c: getattr(c, "weight_layout", None) or c  # noqa: E731 (no word: a layout of its own)
        own = [n for n, c in by_name.items() if layout_of(c) == layout_of(chosen)]
        plan = [(hi, by_name[n]) for hi, n in per_m_plan(self.selection.table.per_m, list(by_name), chosen.full_name(),
                                                          keep=own, min_gain=EXTRA_LAYOUT_MIN_GAIN)]
        order = list(dict.fromkeys([chosen] + [c for _, c in plan]))
        layout = {c: layout_of(c) for c in order}
        owners: dict[object, tuple[type, torch.nn.Module]] = {}  # layout -> (kernel that re-lays it, its layer)
        for cls in order:  # copies are cloned before any kernel re-lays the as-loaded parameters
            if layout[cls] not in owners:
                owners[layout[cls]] = (cls, self if cls is chosen else
                                       make_layer(config, {k: v.detach().clone() for k, v in params.items()}))
        made: dict[type, LinearKernel] = {}
        for cls in order:
            made[cls] = cls.create(config)
            owner, layer = owners[layout[cls]]
            if owner is cls:
                made[cls].process_weights_after_loading(layer)
            else:
                made[cls].attach_shared(layer)
        copies = [layer for owner, layer in owners.values() if layer is not self]
        self.kernel = made[chosen]
        self._layers = torch.nn.ModuleList(copies)
        self.selection.plan = plan
        self.selection.table.plan = [(hi, c.full_name()) for hi, c in plan]
        self.dispatch = _PerM([hi for hi, _ in plan], [(made[c], owners[layout[c]][1]) for _, c in plan])

    # ---- the call path: static facts are settled once, here, not per call ------------------
    def _freeze_call_facts(self) -> None:
        n, k = self.config.shape_nk
        self.in_features, self.out_features = k, n
        fam = family_of(self.config)
        self.out_dtype = getattr(self.config, fam.out_field)  # None: the activation's dtype
        act = act_dtype(self.config)
        fp8_x = fam.takes_fp8_input  # FP8 kernels also take an already-quantized x
        self._x_dtypes = (act, torch.float8_e4m3fn) if fp8_x else (act,)
        # weight-only kernels of a W4A4 format (marlin / triton NVFP4) never quantize x: nothing to saturate
        kernels = [self.kernel] + ([k for k, _ in self.dispatch.entries] if self.dispatch is not None else [])
        self._saturates = saturates_non_finite(self.config) and any(k.quantizes_activation for k in kernels)
        p = next(iter(self.parameters()), None)
        self._device = p.device if p is not None else None
        check_input(self.config, torch.empty(0, k, dtype=act, device=self._device), self.bias, device=self._device)

    def _apply(self, fn, *args, **kwargs):  # .to() / .cuda(): the cached device follows the weights
        out = super()._apply(fn, *args, **kwargs)
        p = next(iter(self.parameters()), None)
        self._device = p.device if p is not None else None
        return out

    def __deepcopy__(self, memo):
        """A copy in this process: the kernel objects (and the compiled extensions they hold) are
        shared or copied as they are, the copy gets its own op handle."""
        from . import ops

        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new.__setstate__(copy.deepcopy(self.__dict__, memo))
        new._handle = ops.register(new)
        return new

    def __reduce_ex__(self, protocol):
        """Pickling (``torch.save(model)``, multiprocessing) stores the layer as it was loaded — config,
        as-loaded parameters, bias — and rebuilds it on unpickling: the kernel is selected again on the
        machine that loads it and re-lays the weights there (a kernel's compiled state cannot travel).
        Layers from ``quantize_model`` / ``load_quantized`` keep their as-loaded parameters; others
        need ``keep_loaded_params=True``."""
        checkpoint = getattr(self, "checkpoint_params", None)
        params = checkpoint or self.loaded_params
        if params is None:
            raise TypeError("QuantLinear: cannot be pickled without its as-loaded parameters (kernels re-lay them "
                            "and hold compiled state); build it with keep_loaded_params=True, or save the model with "
                            "qlinear.save_quantized and load it with qlinear.load_quantized")
        table = self.selection.table
        bias = None if self.bias is None else self.bias.detach()
        regime = table.regime if table is not None else None
        return (_rebuild, (type(self), self.config, dict(params), bias, regime, checkpoint is not None,
                           self.loaded_params is not None))

    def kernel_for(self, m: int) -> tuple[LinearKernel, torch.nn.Module]:
        """The (kernel, layer holding its weights) a call with ``m`` rows goes to."""
        return self.dispatch.pick(m) if self.dispatch is not None else (self.kernel, self)

    def _run(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        # only what a call can change is checked (x's width, dtype, device); a bad x gets the named error
        if (not isinstance(x, torch.Tensor) or x.dim() == 0 or x.shape[-1] != self.in_features
                or x.dtype not in self._x_dtypes or x.device != self._device):
            check_input(self.config, x, bias, device=self._device)
        m = x.numel() // self.in_features
        if self.dispatch is None:
            kern = self.kernel
            out = kern.apply_weights(self, x, bias)
        else:
            kern, layer = self.dispatch.pick(m)
            out = kern.apply_weights(layer, x, bias)
        # a static activation scale would clamp inf to a finite code: such rows come out NaN instead
        # (by the kernel itself where it can, else by two more launches here)
        return propagate_non_finite(x, out) if self._saturates and m and not kern.handles_non_finite(m) else out

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear, scheme: str, *, calib_x: torch.Tensor | None = None,
                    kernel: type[LinearKernel] | str | None = None, dtype: torch.dtype | None = None,
                    regime: str | None = None, keep_loaded_params: bool = False) -> "QuantLinear":
        """Quantize a float ``nn.Linear`` with ``scheme``. Static-scale schemes (int8-static*,
        fp8-tensor, nvfp4) calibrate their activation scale from ``calib_x``."""
        if not isinstance(linear, torch.nn.Linear):
            raise TypeError(f"linear: expected torch.nn.Linear, got {type(linear).__name__}")
        w = linear.weight.detach()
        bad = int((~torch.isfinite(w)).sum()) if w.dtype.is_floating_point else 0
        if bad:
            raise ValueError(f"linear.weight: {bad} non-finite value(s) (NaN/inf); it cannot be quantized")
        act = dtype or (w.dtype if w.dtype in (torch.float16, torch.bfloat16) else torch.bfloat16)
        config = scheme_config(scheme, w.shape[0], w.shape[1], act)
        params = quantize_layer_params(config, w.float(), calib_x=calib_x)
        params = {k: v.to(w.device) for k, v in params.items()}
        bias = linear.bias.detach().to(act) if linear.bias is not None else None
        return cls(config, params, bias, kernel, regime, keep_loaded_params=keep_loaded_params)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling():  # one opaque custom op: no graph break whatever the kernel
            return torch.ops.qlinear.linear(x, self.bias, self._handle)
        return self._run(x, self.bias)

    def extra_repr(self) -> str:
        n, k = self.config.shape_nk
        return f"in_features={k}, out_features={n}, kernel={self.kernel.full_name()}, config={self.config.describe()}"


def _rebuild(cls, config, params, bias, regime, checkpoint: bool, loaded: bool) -> QuantLinear:
    """Unpickle a ``QuantLinear`` (see ``__reduce_ex__``): select and re-lay on this machine."""
    layer = cls(config, {k: v.clone() for k, v in params.items()}, bias, regime=regime, keep_loaded_params=loaded)
    if checkpoint:
        layer.checkpoint_params = params
    return layer


class _PerM:
    """Per-M dispatch: ``entries[i]`` serves M up to ``limits[i]`` (ascending; the last is open)."""

    __slots__ = ("limits", "entries")

    def __init__(self, limits: list[int], entries: list) -> None:
        self.limits, self.entries = limits, entries

    def pick(self, m: int):
        return self.entries[min(bisect.bisect_left(self.limits, m), len(self.entries) - 1)]


def _check_requested(kernel: type[LinearKernel] | str, sel: Selection) -> None:
    """``kernel=`` names one kernel ("TritonW4A16LinearKernel", "triton.TritonW4A16LinearKernel" or
    the class): it must be the one selected, else an error now that says why it cannot run (instead
    of silently running another kernel, or failing at the first call)."""
    want = kernel if isinstance(kernel, str) else kernel.full_name()
    chosen = sel.kernel
    if chosen is not None and (chosen is kernel or want in (chosen.__name__, chosen.full_name())):
        return
    named = [n for n in sel.reasons if n == want or n.rsplit(".", 1)[-1] == want]
    if not named:
        raise ValueError(f"kernel: no registered {sel.config.family} kernel is named {want!r} "
                         f"(`qlinear doctor` lists them):\n{sel.explain()}")
    why = "; ".join(sel.reasons[n] for n in named)
    raise ValueError(f"kernel: {want} cannot run this layer here: {why}\n{sel.explain()}")
