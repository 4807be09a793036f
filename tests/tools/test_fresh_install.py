"""Fresh-install truth: every example checks without the optional extras, or says in its header
which extra it needs and ``physml check`` names that extra.

The default tests hide the optional packages from a subprocess (a ``sitecustomize`` that marks
them absent); the slow test installs the repository without extras into a new virtual
environment and checks every example there."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.phys"))
OPTIONAL = ("sklearn", "pandas", "arviz", "pygls", "IPython", "mkdocs", "pygments")

# Marks each optional package absent: ``import x`` raises ModuleNotFoundError and
# ``importlib.util.find_spec(x)`` returns None, as on an install without the extras.
HIDE_OPTIONAL = "import sys\nfor name in {names!r}:\n    sys.modules[name] = None\n"

# ``physml check`` on each file in one process (a process per example would take a minute):
# one JSON line per file with the exit code and what the command printed.
CHECK_ALL = """
import contextlib, io, json, sys
from physml_lang.cli import main
for path in sys.argv[1:]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["check", path])
        except SystemExit as exc:
            code = exc.code
    print(json.dumps({"path": path, "code": code, "out": out.getvalue(), "err": err.getvalue()}))
"""


def header_extras(path: Path) -> set[str]:
    """The extras an example's header comment names (``pip install 'physml[examples]'``)."""
    extras: set[str] = set()
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            break
        for group in re.findall(r"physml\[([\w,\s-]+)\]", line):
            extras.update(e.strip() for e in group.split(","))
    return extras


def hidden_extras_env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "hide_optional"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HIDE_OPTIONAL.format(names=OPTIONAL))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site),
           os.environ.get("PYTHONPATH")])), "OMP_NUM_THREADS": "1"}  # fmt: skip
    return env


def check_all(python: str | Path, env: dict[str, str], cwd: Path) -> list[dict]:
    done = subprocess.run([str(python), "-c", CHECK_ALL, *map(str, EXAMPLES)], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def assert_passes_or_names_its_extra(results: list[dict]) -> None:
    assert len(results) == len(EXAMPLES)
    for result in results:
        path = Path(result["path"])
        if result["code"] == 0:
            continue
        extras = header_extras(path)
        named = set(re.findall(r"pip install 'physml\[(\w+)\]'", result["err"]))
        assert "Traceback" not in result["err"], result["err"]
        assert extras and named and named <= extras, (
            f"{path.name} fails its check without the optional extras, and its header does not "
            f"name the extra the error names (header: {sorted(extras)}):\n{result['err']}")


def test_header_extras_are_read():
    assert header_extras(ROOT / "examples" / "rbm_digits.phys") == {"examples"}
    assert header_extras(ROOT / "examples" / "ising2d.phys") == set()


def test_every_example_checks_without_the_optional_extras(tmp_path):
    results = check_all(sys.executable, hidden_extras_env(tmp_path), ROOT)
    assert_passes_or_names_its_extra(results)
    digits = next(r for r in results if r["path"].endswith("rbm_digits.phys"))
    assert digits["code"] == 1  # scikit-learn is hidden: the example says what to install
    assert "rbm_digits.phys:" in digits["err"] and "error[P600]" in digits["err"]
    assert "pip install 'physml[examples]'" in digits["err"]


def test_torch_interop_example_runs_without_the_extras(tmp_path):
    script = ROOT / "examples" / "python" / "energy_in_torch.py"
    done = subprocess.run([sys.executable, str(script)], env=hidden_extras_env(tmp_path),
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("ok  ") == 4 and "FAIL" not in done.stdout


def test_notebooks_name_their_extra():
    for notebook in (ROOT / "examples" / "notebooks").glob("*.ipynb"):
        first = json.loads(notebook.read_text())["cells"][0]
        assert "pip install 'physml[notebook]'" in "".join(first["source"]), notebook.name


# ---------------------------------------------------------------- a clean environment

NETWORK_FAILURES = ("Could not find a version", "No matching distribution", "Failed to establish",
                    "Temporary failure in name resolution", "Network is unreachable",
                    "ConnectionError", "Max retries exceeded")  # fmt: skip


def pip_install(pip: Path, *args: str) -> None:
    done = subprocess.run([str(pip), "install", "--quiet", *args], capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    if done.returncode != 0:
        output = done.stdout + done.stderr
        if any(failure in output for failure in NETWORK_FAILURES):
            pytest.skip(f"pip cannot reach a package index for {args}: {output[-300:]}")
        raise AssertionError(f"pip install {args} failed:\n{output[-3000:]}")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_every_example_checks_in_a_clean_venv(tmp_path):
    """``pip install .`` (no extras) into a new venv, then ``physml check`` on every example:
    each passes or names the extra its header names."""
    source = tmp_path / "physml"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "runs", "build", "*.egg-info", "__pycache__", ".pytest_cache", "site"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    pip_install(bin_dir / "pip", "torch==2.13.0")
    pip_install(bin_dir / "pip", str(source))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["OMP_NUM_THREADS"] = "1"
    python = bin_dir / "python"
    for module in OPTIONAL:  # the core install brings none of the extras
        found = subprocess.run([str(python), "-c", f"import importlib.util as u; "
                                f"print(u.find_spec({module!r}) is not None)"],
                               env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert found.stdout.strip() == "False", f"a core install brings {module}"
    assert_passes_or_names_its_extra(check_all(python, env, tmp_path))
    done = subprocess.run([str(bin_dir / "physml"), "check", str(ROOT / "examples" /
                          "rbm_digits.phys")], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 1 and "pip install 'physml[examples]'" in done.stderr
    assert "Traceback" not in done.stderr
