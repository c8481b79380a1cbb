"""The autotune cache under concurrent writers and bad files, its key, and what a tuned layer keeps.

The process-stress test forks writers from this (already imported) process, so it needs no
re-import of torch per process and stays within a few seconds.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os

import pytest
import torch

import qlinear
from qlinear import autotune
from qlinear.config import MPLinearLayerConfig
from qlinear.nn import QuantLinear, scheme_config
from qlinear.settings import override_settings

WRITERS, WRITES = 8, 200


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("QLINEAR_CACHE_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def fast_timing(monkeypatch):
    from qlinear import bench

    real = bench.time_calls
    monkeypatch.setattr(bench, "time_calls", lambda fn, dev, **kw: real(fn, dev, **{**kw, "max_time": 0.002}))


def _writer(wid: int) -> None:
    try:
        for j in range(WRITES):
            autotune._store(f"writer{wid}|entry{j}", {"1": f"k{wid}.{j}"})
    finally:
        os._exit(0)


def test_concurrent_writers_keep_every_entry(cache_dir):
    """8 processes x 200 writes, all to one file at once: every one of the 1600 entries is kept and
    the file is valid JSON (read-modify-write without a lock kept 29 to 156 of 1600)."""
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(w,)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    data = json.loads(autotune.cache_path().read_text())
    kept = sum(1 for w in range(WRITERS) for j in range(WRITES) if data.get(f"writer{w}|entry{j}") == {"1": f"k{w}.{j}"})
    assert kept == WRITERS * WRITES, f"kept {kept} of {WRITERS * WRITES} entries"
    assert not list(cache_dir.glob("*.tmp")), "temporary files left behind"


@pytest.mark.parametrize("content", [b"[1, 2, 3]", b"42", b'"text"', b"null", b'{"k": 5, "j": [1]}',
                                     b'{"a": {"1": "x"', b"\x00\xff\xfe garbage", b""],
                         ids=["list", "number", "string", "null", "wrong-entries", "truncated", "binary", "empty"])
def test_bad_cache_file_does_not_break_a_tuned_layer(cache_dir, fast_timing, content):
    """A cache file that is valid JSON but not an object (or truncated, or binary) used to crash
    QuantLinear(); now it reads as empty and the next write replaces it with a valid object."""
    autotune.cache_path().write_bytes(content)
    lin = torch.nn.Linear(128, 64).bfloat16()
    with override_settings(autotune=True):
        q = QuantLinear.from_linear(lin, "w4a16-g32")
    assert q.dispatch is not None
    data = json.loads(autotune.cache_path().read_text())
    assert isinstance(data, dict) and any(v == q.autotune_winners for v in data.values())


def test_reader_drops_malformed_entries(cache_dir):
    autotune.cache_path().write_text(json.dumps({"good": {"1": "a.B"}, "bad": 5, "bad2": {"1": 3}}))
    assert autotune._load() == {"good": {"1": "a.B"}}


def test_key_names_provider_versions(monkeypatch, fresh_registry):
    """A provider upgrade must not reuse timings measured on its old kernels."""
    from qlinear_emulation.kernels import EmulationMPLinearKernel

    c = scheme_config("w4a16-g128", 256, 256)
    info = fresh_registry.providers["emulation"]
    monkeypatch.setattr(info, "version", "1.0.0")
    k1 = autotune.cache_key(c, [EmulationMPLinearKernel], torch.device("cpu"))
    monkeypatch.setattr(info, "version", "1.0.1")
    k2 = autotune.cache_key(c, [EmulationMPLinearKernel], torch.device("cpu"))
    assert k1 != k2 and "1.0.1" in k2


def held_bytes(*objs) -> int:
    """Distinct tensor storages reachable from modules (parameters, buffers, plain tensor
    attributes) and kernel objects; written here, not taken from autotune, so it measures any version."""
    seen: dict[int, int] = {}
    for o in objs:
        for m in (o.modules() if isinstance(o, torch.nn.Module) else [o]):
            ts = list(vars(m).values())
            if isinstance(m, torch.nn.Module):
                ts += list(m.parameters(recurse=False)) + list(m.buffers(recurse=False))
            for t in ts:
                if isinstance(t, torch.Tensor):
                    st = t.untyped_storage()
                    seen[st.data_ptr()] = max(seen.get(st.data_ptr(), 0), st.nbytes())
    return sum(seen.values())


def test_tuned_layer_holds_no_extra_copies(cache_dir, fast_timing, capsys):
    """A tuned layer keeps only its winners' re-laid weights: not the as-loaded parameters, not the
    emulation's float32 weight (8x an int4 one). Bytes held, tuned vs untuned, 1024x1024 W4A16."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(1024, 1024).bfloat16()
    plain = QuantLinear.from_linear(lin, "w4a16-g128")
    untuned = held_bytes(plain, plain.kernel)
    with override_settings(autotune=True):
        q = QuantLinear.from_linear(lin, "w4a16-g128")
    assert q.dispatch is not None
    kernels = {id(k): k for k, _ in q.dispatch.entries}
    tuned = held_bytes(q, *kernels.values())
    winners = len({name for name in q.autotune_winners.values()})
    with capsys.disabled():
        print(f"\n[bytes held] untuned {untuned / 2**20:.2f} MiB, tuned {tuned / 2**20:.2f} MiB, "
              f"{winners} distinct winner(s): {sorted(set(q.autotune_winners.values()))}")
    assert "emulation.EmulationMPLinearKernel" not in q.autotune_winners.values()
    assert not any(n in dict(q.named_parameters(recurse=False)) for n in ("weight_packed", "weight_scale"))
    assert tuned <= winners * 1.5 * untuned + 4096, (tuned, untuned, winners)
