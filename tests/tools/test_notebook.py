"""Jupyter: ``%load_ext physml_lang``, the ``%%physml`` cell magic, the example notebook."""

from pathlib import Path

import pytest

from physml_lang.diagnostics import PhysmlError

pytest.importorskip("IPython")

from physml_lang.tools.notebook import parse_sets  # noqa: E402  (IPython first)

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "notebooks" / "quickstart.ipynb"

ISING = """
model Ising(L: int = 4) {
    lattice square(L, L, boundary = periodic)
    field s: spin on sites
    energy E = -sum(s[i] * s[j] for (i, j) in bonds)
}
run scan {
    model Ising(L = 4)
    sampler metropolis(chains = 2, sweeps = 20, burn_in = 5)
    scan T in [2.0, 3.0]
    measure energy
}
run hot {
    model Ising(L = 4)
    sampler metropolis(chains = 2, sweeps = 20, burn_in = 5)
    let T = 5.0
    measure energy
}
"""


@pytest.fixture(scope="module")
def shell():
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython()
    ip.run_line_magic("load_ext", "physml_lang")
    return ip


def test_magic_runs_every_run_and_binds_the_last(shell, tmp_path, capsys):
    shell.run_cell_magic("physml", f"--out {tmp_path} --set L=6 --name res", ISING)
    result = shell.user_ns["res"]
    assert result.summary["run"] == "hot" and result.summary["params"]["L"] == 6
    assert (tmp_path / "scan" / "summary.json").is_file()
    assert (tmp_path / "hot" / "summary.json").is_file()


def test_magic_runs_one_run_into_the_default_name(shell, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shell.run_cell_magic("physml", "--run scan --seed 3", ISING)
    result = shell.user_ns["_physml"]
    assert [row["T"] for row in result.rows] == [2.0, 3.0] and result.summary["seed"] == 3
    assert (tmp_path / "runs" / "notebook-scan" / "summary.json").is_file()
    assert "<table" in result._repr_html_()


def test_mistakes_are_located_diagnostics_not_tracebacks(shell, tmp_path, capsys):
    shell.user_ns.pop("_physml", None)
    shell.run_cell_magic("physml", f"--out {tmp_path}", "model X {\n    lattice sqare(4, 4)\n}")
    err = capsys.readouterr().err
    assert "<cell>:2:13: error[P209]: unknown lattice 'sqare'" in err
    assert "did you mean 'square'" in err and "Traceback" not in err
    shell.run_cell_magic("physml", f"--out {tmp_path} --run nope", ISING)
    assert "error[P204]: no run named 'nope'" in capsys.readouterr().err
    shell.run_cell_magic("physml", f"--out {tmp_path} --set L", ISING)
    assert "error[P106]" in capsys.readouterr().err
    assert "_physml" not in shell.user_ns


def test_check_only(shell, capsys):
    shell.run_cell_magic("physml", "--check", ISING)
    out = capsys.readouterr().out
    assert "ok  model Ising" in out and "ok  run scan" in out


def test_set_values_are_read_as_the_command_reads_them():
    assert parse_sets(["L=8", "T=2.5", "start=ordered", "flag=true"]) == {
        "L": 8, "T": 2.5, "start": "ordered", "flag": True}  # fmt: skip
    with pytest.raises(PhysmlError, match="P106"):
        parse_sets(["1x=2"])


def test_example_notebook_executes(tmp_path):
    """The example notebook, run top to bottom by a real kernel (nbclient): no cell errors, and
    the run shows its table and plot."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=120,
                                     resources={"metadata": {"path": str(tmp_path)}})  # fmt: skip
    client.execute()  # raises CellExecutionError on an error output
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("physml-result" in h and "<table" in h and "data:image/png;base64," in h
               for h in html)  # fmt: skip
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "error[P209]: unknown lattice 'sqare'" in text  # the notebook's deliberate mistake
    assert (tmp_path / "runs" / "quickstart" / "summary.json").is_file()
