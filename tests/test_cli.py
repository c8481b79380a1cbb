"""The `qlinear` command line: doctor, explain, verify, bench (all on CPU, in-process, fast)."""

import json
import shutil
import sys
import types
from pathlib import Path

import pytest
import torch

import qlinear
from qlinear import bench as B
from qlinear import cli
from qlinear import kernel as K
from qlinear import registry as registry_mod
from qlinear.config import FAMILIES
from qlinear.registry import ProviderInfo, Registry
from qlinear.testing import StandIn

FIXTURE = Path(__file__).parent / "fixtures" / "provider"


def run(capsys, *argv):
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


# ---- a private registry: emulation + a kernel that can't run here + a provider that failed to load --------
class NeedsGpuInt8Kernel(StandIn, K.Int8ScaledMMLinearKernel):
    """Outranks emulation but is not supported on this machine: doctor must show its reason."""

    priority = 50
    backend = "fakegpu"

    @classmethod
    def is_supported(cls, platform=None):
        p = qlinear.platform.resolve_platform(platform)
        return (True, None) if p.has_capability(90) else (False, f"needs CUDA cc>=90, have {p.capability}")



class WrongInt8Kernel(StandIn, K.Int8ScaledMMLinearKernel):
    """Runs, but 10% off: verify must call it a FAIL."""

    priority = 60

    def apply_weights(self, layer, x, bias=None):
        from qlinear.formats import reference_linear

        out = reference_linear(self.config, layer, x, bias, True, torch.float32) * 1.1
        return out.to(x.dtype)


def _module(name, kernels):
    mod = types.ModuleType(name)
    mod.qlinear_kernels = qlinear.hookimpl(lambda: list(kernels))
    return mod


@pytest.fixture
def private_registry():
    import qlinear_emulation

    reg = Registry(load_entry_points=False)
    reg.add_provider(qlinear_emulation, "emulation")
    reg.add_provider(_module("qlinear_fakegpu", [NeedsGpuInt8Kernel]), "fakegpu")
    reg.providers["broken"] = ProviderInfo("broken", "qlinear_broken", "qlinear-broken", "1.2.3",
                                           error="ImportError: libbroken.so: cannot open shared object file")
    return reg


def test_doctor_report_shows_providers_families_and_reasons(private_registry):
    rep = cli.doctor_report(private_registry)
    text = cli.render_doctor(rep)
    assert "platform: cpu" in text
    assert "emulation" in text and "qlinear-emulation" in text
    assert "broken" in text and "SKIPPED" in text and "libbroken.so" in text  # the broken provider, with its error
    for fam in FAMILIES:
        assert f"  {fam} " in text
    int8 = next(f for f in rep["families"] if f["family"] == "int8")
    rows = {r["kernel"]: r for r in int8["kernels"]}
    assert rows["fakegpu.NeedsGpuInt8Kernel"]["status"] == "no"
    assert "needs CUDA cc>=90" in rows["fakegpu.NeedsGpuInt8Kernel"]["reason"]
    assert rows["emulation.EmulationInt8ScaledMMLinearKernel"]["status"] == "selected"
    assert "no: needs CUDA cc>=90, have None" in text
    assert "settings" in text and "linear_backend=auto" in text


def test_doctor_simulated_sm90_changes_the_verdict(private_registry):
    rep = cli.doctor_report(private_registry, platform=cli._platform("sm90"))
    assert rep["simulated"] and "cc=9.0" in rep["platform"]
    int8 = next(f for f in rep["families"] if f["family"] == "int8")
    assert int8["selected"] == "fakegpu.NeedsGpuInt8Kernel"
    status = {r["kernel"]: r["status"] for r in int8["kernels"]}
    assert status["emulation.EmulationInt8ScaledMMLinearKernel"] == "available"


def test_doctor_command_and_platform_flag(capsys):
    rc, out, _ = run(capsys, "doctor")
    assert rc == 0 and "providers" in out and "emulation" in out and "kernels per family" in out
    rc, out, _ = run(capsys, "doctor", "--platform", "sm90")
    assert rc == 0 and "cuda cc=9.0" in out and "[simulated]" in out
    rc, out, _ = run(capsys, "doctor", "--platform", "sm90", "--json")
    rep = json.loads(out)
    assert rc == 0 and {f["family"] for f in rep["families"]} == set(FAMILIES)
    assert any(p["name"] == "emulation" and p["version"] for p in rep["providers"])
    assert "measured tables for this platform" in cli.render_doctor(rep)
    assert all({"path", "source", "device", "rows", "stale"} <= set(t) for t in rep["tables"])


def test_doctor_shows_settings_from_environment(capsys, monkeypatch):
    from qlinear.settings import reload_settings

    monkeypatch.setenv("QLINEAR_DISABLED_KERNELS", "EmulationMxfp8LinearKernel")
    reload_settings()
    try:
        rc, out, _ = run(capsys, "doctor")
    finally:
        monkeypatch.delenv("QLINEAR_DISABLED_KERNELS")
        reload_settings()
    assert "QLINEAR_DISABLED_KERNELS=EmulationMxfp8LinearKernel" in out
    assert "disabled (QLINEAR_DISABLED_KERNELS matches" in out


def test_broken_entry_point_provider_is_reported(tmp_path, monkeypatch, capsys):
    """The fixture distribution on sys.path: one provider loads, its broken sibling is shown with
    its import error and skipped; --strict turns that into exit code 1."""
    site = tmp_path / "site"
    shutil.copytree(FIXTURE / "qlinear_fixture", site / "qlinear_fixture")
    info = site / "qlinear_fixture_provider-9.9.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: qlinear-fixture-provider\nVersion: 9.9.0\n")
    (info / "entry_points.txt").write_text("[qlinear]\nfixture = qlinear_fixture\nfixture_broken = qlinear_fixture.broken\n")
    monkeypatch.syspath_prepend(str(site))
    registry_mod.reset_registry()
    try:
        rc, out, _ = run(capsys, "doctor")
        assert rc == 0
        assert "fixture_broken" in out and "SKIPPED" in out and "libqlinear_fixture_kernels.so" in out
        assert "fixture.FixtureMPLinearKernel" in out and "9.9.0" in out
        rc, _, _ = run(capsys, "doctor", "--strict")
        assert rc == 1
    finally:
        for m in [m for m in sys.modules if m.startswith("qlinear_fixture")]:
            del sys.modules[m]
        registry_mod.reset_registry()


# ---- explain -----------------------------------------------------------------------------------
def test_explain_prints_the_decision(capsys):
    rc, out, _ = run(capsys, "explain", "w4a16-g128", "--n", "512", "--k", "256")
    want = qlinear.select(cli.scheme_config("w4a16-g128", 512, 256)).kernel.full_name()
    assert rc == 0 and "MPLinearLayerConfig" in out and "group_size=128" in out
    assert f"=> {want}" in out and "selected" in out
    assert "no mp kernel is registered" not in out


def test_explain_json_platform_and_flags(capsys):
    rc, out, _ = run(capsys, "explain", "fp8-block", "--platform", "sm100", "--json")
    d = json.loads(out)
    assert rc == 0 and "cc=10.0" in d["platform"] and d["selected"]
    rc, out, _ = run(capsys, "explain", "nvfp4", "--disable", "Emulation*", "--json")
    d = json.loads(out)
    if d["selected"] is None:  # emulation was the only nvfp4 kernel here
        assert rc == 1 and any("disabled" in (r["reason"] or "") for r in d["kernels"])


def test_explain_bad_scheme_names_the_field(capsys):
    rc, _, err = run(capsys, "explain", "int3-magic")
    assert rc == 2 and "scheme" in err and "int3-magic" in err


def test_cli_and_quantlinear_share_one_scheme_grammar(capsys):
    """One parser: the CLI's names are QuantLinear's (w4a16-asym used to work in one only)."""
    from qlinear import nn

    assert cli.scheme_config is nn.scheme_config and cli._scheme_config is nn.scheme_config
    assert set(nn.SCHEMES) <= set(cli.known_schemes()) and set(cli.SCHEME_HELP) <= set(cli.known_schemes())
    rc, out, _ = run(capsys, "explain", "w4a16-asym", "--n", "512", "--k", "256", "--json")
    assert rc == 0 and "weight_type=uint4," in json.loads(out)["config"] and "zero_points=True" in out
    q = nn.QuantLinear.from_linear(torch.nn.Linear(256, 512).bfloat16(), "w4a16-asym")
    assert q.config == cli.scheme_config("w4a16-asym", 512, 256, "bf16") and q.config.zero_points


# ---- verify ------------------------------------------------------------------------------------
def test_verify_passes_here(capsys):
    rc, out, _ = run(capsys, "verify")
    assert "PASS" in out and "emulation.EmulationMPLinearKernel" in out
    assert rc == 0, out


def test_verify_reports_a_wrong_kernel_and_exits_1(private_registry, monkeypatch, capsys):
    private_registry.add_provider(_module("qlinear_wrong", [WrongInt8Kernel]), "wrong")
    rows, unusable = cli.verify_rows(["int8"], registry=private_registry)
    bad = [r for r in rows if r["kernel"] == "wrong.WrongInt8Kernel"]
    assert bad and all(r["status"] == "FAIL" and r["error"] > r["tolerance"] for r in bad)
    assert any(u["kernel"] == "fakegpu.NeedsGpuInt8Kernel" and "cc>=90" in u["reason"] for u in unusable)
    monkeypatch.setattr(registry_mod, "_registry", private_registry)
    rc, out, _ = run(capsys, "verify", "--family", "int8", "--kernel", "wrong.*")
    assert rc == 1 and "FAIL" in out and "relative error" in out


# ---- bench -------------------------------------------------------------------------------------
def test_time_calls_and_rotation_helpers():
    calls = []
    t = B.time_calls(lambda i: calls.append(i), "cpu", warmup=2, max_time=0.01, min_iters=5)
    assert t.iters >= 5 and t.median_us >= 0 and calls[:3] == [0, 1, 2]  # call numbers rotate
    assert B.copies_needed(16 << 20, 96 << 20, 6, 64) == 6
    assert B.copies_needed(8 << 20, 96 << 20, 6, 64) == 12
    assert B.copies_needed(1024, 96 << 20, 6, 64) == 64
    assert all(x.abs().sum() > 0 for x in B.make_inputs(4, 64, 3, torch.bfloat16, "cpu"))


def test_bench_tiny_shape_writes_json_and_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out_dir = tmp_path / "res"
    rc, out, _ = run(capsys, "bench", "--n", "256", "--k", "256", "--m", "1,4", "--out", str(out_dir),
                     "--schemes", "int8-dynamic,w4a16-g128", "--max-time", "0.02", "--max-copies", "6",
                     "--bandwidth", "20", "--no-progress")
    assert rc == 0, out
    data = json.loads((out_dir / "bench-cpu-N256K256.json").read_text())
    assert data["n"] == 256 and data["k"] == 256 and data["ms"] == [1, 4]
    m = data["machine"]
    assert m["cpu"] and m["torch"] == torch.__version__ and m["torch_threads"] >= 1 and m["date"]
    assert [r["m"] for r in data["baseline"]] == [1, 4] and all(r["median_us"] > 0 for r in data["baseline"])
    assert {s["scheme"] for s in data["schemes"]} == {"int8-dynamic", "w4a16-g128"}
    for s in data["schemes"]:
        assert s["results"], s
        for r in s["results"]:
            assert r["median_us"] > 0 and r["floor_us"] > 0 and r["copies"] == 6
            assert r["rel_err_vs_fp32"] < 0.2  # the quantized layer still computes the same linear map
    png = (out_dir / "bench-cpu-N256K256.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "torch.F.linear[bf16] (baseline)" in out and "memory floor" in out


def test_bench_kernel_filter_and_bad_args(tmp_path, capsys):
    rc, out, _ = run(capsys, "bench", "--n", "128", "--k", "128", "--m", "2", "--out", str(tmp_path),
                     "--schemes", "mxfp8", "--exclude", "emulation.*", "--max-time", "0.01", "--no-plot",
                     "--bandwidth", "20", "--max-copies", "6")
    data = json.loads((tmp_path / "bench-cpu-N128K128.json").read_text())
    assert rc == 0 and data["baseline"]
    skipped = {s["kernel"]: s["reason"] for s in data["schemes"][0]["skipped"]}
    assert skipped.get("emulation.EmulationMxfp8LinearKernel") == "excluded by --exclude"
    with pytest.raises(SystemExit):
        cli.main(["bench", "--m", "0,x"])


def test_bench_without_matplotlib_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    rc, _, err = run(capsys, "bench", "--n", "64", "--k", "64", "--m", "1", "--out", str(tmp_path),
                      "--schemes", "int8-dynamic")
    assert rc == 2 and "matplotlib" in err and "--no-plot" in err


def test_progress_bar_draws_on_stderr():
    import io

    buf = io.StringIO()
    p = B.Progress(4, enabled=True, stream=buf)
    p.update("a")
    p.write("log line")
    p.update("b", 3)
    p.close()
    text = buf.getvalue()
    assert "[#######---------------------] 1/4" in text and "4/4" in text and "log line" in text
