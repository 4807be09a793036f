"""Results as data: ``RunResult.to_pandas()``, ``.to_arviz()`` and the HTML Jupyter shows."""

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import physml_lang
from physml_lang.diagnostics import PhysmlError
from physml_lang.runtime import frames
from physml_lang.runtime.driver import RunResult

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PNG = bytes.fromhex("89504e470d0a1a0a") + b"not really an image"


def observable(mean: float, stderr: float, tau: float) -> dict:
    return {"mean": mean, "stderr": stderr, "tau_int": tau}


def scan_result(traces: bool = True, files: list[Path] | None = None) -> RunResult:
    """A hand-built sampling run: 3 temperatures, 2 observables, 2 chains of 50 draws."""
    temperatures = [1.5, 2.0, 2.5]
    rows = [{"T": t, "energy": observable(-2 + t / 2, 0.01, 1.5),
             "abs_m": observable(1 - t / 4, 0.02, 3.0), "acceptance": 0.1 * t, "r_hat": 1.01}
            for t in temperatures]  # fmt: skip
    summary = {"run": "scan", "model": "Ising", "params": {"L": 4}, "seed": 0,
               "scan": {"T": temperatures}, "rows": rows}  # fmt: skip
    rng = np.random.default_rng(0)
    chains = {"energy": rng.normal(size=(3, 2, 50)), "abs_m": rng.normal(size=(3, 2, 50))}
    return RunResult(summary, None, files or [], chains if traces else {})


def test_to_pandas_spreads_observables_into_columns():
    pd = pytest.importorskip("pandas")
    frame = scan_result().to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["T", "energy", "energy_stderr", "energy_tau_int", "abs_m",
                                   "abs_m_stderr", "abs_m_tau_int", "acceptance", "r_hat"]  # fmt: skip
    assert len(frame) == 3
    assert frame["T"].tolist() == [1.5, 2.0, 2.5]
    assert frame["energy"].tolist() == pytest.approx([-1.25, -1.0, -0.75])
    assert frame["abs_m_tau_int"].tolist() == [3.0, 3.0, 3.0]
    assert frame.attrs["run"] == "scan" and frame.attrs["params"] == {"L": 4}


def test_to_pandas_keeps_rows_of_other_shapes():
    pytest.importorskip("pandas")
    rows = [{"epoch": 1, "loss": 0.5, "log_likelihood": {"mean": -20.0, "stderr": 0.3}},
            {"epoch": 2, "loss": 0.4, "log_likelihood": {"mean": -19.0, "stderr": None}}]
    frame = RunResult({"run": "fit", "rows": rows}).to_pandas()
    assert list(frame.columns) == ["epoch", "loss", "log_likelihood", "log_likelihood_stderr"]
    assert frame["log_likelihood"].tolist() == [-20.0, -19.0]
    assert RunResult({"run": "empty", "rows": []}).to_pandas().empty


def test_to_arviz_has_chain_draw_point_dims_and_the_scanned_values():
    az = pytest.importorskip("arviz")
    idata = scan_result().to_arviz()
    energy = idata.posterior["energy"]
    assert energy.dims == ("chain", "draw", "point")
    assert energy.shape == (2, 50, 3)
    assert idata.posterior["point"].values.tolist() == [1.5, 2.0, 2.5]
    # row r of the trace is scan point r
    expected = scan_result().traces["energy"][1]
    np.testing.assert_array_equal(energy.sel(point=2.0).values, expected)
    ess = az.ess(idata)["energy"].values
    rhat = az.rhat(idata)["abs_m"].values
    assert ess.shape == (3,) and np.all(ess > 20)  # independent normal draws: ESS near 100
    assert rhat.shape == (3,) and np.all(np.abs(rhat - 1) < 0.1)
    with warnings.catch_warnings():  # arviz 0.x calls a matplotlib API deprecated in 3.11
        warnings.simplefilter("ignore", DeprecationWarning)
        axes = az.plot_trace(idata, var_names=["energy"])  # the trace plot ArviZ users read
    assert axes.shape == (1, 2)
    axes[0, 0].figure.clf()


def test_to_arviz_with_two_scanned_parameters_indexes_the_points():
    pytest.importorskip("arviz")
    rows = [{"T": t, "h": h, "m": observable(0.5, 0.1, 1.0)} for t in (1.0, 2.0) for h in (0, 1)]
    summary = {"run": "grid", "scan": {"T": [1.0, 2.0], "h": [0, 1]}, "rows": rows}
    result = RunResult(summary, traces={"m": np.zeros((4, 2, 10))})
    posterior = result.to_arviz().posterior
    assert posterior["point"].values.tolist() == [0, 1, 2, 3]
    assert posterior["T"].values.tolist() == [1.0, 1.0, 2.0, 2.0]
    assert posterior["h"].values.tolist() == [0, 1, 0, 1]


def test_to_arviz_without_chains_is_a_diagnostic():
    with pytest.raises(PhysmlError) as info:
        scan_result(traces=False).to_arviz()
    assert info.value.diagnostics[0].code == "P800"
    assert "sampling run" in info.value.render() and "to_pandas" in info.value.render()


def test_missing_data_extra_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    monkeypatch.setitem(sys.modules, "arviz", None)
    result = scan_result()
    with pytest.raises(ImportError, match=r"pip install 'physml\[data\]'"):
        result.to_pandas()
    with pytest.raises(ImportError, match=r"to_arviz\(\) needs arviz.*physml\[data\]"):
        result.to_arviz()
    html = result._repr_html_()  # a plain table without pandas
    assert "<table" in html and "<th>energy_stderr</th>" in html and "<td>-1.25</td>" in html


def test_html_has_the_table_and_the_plots_inlined(tmp_path):
    pytest.importorskip("pandas")
    (tmp_path / "plot.png").write_bytes(PNG)
    (tmp_path / "notes.txt").write_text("not shown")
    result = scan_result(files=[tmp_path / "plot.png", tmp_path / "notes.txt"])
    html = result._repr_html_()
    assert "run scan of model Ising: 3 row(s)" in html
    assert "<table" in html and "energy_tau_int" in html
    assert html.count("<img") == 1 and 'src="data:image/png;base64,iVBORw0KGg' in html


def test_html_escapes_values():
    result = RunResult({"run": "<b>", "rows": [{"note": "<script>"}]})
    assert "<script>" not in frames.result_html(result)
    assert "<script>" not in frames._plain_table(result.rows)


# ---------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def ising_run(tmp_path_factory):
    program = physml_lang.load(EXAMPLES / "ising2d.phys")
    return program.run(sets={"L": 4, "sweeps": 50, "burn_in": 10, "chains": 4},
                       out=tmp_path_factory.mktemp("ising"), seed=0)  # fmt: skip


def test_real_run_to_pandas_and_html(ising_run):
    pytest.importorskip("pandas")
    frame = ising_run.to_pandas()
    assert len(frame) == 21 and frame["T"].iloc[0] == 1.5
    for name in ("energy_per_site", "abs_magnetization", "specific_heat", "binder"):
        assert {name, f"{name}_stderr", f"{name}_tau_int"} <= set(frame.columns)
    assert frame["energy_per_site"].iloc[0] == ising_run.rows[0]["energy_per_site"]["mean"]
    html = ising_run._repr_html_()
    assert "<table" in html and "data:image/png;base64," in html


def _traces_or_xfail(result: RunResult) -> None:
    if not result.traces:
        pytest.xfail("the sample task does not fill RunResult.traces yet (the driver's part)")


def test_real_run_to_arviz(ising_run):
    az = pytest.importorskip("arviz")
    _traces_or_xfail(ising_run)
    idata = ising_run.to_arviz()
    assert "energy_per_site" in idata.posterior or "energy" in idata.posterior
    first = next(iter(idata.posterior.data_vars.values()))
    assert first.dims == ("chain", "draw", "point") and first.sizes["chain"] == 4
    assert idata.posterior["point"].values.tolist()[:2] == [1.5, 1.6]
    assert np.all(np.isfinite(az.rhat(idata).to_array().values))


@pytest.mark.slow
def test_arviz_diagnostics_agree_with_physml(tmp_path):
    """ArviZ's ESS and R-hat against physml's own tau_int and r_hat: same order of magnitude."""
    az = pytest.importorskip("arviz")
    program = physml_lang.load(EXAMPLES / "ising2d.phys")
    result = program.run(sets={"L": 8, "sweeps": 400, "burn_in": 100, "chains": 8,
                               "T": 2.5}, out=tmp_path, seed=0)  # fmt: skip
    _traces_or_xfail(result)
    idata = result.to_arviz()
    row = result.rows[0]
    for name in idata.posterior.data_vars:
        if not isinstance(row.get(name), dict) or not row[name].get("tau_int"):
            continue
        draws = idata.posterior[name].sizes["chain"] * idata.posterior[name].sizes["draw"]
        ess_physml = draws / (2 * row[name]["tau_int"])
        ess_arviz = float(az.ess(idata, var_names=[name])[name].values[0])
        assert ess_physml / 5 < ess_arviz < ess_physml * 5, (name, ess_arviz, ess_physml)
    rhat = az.rhat(idata).to_array().values
    assert np.all(np.abs(rhat - 1) < 0.2) and abs(row["r_hat"] - 1) < 0.2
