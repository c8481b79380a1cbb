"""The conformance kit: check any kernel class against the emulation reference on fresh random layers.

Providers (ours and third parties') reuse it from pytest::

    from qlinear import testing

    @pytest.mark.parametrize("case", testing.cases_for(MyKernel), ids=str)
    def test_conformance(case):
        testing.run_case(MyKernel, case, device="cuda")

    def test_covers_something():
        testing.check_kernel(MyKernel, device="cuda")   # fails if no case could run at all

Each case builds a random float weight, quantizes it with ``qlinear.layers`` (the as-loaded layout),
lets the kernel re-lay it, runs ``kernel.apply`` on random activations, and compares with the
float64 reference (``qlinear.formats.reference_linear``: dequantize-then-matmul, with the
activation quantized exactly as the format says). Error is the relative Frobenius norm
``||out - ref|| / ||ref||``; tolerances per family are in ``TOLERANCE``.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import torch

from .config import LayerConfig, MPLinearLayerConfig
from .families import act_dtype, all_families, family_of, out_dtype
from .formats import reference_linear
from .kernel import LinearKernel
from .layers import make_layer, quantize_layer_params

# Relative Frobenius error allowed against the float64 reference (each family's descriptor states
# it). The kernel and the reference see the same quantized weight; what differs is 16-bit output
# rounding, accumulation order, and for W8A8/FP4 formats the activation quantization's rounding of
# values at a code boundary.
TOLERANCE = {name: f.tolerance for name, f in all_families().items()}


@dataclass(frozen=True)
class Case:
    config: LayerConfig
    m: int
    with_bias: bool = True

    def __str__(self) -> str:
        c = self.config
        n, k = c.shape_nk or ("?", "?")
        dt = str(act_dtype(c)).removeprefix("torch.")
        return f"{c.family}{family_of(c).case_tag(c)}-{dt}-N{n}K{k}-M{self.m}"


# ---- the default cases --------------------------------------------------------------------------
_MS = (1, 7, 33)


def default_configs(family: str) -> list[LayerConfig]:
    """A spread of layers per family (the family descriptor's): dtypes, groupings, and unaligned
    shapes where the format allows."""
    if family not in all_families():
        raise ValueError(f"family: unknown {family!r}")
    return family_of(family).default_configs()


def cases_for(kernel_cls: type[LinearKernel], ms=_MS, configs: list[LayerConfig] | None = None) -> list[Case]:
    """Every (config, M) of the kernel's family (the kernel may reject some: ``run_case`` skips those)."""
    return [Case(c, m, with_bias=(i % 2 == 0)) for i, (c, m) in
            enumerate(itertools.product(configs or default_configs(kernel_cls.family), ms))]


class StandIn:
    """Mixin for selection and plugin tests: a kernel that accepts every layer and is never run.
    Put it first: ``class MyMP(StandIn, MPLinearKernel): priority = 1000``."""

    @classmethod
    def can_implement(cls, c):
        return True, None

    def process_weights_after_loading(self, layer):
        pass

    def apply_weights(self, layer, x, bias=None):
        raise NotImplementedError(f"{type(self).__name__} is a selection stand-in; it computes nothing")


# ---- running one case ----------------------------------------------------------------------------
@dataclass
class CaseResult:
    case: Case
    ran: bool
    error: float | None = None
    tolerance: float | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return not self.ran or (self.error is not None and self.error <= self.tolerance)


class Skip(Exception):
    """The kernel declined the case (``can_implement`` / ``is_supported`` said no)."""


def make_case_layer(case: Case, device, seed: int = 0):
    """(layer params dict, x, bias, calib) for a case: fresh random data from ``seed``."""
    c = case.config
    n, k = c.shape_nk
    g = torch.Generator().manual_seed(seed)
    dt = act_dtype(c)
    w = torch.randn(n, k, generator=g) * 0.05
    x = torch.randn(case.m, k, generator=g)
    x[:, :: max(1, k // 7)] *= 4  # a few outlier channels, as real activations have
    calib = torch.cat([x, torch.randn(8, k, generator=g)])
    bias = torch.randn(n, generator=g) * 0.1 if case.with_bias else None
    if isinstance(c, MPLinearLayerConfig) and not c.is_k_full:
        # a row-parallel slice of an act-order layer: quantize the whole layer and keep rank 0's
        # slice, which holds the whole scale table and its part of g_idx (qlinear.sharding)
        from .sharding import shard_params

        kf = c.full_weight_shape[0]
        full = dataclasses.replace(c, partition_weight_shape=c.full_weight_shape)
        wf = torch.cat([w, torch.randn(n, kf - k, generator=g) * 0.05], 1)
        part, params = shard_params(full, quantize_layer_params(full, wf), "row", 0, kf // k)
        assert part == c, f"{case}: the slice's config {part} is not the case's"
    else:
        params = quantize_layer_params(c, w, calib_x=calib)
    to = lambda t: None if t is None else t.to(device)  # noqa: E731
    x, bias = to(x.to(dt)), to(bias.to(dt) if bias is not None else None)
    return {name: t.to(device) for name, t in params.items()}, x, bias


def run_case(kernel_cls: type[LinearKernel], case: Case, device="cpu", seed: int = 0, tolerance: float | None = None,
             skip=None) -> CaseResult:
    """Run one case; raise AssertionError (with the numbers) when the error is over tolerance.
    When the kernel declines the case, call ``skip(reason)`` (default: ``pytest.skip`` if pytest is
    running, else return a not-ran result)."""
    c = case.config
    for step, (ok, why) in (("is_supported", _verdict(kernel_cls.is_supported)), ("can_implement", _verdict(lambda: kernel_cls.can_implement(c)))):
        if not ok:
            reason = f"{kernel_cls.__name__}.{step}: {why}"
            if skip is None:
                skip = _pytest_skip()
            if skip is not None:
                skip(reason)
            return CaseResult(case, False, reason=reason)
    params, x, bias = make_case_layer(case, device, seed)
    ref = reference_linear(c, {k: v.cpu() for k, v in params.items()}, x.cpu(), None if bias is None else bias.cpu(),
                           quantize_activation=kernel_cls.quantizes_activation, dtype=torch.float64)
    layer = make_layer(c, params)
    kernel = kernel_cls.create(c)
    kernel.process_weights_after_loading(layer)
    out = kernel.apply(layer, x, bias)
    tol = tolerance if tolerance is not None else TOLERANCE[c.family]
    expect_dtype = out_dtype(c, x)
    assert out.shape == (case.m, c.shape_nk[0]), f"{case}: output shape {tuple(out.shape)}, expected {(case.m, c.shape_nk[0])}"
    assert out.dtype == expect_dtype, f"{case}: output dtype {out.dtype}, expected {expect_dtype}"
    o = out.detach().cpu().double()
    assert torch.isfinite(o).all(), f"{case}: {kernel_cls.__name__} returned NaN/Inf"
    err = float((o - ref).norm() / ref.norm().clamp(min=1e-30))
    res = CaseResult(case, True, err, tol)
    assert err <= tol, f"{case}: {kernel_cls.__name__} relative error {err:.3e} > tolerance {tol:.1e}"
    return res


def _verdict(fn):
    try:
        r = fn()
    except Exception as e:  # noqa: BLE001
        return False, f"raised {type(e).__name__}: {e}"
    return r if isinstance(r, tuple) else (bool(r), None)


def _pytest_skip():
    import sys

    if "pytest" in sys.modules:
        import pytest

        return pytest.skip
    return None


def check_kernel(kernel_cls: type[LinearKernel], device="cpu", cases: list[Case] | None = None, seed: int = 0,
                 min_ran: int = 1) -> list[CaseResult]:
    """Run every case; fail listing each bad one, and fail if fewer than ``min_ran`` cases could run
    (a kit run that skips everything proves nothing)."""
    results, failures = [], []
    for case in cases or cases_for(kernel_cls):
        try:
            results.append(run_case(kernel_cls, case, device, seed, skip=lambda r: None))
        except AssertionError as e:
            failures.append(str(e))
    ran = sum(r.ran for r in results) + len(failures)
    if failures:
        raise AssertionError(f"{kernel_cls.__name__}: {len(failures)} of {ran} cases failed:\n  " + "\n  ".join(failures))
    if ran < min_ran:
        reasons = sorted({r.reason for r in results if not r.ran})
        raise AssertionError(f"{kernel_cls.__name__}: only {ran} cases ran (need {min_ran}); skipped because: {reasons}")
    return results


def check_bad_inputs(kernel_cls: type[LinearKernel], device="cpu") -> None:
    """Wrong K, wrong dtype, wrong device and a bad bias must raise errors naming the field."""
    import pytest

    case = next(c for c in cases_for(kernel_cls, ms=(3,)) if _verdict(lambda: kernel_cls.can_implement(c.config))[0])
    params, x, bias = make_case_layer(case, device)
    layer = make_layer(case.config, params)
    kern = kernel_cls.create(case.config)
    kern.process_weights_after_loading(layer)
    with pytest.raises(ValueError, match="x.shape"):
        kern.apply(layer, x[:, :-1])
    other = torch.float16 if x.dtype != torch.float16 else torch.bfloat16
    with pytest.raises(ValueError, match="x.dtype"):
        kern.apply(layer, x.to(other))
    with pytest.raises(ValueError, match="bias.shape"):
        kern.apply(layer, x, torch.zeros(case.config.shape_nk[0] + 1, dtype=x.dtype, device=x.device))
    if torch.device(device).type != "cpu":
        with pytest.raises(ValueError, match="x.device"):
            kern.apply(layer, x.cpu())


def case_params(kernels: list[type[LinearKernel]], ms=_MS, implementable_only: bool = True) -> list:
    """``pytest.param(kernel, case)`` for every kernel's default cases (only those its
    ``can_implement`` accepts, unless ``implementable_only`` is False), with readable ids, for
    ``@pytest.mark.parametrize("kernel,case", ...)``."""
    import pytest

    return [pytest.param(k, c, id=f"{k.__name__}-{c}") for k in kernels for c in cases_for(k, ms=ms)
            if not implementable_only or _verdict(lambda: k.can_implement(c.config))[0]]


def conformance_suite(kernels: list[type[LinearKernel]], device="cuda", ms=_MS):
    """The three standard tests of a provider's kernels, for a test module to adopt::

        test_conformance, test_kit, test_bad_inputs = testing.conformance_suite(KERNELS, device="cuda")

    ``test_conformance``: every (kernel, default case) through ``run_case`` (a declined case skips
    with the kernel's reason); ``test_kit``: ``check_kernel`` (fails if a kernel ran no case at all);
    ``test_bad_inputs``: ``check_bad_inputs``. The module's ``pytestmark`` (e.g. ``gpu``) applies."""
    import pytest

    @pytest.mark.parametrize("kernel,case", case_params(kernels, ms, implementable_only=False))
    def test_conformance(kernel, case):
        run_case(kernel, case, device=device)

    @pytest.mark.parametrize("kernel", kernels, ids=lambda k: k.__name__)
    def test_kit(kernel):
        check_kernel(kernel, device=device)

    @pytest.mark.parametrize("kernel", kernels, ids=lambda k: k.__name__)
    def test_bad_inputs(kernel):
        check_bad_inputs(kernel, device=device)

    return test_conformance, test_kit, test_bad_inputs


def check_leading_dims(kernel_cls: type[LinearKernel], config: LayerConfig, device="cpu", lead=(2, 3),
                       seed: int = 1) -> None:
    """x [*lead, K] -> [*lead, N] with the config's output dtype (give it an ``out_type`` /
    ``out_dtype`` other than the activation's to check that it is honoured), within the family's
    tolerance of the reference."""
    n, k = config.shape_nk
    g = torch.Generator().manual_seed(seed)
    params = quantize_layer_params(config, torch.randn(n, k, generator=g) * 0.05,
                                   calib_x=torch.randn(8, k, generator=g))
    x = torch.randn(*lead, k, generator=g).to(act_dtype(config))
    ref = reference_linear(config, params, x, quantize_activation=kernel_cls.quantizes_activation)
    layer = make_layer(config, {name: t.to(device) for name, t in params.items()})
    kern = kernel_cls.create(config)
    kern.process_weights_after_loading(layer)
    out = kern.apply(layer, x.to(device))
    want = out_dtype(config, x)
    assert out.shape == (*lead, n) and out.dtype == want, f"{kernel_cls.__name__}: {tuple(out.shape)} {out.dtype}, expected {(*lead, n)} {want}"
    err = float((out.detach().cpu().double() - ref).norm() / ref.norm())
    assert err < TOLERANCE[config.family], f"{kernel_cls.__name__}: relative error {err:.3e} with leading dims {lead}"


def library_imports_during_selection(provider_module: str, library: str,
                                     platforms=("cpu", "sm80", "sm90", "sm100", "sm120", "mi300")) -> tuple[list, list]:
    """In a fresh interpreter: import ``provider_module``, then select every family's first default
    layer on each simulated platform (every kernel gated). Returns the modules named ``library*``
    loaded (after the import, after the selections): a provider must keep both empty, its heavy
    library being imported only when a kernel runs."""
    import json
    import subprocess
    import sys

    code = (
        f"import json, sys, qlinear, torch\nimport {provider_module}\n"
        "from qlinear.testing import default_configs\n"
        f"loaded = lambda: [m for m in sys.modules if m.startswith({library!r})]\n"
        "after_import = loaded()\n"
        f"for p in {tuple(platforms)!r}:\n"
        "    with qlinear.simulate_platform(p):\n"
        "        for fam in qlinear.FAMILIES:\n"
        "            qlinear.select(default_configs(fam)[0], evaluate_all=True, raise_on_failure=False)\n"
        "print(json.dumps([after_import, loaded()]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    after_import, after_select = json.loads(r.stdout.strip().splitlines()[-1])
    return after_import, after_select


def check_batch_invariance(kernel_cls: type[LinearKernel], device="cpu", batches=(1, 2, 3, 8, 17, 64, 129, 257),
                           case: Case | None = None) -> None:
    """The reference's "needle" test: one row placed first and last in batches of many sizes must give
    bit-for-bit its single-row result. Kernels that declare ``batch_invariant`` must pass it."""
    case = case or next(c for c in cases_for(kernel_cls, ms=(1,)) if _verdict(lambda: kernel_cls.can_implement(c.config))[0])
    params, x, bias = make_case_layer(case, device)
    layer = make_layer(case.config, params)
    kern = kernel_cls.create(case.config)
    kern.process_weights_after_loading(layer)
    g = torch.Generator().manual_seed(1)
    alone = kern.apply(layer, x, bias)
    for b in batches:
        hay = torch.randn(b, x.shape[1], generator=g).to(x.dtype).to(x.device)
        for pos in (0, b - 1):
            batch = hay.clone()
            batch[pos] = x[0]
            out = kern.apply(layer, batch, bias)[pos : pos + 1]
            assert torch.equal(out, alone), f"{kernel_cls.__name__}: row at {pos} of a batch of {b} differs from its single-row result"


def gate_lifted(kernel_cls: type[LinearKernel], **attrs) -> type[LinearKernel]:
    """Tests only: a subclass of ``kernel_cls`` whose platform gate (``is_supported``) always passes,
    so its host side (weight re-lay, argument checks, dispatch) runs where the real class refuses the
    platform: CPU tensors through a stand-in extension or the Triton interpreter. ``attrs`` are set on
    the subclass too. The real class keeps refusing (the gate tests check that)."""
    gate = classmethod(lambda cls, platform=None: (True, None))
    return type(kernel_cls.__name__, (kernel_cls,), {"is_supported": gate, **attrs})


def capture_graph(fn, warm: bool = True):
    """GPU tests: capture ``fn()`` into a CUDA graph and replay it once. ``warm``: one call first on a
    side stream (torch's rule before a capture; JIT compiles and lazy allocations happen there);
    False makes the capture the first call, so anything lazy on the call path fails. Returns
    (graph, the output the replays write into)."""
    if warm:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            fn()
        torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out = fn()
    g.replay()
    torch.cuda.synchronize()
    return g, out


__all__ = ["Case", "StandIn", "capture_graph", "gate_lifted", "check_batch_invariance", "CaseResult", "TOLERANCE", "cases_for", "check_bad_inputs", "check_kernel",
           "case_params", "check_leading_dims", "conformance_suite", "default_configs", "library_imports_during_selection", "make_case_layer", "run_case"]


def check_torch_binding_syntax(source, scratch, extra_includes=()):
    """Run the C++ front end (``-fsyntax-only``) over a provider's torch binding against this
    torch's headers and CUDA's, so a mismatch between a binding and its kernels' launchers is caught
    on a machine without a GPU (CI). Returns the ``CompletedProcess``, or None when g++, torch's
    c10/cuda headers or CUDA's headers are missing (the caller skips). A CPU build of torch ships
    the c10/cuda headers but not the CMake-generated ``cuda_cmake_macros.h``: an empty stand-in in
    ``scratch`` is enough for a syntax check."""
    import shutil
    import subprocess
    import sysconfig
    from pathlib import Path

    from .cuda_jit import find_nvcc, host_compiler

    cxx = shutil.which(host_compiler())  # the compiler torch's builder would run
    root = Path(torch.__file__).parent / "include"
    nvcc = find_nvcc()  # honours CUDA_HOME / CUDA_PATH
    # CUDA's headers: beside that nvcc, or under /usr/local/cuda (nvcc on PATH may be a wrapper script)
    homes = [Path(nvcc).resolve().parent.parent if nvcc else None, Path("/usr/local/cuda")]
    cuda = next((h / "include" for h in homes if h and (h / "include" / "cuda_runtime_api.h").exists()), None)
    if cxx is None or cuda is None or not (root / "c10" / "cuda" / "CUDAGuard.h").exists():
        return None
    stub = Path(scratch) / "c10" / "cuda" / "impl"
    stub.mkdir(parents=True, exist_ok=True)
    (stub / "cuda_cmake_macros.h").write_text("#pragma once\n")
    incs = [Path(scratch), root, root / "torch" / "csrc" / "api" / "include", cuda,
            Path(sysconfig.get_paths()["include"]), *map(Path, extra_includes)]
    cmd = [cxx, "-std=c++17", "-fsyntax-only", "-DTORCH_EXTENSION_NAME=qlinear_binding_check",
           *(f"-I{p}" for p in incs), str(source)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)
