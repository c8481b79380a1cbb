"""Thread safety of first use: registry discovery, settings overrides, selection and autotune.

Every test here is bounded (threads join with a timeout; the deadlock test runs in a subprocess
with a timeout) and deterministic in what it asserts: a barrier lines the threads up so the racy
window is hit on every run, not by luck.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch

import qlinear
from qlinear import registry as registry_mod
from qlinear.formats import reference_linear
from qlinear.layers import quantize_layer_params
from qlinear.nn import QuantLinear
from qlinear.settings import get_settings, override_settings

FIXTURE = Path(__file__).parent / "fixtures" / "provider"
N_THREADS = 8
JOIN_S = 60


def _run_threads(fn, n=N_THREADS):
    """Run ``fn(i, barrier)`` on n threads; return (results, errors) — bounded by JOIN_S."""
    barrier = threading.Barrier(n, timeout=JOIN_S)
    results, errors = [None] * n, []

    def body(i):
        try:
            results[i] = fn(i, barrier)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
    hung = [i for i, t in enumerate(threads) if t.is_alive()]
    assert not hung, f"threads {hung} still running after {JOIN_S} s"
    return results, errors


# ---- registry ------------------------------------------------------------------------------------
def _fixture_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    shutil.copytree(FIXTURE / "qlinear_fixture", site / "qlinear_fixture")
    info = site / "qlinear_fixture_provider-9.9.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: qlinear-fixture-provider\nVersion: 9.9.0\n")
    (info / "entry_points.txt").write_text("[qlinear]\nfixture_import = qlinear_fixture.registers_at_import\n")
    return site


def test_provider_registering_at_import_does_not_deadlock(tmp_path):
    """A provider module that calls register_linear_kernel at import (while the registry is
    importing it) used to hang forever on the registry's lock. In a subprocess, so a hang is a
    clean failure after the timeout."""
    site = _fixture_site(tmp_path)
    code = textwrap.dedent("""
        import qlinear
        reg = qlinear.get_registry()
        info = reg.providers["fixture_import"]
        assert info.ok, info.error
        names = [k.__name__ for k in reg.kernels("int8", "cpu")]
        assert names.count("ImportRegisteredInt8Kernel") == 1, names
        assert "ImportRegisteredInt8Kernel" not in [k.__name__ for k in reg.kernels("int8", "cuda")]
        print("OK", len(reg.kernels()))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    try:
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("get_registry() hung: a provider registering at import deadlocks discovery")
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-2000:]


def test_registry_first_use_from_many_threads(fresh_registry):
    """N threads hit a fresh registry at once: one discovery, every thread gets the same, complete
    registry."""
    registry_mod.reset_registry()

    def first_use(i, barrier):
        barrier.wait()
        reg = registry_mod.get_registry()
        return id(reg), len(reg.kernels())

    results, errors = _run_threads(first_use)
    assert not errors, errors
    assert len({r[0] for r in results}) == 1
    assert len({r[1] for r in results}) == 1 and results[0][1] > 0


# ---- settings --------------------------------------------------------------------------------------
def test_override_does_not_leak_into_other_threads():
    """An override in one thread used to change every thread's settings."""
    entered, done = threading.Event(), threading.Event()
    seen = []

    def overrider():
        with override_settings(linear_backend="emulation", autotune=True):
            entered.set()
            done.wait(JOIN_S)

    t = threading.Thread(target=overrider, daemon=True)
    t.start()
    assert entered.wait(JOIN_S)
    try:
        st = get_settings()
        seen.append((st.linear_backend, st.autotune))
    finally:
        done.set()
        t.join(JOIN_S)
    assert seen == [("auto", False)], f"another thread's override leaked into this one: {seen}"


def test_interleaved_overrides_never_leave_a_backend_stuck():
    """Threads enter and leave overrides interleaved (A in, B in, A out, B out): each sees its own
    value inside, and afterwards (and in the main thread) the environment's value is back. With a
    process-global override, B's exit restored A's value: the backend stayed stuck."""
    backends = ["emulation", "torch", "triton", "marlin"]
    base = get_settings().linear_backend

    def body(i, barrier):
        mine = backends[i % len(backends)]
        wrong = 0
        for _ in range(50):
            with override_settings(linear_backend=mine):
                barrier.wait()  # everyone is inside an override at once
                wrong += get_settings().linear_backend != mine
            barrier.wait()  # everyone has left
            wrong += get_settings().linear_backend != base
        return wrong

    results, errors = _run_threads(body)
    assert not errors, errors
    assert sum(results) == 0, f"{sum(results)} reads saw another thread's backend ({results})"
    assert get_settings().linear_backend == base


# ---- selection + layer construction + autotune, all at first use ------------------------------------
def test_first_use_stress_selection_overrides_and_autotune(tmp_path, monkeypatch, fresh_registry):
    """N threads, lined up at a barrier on a fresh registry, each under its own settings override
    (a different backend, autotune on for half of them, all sharing one autotune cache file): each
    gets the kernel its own override asks for, an output that matches the reference, and the cache
    ends up a valid object holding every autotuned key."""
    from qlinear import autotune, bench

    monkeypatch.setenv("QLINEAR_CACHE_DIR", str(tmp_path))
    real_time = bench.time_calls
    # real timings, short ones: this test is about concurrency, not about which kernel is fastest
    monkeypatch.setattr(bench, "time_calls", lambda fn, dev, **kw: real_time(fn, dev, **{**kw, "max_time": 0.002}))
    registry_mod.reset_registry()
    torch.manual_seed(0)
    linears = [torch.nn.Linear(128 + 32 * (i % 4), 64).bfloat16() for i in range(N_THREADS)]
    x = {i: torch.randn(3, lin.in_features, dtype=torch.bfloat16) for i, lin in enumerate(linears)}

    def body(i, barrier):
        tune = i % 4 == 0  # autotune races every usable kernel: backend auto
        backend = "auto" if tune else "emulation" if i % 2 else "torch"
        with override_settings(linear_backend=backend, autotune=tune):
            barrier.wait()
            layer = QuantLinear.from_linear(linears[i], "w4a16-g32")
            assert get_settings().linear_backend == backend
        if not tune:  # the override of this thread, not another's
            assert layer.kernel.backend == backend, (i, backend, layer.kernel.full_name())
        ref = reference_linear(layer.config, quantize_layer_params(layer.config, linears[i].weight.detach().float()),
                               x[i], layer.bias)
        err = float((layer(x[i]).double() - ref).norm() / ref.norm())
        assert err < 2e-2, (i, layer.kernel.full_name(), err)
        return layer.dispatch is not None

    results, errors = _run_threads(body)
    assert not errors, errors
    tuned = sum(1 for r in results if r)
    data = autotune._load()
    assert len(data) >= 1 and tuned >= 1
    assert get_settings().linear_backend == "auto" and get_settings().autotune is False
