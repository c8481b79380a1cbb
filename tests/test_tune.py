"""``qlinear tune`` on CPU: a real (tiny) timing run with the torch provider, the table it writes is
the one selection reads, merging runs, per-provider split, and the CLI verb."""

import json

import pytest
import torch

from qlinear import tables, tune
from qlinear.cli import main
from qlinear.nn import scheme_config
from qlinear.selection import select

pytest.importorskip("qlinear_torch")
N, K = 128, 256


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QLINEAR_CACHE_DIR", str(tmp_path))
    return tmp_path


def _run(schemes=("w8a16-ch",), shapes=((N, K),), ms=(1, 8)):
    return tune.run_tune(schemes, shapes, ms, "cpu", kernels=("torch.*",), max_time=0.01, max_copies=2)


def test_run_times_every_usable_kernel_and_parses(cache, fresh_registry):
    t = _run(("w8a16-ch", "int8-dynamic"))
    assert t["arch"] == "cpu" and t["format"] == tables.FORMAT and "torch" in t["providers"]
    assert {p["scheme"] for p in t["priority_pick"]} == {"w8a16-ch", "int8-dynamic"}
    got = {(r["scheme"], r["m"], r["kernel"]) for r in t["rows"]}
    assert got == {(s, m, k) for s, k in (("w8a16-ch", "torch.TorchCpuW8A16LinearKernel"),
                                            ("int8-dynamic", "torch.TorchCpuInt8ScaledMMLinearKernel"))
                   for m in (1, 8)}
    assert all(r["us"] > 0 and r["config"] == tables.config_key(scheme_config(r["scheme"], N, K)) for r in t["rows"])
    assert not any("kernel_version" in r for r in t["rows"])  # version 0 kernels: rows as before
    tables.parse_table(t)  # the selector can read what the tool wrote


def test_rows_carry_the_kernel_table_version(cache, fresh_registry, monkeypatch):
    from qlinear_torch.int8 import TorchCpuInt8ScaledMMLinearKernel

    monkeypatch.setattr(TorchCpuInt8ScaledMMLinearKernel, "table_version", 3)
    t = _run(("int8-dynamic",))
    assert t["rows"] and all(r["kernel_version"] == 3 for r in t["rows"])
    key = (t["rows"][0]["family"], t["rows"][0]["config"])
    assert set(tables.parse_table(t).versions.values()) == {3} and all(v[:2] == key for v in tables.parse_table(t).versions)


def test_written_table_is_used_by_select(cache, fresh_registry):
    path = tune.write_table(_run(), tune.default_out("cpu"))
    assert path.parent == tables.user_dir()
    sel = select(scheme_config("w8a16-ch", N, K), raise_on_failure=False)
    assert sel.table is not None and sel.kernel.full_name() == "torch.TorchCpuW8A16LinearKernel"
    assert path.name in sel.explain()


def test_merge_keeps_other_shapes_and_replaces_retimed_ones(cache, fresh_registry):
    out = cache / "t.json"
    tune.write_table(_run(shapes=((N, K),)), out)
    tune.write_table(_run(shapes=((2 * N, K),)), out)
    rows = json.loads(out.read_text())["rows"]
    assert {(r["n"], r["m"]) for r in rows} == {(N, 1), (N, 8), (2 * N, 1), (2 * N, 8)}
    tune.write_table(_run(shapes=((N, K),)), out)
    assert len(json.loads(out.read_text())["rows"]) == 4  # re-timed rows replaced, not duplicated
    before = {(r["n"], r["m"]): r["us"] for r in json.loads(out.read_text())["rows"]}
    tune.write_table(_run(shapes=((N, K),), ms=(1,)), out)  # a run of one M keeps the shape's other M
    after = {(r["n"], r["m"]): r["us"] for r in json.loads(out.read_text())["rows"]}
    assert set(after) == set(before) and after[(N, 8)] == before[(N, 8)]
    out.write_text("{ not json")
    tune.write_table(_run(), out)  # a corrupt file is replaced, not fatal
    assert len(json.loads(out.read_text())["rows"]) == 2


def test_split_into_providers_writes_each_providers_rows(cache, fresh_registry, monkeypatch, tmp_path):
    import sys

    import qlinear_torch

    pkg = tmp_path / "pkg"
    pkg.mkdir()
    monkeypatch.setattr(qlinear_torch, "__file__", str(pkg / "__init__.py"))
    assert sys.modules["qlinear_torch"] is qlinear_torch
    written = tune.split_into_providers(_run())
    assert len(written) == 1 and written[0].parent == pkg / "tables" and written[0].name.startswith("cpu")
    data = json.loads(written[0].read_text())
    assert data["rows"] and all(r["kernel"].startswith("torch.") for r in data["rows"])
    # the shipped table is found through the provider's package
    sel = select(scheme_config("w8a16-ch", N, K), raise_on_failure=False)
    assert sel.table is not None and sel.table.tables == [str(written[0])]


def test_regret_summary():
    t = {"rows": [{"scheme": "s", "n": 1, "k": 1, "m": m, "kernel": k, "us": us}
                  for m, k, us in ((1, "a", 1.0), (1, "b", 2.0), (8, "a", 9.0), (8, "b", 3.0))]}
    (r,) = tune.regret(t)
    assert r["best_single"] == "b" and r["best_single_sum_us"] == 5.0 and r["per_m_best_sum_us"] == 4.0
    t["priority_pick"] = [{"scheme": "s", "n": 1, "k": 1, "kernel": "a"}]
    (r,) = tune.regret(t)
    assert r["priority_regret"] == 2.0 and r["priority_worst_m_regret"] == 3.0
    assert "priority pick a 2.00x (worst M 3.00x)" in tune.summary(dict(t, device="d", arch="x", torch="t",
                                                                          seconds=0, errors=[], skipped=[]))


def test_cli_tune_writes_the_table(cache, fresh_registry, capsys):
    out = cache / "cli.json"
    rc = main(["tune", "--device", "cpu", "--schemes", "w8a16-ch", "--shapes", f"{N}x{K}", "--m", "1",
               "--kernels", "torch.*", "--max-time", "0.01", "--out", str(out), "-q"])
    assert rc == 0 and json.loads(out.read_text())["rows"]
    assert f"wrote {out}" in capsys.readouterr().out


def test_cli_tune_bad_shape_names_the_flag(capsys):
    assert main(["tune", "--device", "cpu", "--shapes", "4096by4096"]) == 2
    assert "--shapes" in capsys.readouterr().err


def test_cli_budget_keeps_what_was_measured_and_from_splits(cache, fresh_registry, capsys, monkeypatch, tmp_path):
    import qlinear_torch

    out = cache / "budget.json"
    rc = main(["tune", "--device", "cpu", "--schemes", "w8a16-ch,int8-dynamic", "--shapes", f"{N}x{K}", "--m", "1",
               "--kernels", "torch.*", "--max-time", "0.01", "--out", str(out), "--budget", "0", "-q"])
    text = capsys.readouterr().out
    assert rc == 0 and "not timed (--budget 0.0 s reached): int8-dynamic" in text
    assert {r["scheme"] for r in json.loads(out.read_text())["rows"]} == {"w8a16-ch"}
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    monkeypatch.setattr(qlinear_torch, "__file__", str(pkg / "__init__.py"))
    assert main(["tune", "--from", str(out), "--split-into-providers"]) == 0
    assert len(list((pkg / "tables").glob("*.json"))) == 1
    out.write_text(json.dumps({"format": 1, "arch": "cpu"}))
    assert main(["tune", "--from", str(out)]) == 2
    assert "device: missing" in capsys.readouterr().err


def test_cli_explain_regime_and_table_rows(cache, fresh_registry, capsys):
    tune.write_table(_run(), tune.default_out("cpu"))
    assert main(["explain", "w8a16-ch", "--n", str(N), "--k", str(K), "--regime", "decode", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["selected"] == "torch.TorchCpuW8A16LinearKernel"
    assert "regime decode" in data["table"][0]
