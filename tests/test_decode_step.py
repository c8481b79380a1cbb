"""The decode-step benchmark (``qlinear bench --model``) on the CPU at a tiny size: it builds the
layers as a user does, times them, compares each scheme's outputs with the bf16 layers on the same
weights, and writes a JSON the docs quote."""

import json

import pytest
import torch

from qlinear import decode_step as D
from qlinear.cli import main


def test_step_reports_kernels_errors_and_speedups():
    spec = D.StepSpec(model="tiny", schemes=["w4a16-g128", "int8-dynamic"], ms=[1, 4], device="cpu", reps=2)
    r = D.run(spec, log=lambda s: None)
    names = [s["scheme"] for s in r["schemes"]]
    assert names == ["bf16", "w4a16-g128", "int8-dynamic"]
    base, w4, i8 = r["schemes"]
    assert set(w4["kernels"]) == set(D.MODELS["tiny"])
    assert all("." in k for k in w4["kernels"].values())
    # 4-bit g128 on Gaussian weights: ~12 % relative output error; int8 per-channel: ~2 %
    assert all(0.05 < e < 0.2 for e in w4["rel_err_vs_bf16"].values()), w4["rel_err_vs_bf16"]
    assert all(e < 0.04 for e in i8["rel_err_vs_bf16"].values()), i8["rel_err_vs_bf16"]
    assert w4["weight_bytes"] < base["weight_bytes"] / 3  # 4-bit codes + scales against bf16
    for s in (w4, i8):
        for row in s["results"]:
            assert row["nonfinite_outputs"] == 0 and row["eager_us"] > 0 and row["speedup_eager"] > 0
            assert row["floor_us"] > 0


def test_step_in_fp16_builds_fp16_layers_and_names_its_baseline():
    spec = D.StepSpec(model="tiny", schemes=["w4a16-g128"], ms=[2], device="cpu", reps=1, dtype=torch.float16)
    r = D.run(spec, log=lambda s: None)
    assert r["baseline"] == "fp16" and [s["scheme"] for s in r["schemes"]] == ["fp16", "w4a16-g128"]
    base, w4 = r["schemes"]
    assert set(base["kernels"].values()) == {"torch.F.linear[fp16]"}
    assert all(0.05 < e < 0.2 for e in w4["rel_err_vs_fp16"].values()) and w4["results"][0]["speedup_eager"] > 0
    assert "speedup over fp16" in D.format_table(r)
    mods = D.build_layers("w4a16-g128", D.MODELS["tiny"], 1, torch.device("cpu"), 0, torch.float16)
    assert all(m.config.act_type == torch.float16 for _, m in mods)


def test_step_reports_a_scheme_it_cannot_build():
    spec = D.StepSpec(model="tiny", schemes=["nope"], ms=[1], device="cpu", reps=1)
    r = D.run(spec, log=lambda s: None)
    assert "scheme" in r["schemes"][1]["error"]


def test_cli_writes_json(tmp_path, capsys):
    rc = main(["bench", "--model", "tiny", "--device", "cpu", "--schemes", "w8a16-ch", "--m", "2",
               "--reps", "1", "--out", str(tmp_path), "--no-plot", "--regime", "decode"])
    assert rc == 0
    data = json.loads((tmp_path / "decode-step-tiny-cpu.json").read_text())
    assert [s["scheme"] for s in data["schemes"]] == ["bf16", "w8a16-ch"]
    assert data["selection"]["regime"] == "decode"  # the layers were chosen for the regime asked
    assert "decode step (tiny, 1 layers)" in capsys.readouterr().out


def test_cli_refuses_a_kernel_filter_it_would_ignore(tmp_path, capsys):
    rc = main(["bench", "--model", "tiny", "--device", "cpu", "--kernels", "cutlass.*", "--out", str(tmp_path), "--no-plot"])
    assert rc == 2 and "--backend mp=cutlass" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing ran
