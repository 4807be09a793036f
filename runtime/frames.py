"""Results as data: a run's rows as a pandas DataFrame, its sampled chains as ArviZ
InferenceData, and the HTML Jupyter shows (pandas and arviz are the 'data' extra: imported
when asked for, so that a run does not load them)."""

from __future__ import annotations

import base64
import html
from types import ModuleType
from typing import Any

import numpy as np

from physml_lang.diagnostics import Diagnostic, PhysmlError

DATA_EXTRA = "pip install 'physml[data]'"
MAX_IMAGE_BYTES = 8 * 2**20  # plots larger than this are linked by name, not inlined


class MissingExtra(ModuleNotFoundError):
    """An optional package a feature needs is not installed; the message names the extra."""


def _missing(module: str, feature: str) -> MissingExtra:
    return MissingExtra(f"{feature} needs {module}, which is not installed: {DATA_EXTRA}",
                        name=module)  # fmt: skip


def _pandas() -> ModuleType:
    """pandas, or :class:`MissingExtra` naming the extra (imported when first asked for)."""
    try:
        import pandas
    except ImportError:
        raise _missing("pandas", "to_pandas()") from None
    return pandas


def _arviz() -> ModuleType:
    try:
        import arviz
    except ImportError:
        raise _missing("arviz", "to_arviz()") from None
    return arviz


def flat_row(row: dict[str, Any]) -> dict[str, Any]:
    """One row with each observable ``{"mean", "stderr", "tau_int"}`` spread into the columns
    NAME, NAME_stderr and NAME_tau_int; plain values as they are."""
    flat: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, dict) and "mean" in value:
            flat[name] = value["mean"]
            flat.update({f"{name}_{key}": v for key, v in value.items() if key != "mean"})
        else:
            flat[name] = value
    return flat


def to_pandas(result: Any):
    """The rows as a DataFrame: one row per scan point; ``attrs`` keep the run's name, model,
    parameters and seed."""
    pd = _pandas()
    frame = pd.DataFrame([flat_row(row) for row in result.rows])
    frame.attrs.update({key: result.summary[key] for key in ("run", "model", "params", "seed")
                        if key in result.summary})  # fmt: skip
    return frame


def scan_variables(result: Any) -> list[str]:
    """The scanned parameters, in the order the run declares them."""
    scan = result.summary.get("scan")
    return list(scan) if isinstance(scan, dict) else []


def to_arviz(result: Any):
    """The sampled chains as InferenceData: one posterior variable per observable with dims
    (chain, draw, point), ``point`` carrying the scanned value (e.g. T) when one parameter is
    scanned, its index otherwise (each scanned parameter is then a coordinate along it)."""
    if not result.traces:
        name = result.summary.get("run", "this run")
        raise PhysmlError(Diagnostic(
            "P800", f"to_arviz() needs the sampled chains of a sampling run; run {name} kept none",
            hint="sample a lattice model (run ... { sampler ...; measure ... }), or use "
                 "to_pandas() for the rows"))  # fmt: skip
    az = _arviz()
    posterior = {}
    for name, trace in result.traces.items():
        values = np.asarray(trace)
        if values.ndim != 3:
            raise ValueError(f"trace {name!r} has shape {values.shape}; (rows, chains, draws) "
                             "expected")  # fmt: skip
        posterior[name] = np.moveaxis(values, 0, -1)  # (chains, draws, rows)
    points = next(iter(posterior.values())).shape[-1]
    scanned = [v for v in scan_variables(result) if v not in ("chain", "draw", "point")]
    rows = result.rows[:points]
    if len(scanned) == 1 and len(rows) == points:
        point = [row.get(scanned[0]) for row in rows]
    else:
        point = list(range(points))
    idata = az.from_dict(posterior=posterior, coords={"point": point},
                         dims=dict.fromkeys(posterior, ["point"]))  # fmt: skip
    if len(scanned) > 1 and len(rows) == points:
        idata.posterior = idata.posterior.assign_coords(
            {v: ("point", [row.get(v) for row in rows]) for v in scanned})
    idata.posterior.attrs.update({k: str(result.summary[k]) for k in ("run", "model")
                                  if k in result.summary})  # fmt: skip
    return idata


# ---------------------------------------------------------------- HTML


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return html.escape(str(value))


def _plain_table(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(row.get(c, ''))}</td>" for c in columns)
                   + "</tr>" for row in rows)  # fmt: skip
    return f'<table class="physml-rows"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def rows_html(result: Any) -> str:
    """The rows as an HTML table: pandas' where it is installed, a plain one otherwise."""
    rows = [flat_row(row) for row in result.rows]
    try:
        frame = to_pandas(result)
    except MissingExtra:
        return _plain_table(rows)
    return frame.to_html(index=False, float_format=lambda x: f"{x:.6g}", na_rep="")


def _images_html(result: Any) -> str:
    images = []
    for path in result.files:
        if path.suffix.lower() != ".png" or not path.is_file():
            continue
        name = html.escape(path.name)
        if path.stat().st_size > MAX_IMAGE_BYTES:
            images.append(f"<p>plot: {name}</p>")
            continue
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        images.append(f'<img alt="{name}" title="{name}" src="data:image/png;base64,{data}"/>')
    return "".join(images)


def result_html(result: Any) -> str:
    """What Jupyter shows for a RunResult: a caption, the rows as a table and the PNG plots
    inlined."""
    summary = result.summary
    caption = f"run {summary.get('run', '?')}"
    if summary.get("model"):
        caption += f" of model {summary['model']}"
    caption += f": {len(result.rows)} row(s)"
    if result.out is not None:
        caption += f", written to {result.out}"
    return (f'<div class="physml-result"><p><b>{html.escape(caption)}</b></p>'
            f"{rows_html(result)}{_images_html(result)}</div>")  # fmt: skip
