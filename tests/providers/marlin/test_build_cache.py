"""The marlin JIT build cache under processes, kills and failures (CPU: fake_build.py stands in for
nvcc; torch.utils.cpp_extension.load and its lock file are real)."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("qlinear_marlin")
from qlinear_marlin import build, runtime  # noqa: E402

from . import fake_build  # noqa: E402

WAIT_S = 45  # a hung (old) build waits forever; a working one finishes in a few seconds


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    # the provider's own variable, which every version of build.py honours (QLINEAR_CACHE_DIR has its own test)
    monkeypatch.setenv("QLINEAR_MARLIN_CACHE", str(root / "marlin"))
    monkeypatch.delenv("QLINEAR_MARLIN_REBUILD", raising=False)
    monkeypatch.setenv("QLINEAR_CACHE_DIR", str(root))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # nothing may land in the real home
    forget = getattr(build, "_forget", None)
    if forget:
        forget()
    else:  # the lru_cache of older builds
        getattr(build.load_extension, "cache_clear", lambda: None)()
    yield root
    if forget:
        forget()


def _child(env_extra, conn) -> None:
    """A forked "new process": its own session (so a kill takes its compiler too), the fake
    compiler, no memory of the parent's build, then one build."""
    try:
        os.setsid()
        os.environ.update(env_extra or {})
        fake_build.install()
        getattr(build, "_forget", getattr(build.load_extension, "cache_clear", lambda: None))()
        import torch.utils.cpp_extension as ce

        ce.JIT_EXTENSION_VERSIONER.entries.clear()  # torch's in-process memory of built extensions
        build.load_extension()
        conn.send("LOADED")
        code = 0
    except BaseException as e:  # noqa: BLE001
        conn.send(f"FAILED {e}")
        code = 3
    os._exit(code)


def _spawn(env_extra=None):
    """Forked from this process (torch already imported: no 2 s re-import per process)."""
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(env_extra, send), daemon=True)
    p.start()
    p.conn = recv
    return p


def _wait(p, timeout=WAIT_S):
    p.join(timeout)
    if p.is_alive():
        _kill(p)
        return None, "(hung)"
    return p.exitcode, p.conn.recv() if p.conn.poll() else ""


def _kill(p) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGKILL)  # the build and its compiler, as when a job is killed
    p.join(10)


def test_processes_build_at_once_and_one_killed_mid_build(cache):
    """One build is killed mid-"nvcc" (it leaves torch's lock file behind, as a real kill does);
    then four processes start at once. All four must load the extension, one compiles, the others
    wait for it; before, every one of them waited forever on the dead build's lock file."""
    victim = _spawn({"FAKE_COMPILE_S": "60"})
    deadline = time.time() + WAIT_S
    while not fake_build.started(cache) and time.time() < deadline and victim.is_alive():
        time.sleep(0.05)
    assert fake_build.started(cache), "the first build never started"
    _kill(victim)
    assert list(cache.rglob("lock")), "the killed build should leave torch's lock file (as a real kill does)"

    procs = [_spawn({"FAKE_COMPILE_S": "0.5"}) for _ in range(4)]
    results = [_wait(p) for p in procs]
    hung = sum(1 for rc, _ in results if rc is None)
    assert hung == 0, f"{hung} of 4 processes hung after a killed build: {results}"
    assert all(rc == 0 and "LOADED" in out for rc, out in results), results
    assert len(fake_build.started(cache)) == 2, "exactly one compile after the killed one"
    assert list((cache / "marlin").glob("*/qlinear_marlin_*.so"))


def test_failed_build_is_remembered_with_its_log(cache, monkeypatch):
    """A failing build runs the compiler once: later layers in this process get the same error at
    once, and so does a new process (the FAILED record names build.log, which holds the compiler's
    output); QLINEAR_MARLIN_REBUILD=1 tries again."""
    monkeypatch.setenv("FAKE_COMPILE_RC", "1")
    monkeypatch.setenv("FAKE_COMPILE_S", "0")
    fake_build.install(monkeypatch)
    errors = []
    for _ in range(3):  # three layers being loaded
        with pytest.raises(RuntimeError) as e:
            build.load_extension()
        errors.append(str(e.value))
    assert len(fake_build.started(cache)) == 1, f"compiled {len(fake_build.started(cache))} times for 3 layers"
    log = Path(errors[0].split("log: ")[1].split(")")[0])
    assert log.is_file() and "identifier 'broken' is undefined" in log.read_text()
    rc, out = _wait(_spawn())
    assert rc == 3 and "failed to build before" in out and str(log) in out, out
    assert len(fake_build.started(cache)) == 1, "a new process recompiled a known failure"
    rc, out = _wait(_spawn({"QLINEAR_MARLIN_REBUILD": "1", "FAKE_COMPILE_RC": "0"}))
    assert rc == 0 and "LOADED" in out, out
    assert len(fake_build.started(cache)) == 2


def test_failed_build_takes_marlin_out_of_selection(monkeypatch):
    from qlinear.platform import Platform
    from qlinear_marlin import gates

    monkeypatch.setattr(gates, "find_nvcc", lambda: "/usr/bin/nvcc")
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    plat = Platform("cuda", 90, "NVIDIA H200")
    assert gates.cuda_verdict(plat) == (True, None)
    monkeypatch.setattr(build, "_failure", build.BuildError("marlin: the CUDA extension failed to build (log: x)"))
    ok, why = gates.cuda_verdict(plat)
    assert not ok and "failed to build" in why


def _fake_tool(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(f"#!/bin/sh\necho '{text}'\n")
    p.chmod(0o755)
    return p


def test_cache_key_names_nvcc_and_host_compiler(tmp_path, monkeypatch):
    """Two nvcc releases (or two host compilers) must not share a build directory."""
    keys = {}
    for tag, nvcc, cxx in (("a", "release 12.8, V12.8.93", "g++ (GCC) 12.3.0"),
                           ("b", "release 13.0, V13.0.48", "g++ (GCC) 12.3.0"),
                           ("c", "release 13.0, V13.0.48", "g++ (GCC) 14.1.0")):
        home = tmp_path / tag
        _fake_tool(home / "bin", "nvcc", f"Cuda compilation tools, {nvcc}")
        monkeypatch.setenv("CUDA_HOME", str(home))
        monkeypatch.setenv("CXX", str(_fake_tool(home / "cxx", "c++", cxx)))
        keys[tag] = build.source_key("90")
    assert len(set(keys.values())) == 3, keys


def test_cache_folder_honours_qlinear_cache_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("QLINEAR_MARLIN_CACHE", raising=False)
    monkeypatch.setenv("QLINEAR_CACHE_DIR", str(tmp_path))
    assert build.cache_dir("k") == tmp_path / "marlin" / "k"
    monkeypatch.setenv("QLINEAR_MARLIN_CACHE", str(tmp_path / "own"))
    assert build.cache_dir("k") == tmp_path / "own" / "k"


def test_build_happens_at_load_never_in_a_call(monkeypatch):
    """process_weights_after_loading builds (for a CUDA layer); a call never does, and says why."""
    from qlinear import testing
    from qlinear.layers import make_layer
    from qlinear_marlin.mp import MarlinMPLinearKernel

    calls = []
    monkeypatch.setattr(build, "load_extension", lambda: calls.append("build"))
    runtime.prepare(torch.device("cuda", 0))
    assert calls == ["build"]
    runtime.prepare(torch.device("cpu"))
    assert calls == ["build"], "a CPU layer (repack tests) needs no extension"

    prepared = []
    monkeypatch.setattr(runtime, "prepare", lambda dev: prepared.append(dev))
    case = testing.cases_for(MarlinMPLinearKernel)[0]
    params, x, _ = testing.make_case_layer(case, "cpu")
    layer = make_layer(case.config, params)
    kern = MarlinMPLinearKernel.create(case.config)
    kern.process_weights_after_loading(layer)
    assert prepared == [torch.device("cpu")]

    monkeypatch.setattr(build, "_ext", None)
    with pytest.raises(RuntimeError, match="not built"):
        kern.apply_weights(layer, x)
    assert calls == ["build"], "a call tried to build the extension"


def test_no_build_inside_a_cuda_graph_capture(cache, monkeypatch):
    fake_build.install(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)
    with pytest.raises(RuntimeError, match="CUDA-graph capture"):
        build.load_extension()
    assert not fake_build.started(cache)
