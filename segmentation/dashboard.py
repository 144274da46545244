"""Stage 11, dashboard: one self-contained interactive page of a run, ``report/dashboard.html``.

Plotly draws it: its JavaScript runtime ships inside the Python package and is written inline,
so the page opens from disk, from an object store's static hosting or a wiki attachment, with
no network and no server. A small script of ours (``assets/dashboard.js``) draws the panels
from the run's numbers, embedded once as JSON, and links them: choosing a segment (its card or
the selector) focuses every panel on it, a second choice compares two.

What the page holds does not grow with the customers:

- the small tables whole (profiles, elbow, migrations, the predictions' backtest);
- ``rows_per_segment`` customers of each segment for the map and the distributions;
- of each segment, the ``top_customers`` customers by each column the top-customers table can
  rank by, and for a run with predictions the ``top_customers`` most valuable customers at high
  churn risk. Those come from one streaming scan of the labels with pyarrow, a segment's files
  at a time, one bounded batch in memory (``select_k_unstable`` per batch, not a sort).

``python -m segmentation.dashboard OUTPUT`` writes it for a published output (a segment run's
or a score run's).
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import re
import sys
from importlib import resources
from typing import Any, Mapping, Optional

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from segmentation.label import DISTANCE, SEGMENT, SEGMENT_NAME
from segmentation.predict import PREDICTION_COLUMNS
from segmentation.publish import model_manifest
from segmentation.read import local_path
from segmentation.report import dimension_values, migration_label, projection, table_paths

PAGE = "dashboard.html"
# Rows per batch of the labels scan: what the scan holds in memory at once.
SCAN_BATCH_ROWS = 262_144
# The facts that set a segment apart on its card: its dimensions furthest from the mean.
CARD_FACTS = 3
AT_RISK = "high"  # the churn_risk band whose valuable customers the predictions panel lists


def write_dashboard(output: str, rows_per_segment: int = 400, top_customers: int = 100,
                    tables: Optional[Mapping[str, str]] = None) -> str:
    """Writes ``output/report/dashboard.html`` for the run in ``output`` (its manifest there);
    ``tables``: where each table's Parquet is, when not ``output/TABLE``. Returns its path."""
    output = local_path(output)
    with open(os.path.join(output, "manifest.json"), encoding="utf-8") as handle:
        manifest = json.load(handle)
    data = dashboard_data(manifest, table_paths(output, tables), rows_per_segment, top_customers)
    directory = os.path.join(output, "report")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, PAGE)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page(data))
    return path


def dashboard_data(manifest: dict, table: Mapping[str, str], rows_per_segment: int,
                   top_customers: int) -> dict[str, Any]:
    """Everything the page shows, as plain JSON-able data: bounded whatever the customers."""
    scoring = manifest.get("kind") == "score"
    id_col = manifest["id_col"]
    features = list(manifest["features"])
    categorical = set(manifest.get("categorical_features", []))
    numeric = [f for f in features if f not in categorical]
    scaling = manifest.get("scaling")
    if scaling is None and manifest.get("model"):  # a score run: the segment run's, from its manifest beside the model
        scaling = (model_manifest(manifest["model"]) or {}).get("scaling")
    dimensions = list(manifest.get("dimensions") or (list(scaling) if scaling else numeric))
    labels = ds.dataset(table["labels"], format="parquet", partitioning="hive")
    present = set(labels.schema.names)
    predicted = "p_purchase" in present
    rank_columns = [c for c in dict.fromkeys((*PREDICTION_COLUMNS[:3], "monetary", *numeric, "frequency",
                                               "avg_order_value", "tenure_days", "recency_days", DISTANCE))
                    if c in present]
    shown = list(dict.fromkeys([id_col, SEGMENT, SEGMENT_NAME, *features, *rank_columns,
                                *(["churn_risk"] if predicted else [])]))
    shown = [c for c in shown if c in present]
    value_col = "monetary" if "monetary" in present else (numeric[0] if numeric else None)

    if scoring:
        segment_numbers = _partition_segments(labels)
        profiles = None
    else:
        profiles = pd.read_parquet(table["profiles"]).sort_values(SEGMENT)
        segment_numbers = [int(s) for s in profiles[SEGMENT]]
    z_of = scaling if scoring and scaling and all(d in scaling for d in dimensions) else None
    scans = {s: scan_segment(labels, s, shown, rank_columns, numeric, value_col, rows_per_segment,
                             top_customers, predicted, (dimensions, z_of) if z_of else None)
             for s in segment_numbers}
    total = sum(scan["customers"] for scan in scans.values())

    segments = []
    for s in segment_numbers:
        scan = scans[s]
        row = profiles[profiles[SEGMENT] == s].iloc[0].to_dict() if profiles is not None else {}
        customers = int(row.get("customers", scan["customers"]))
        entry = {
            "segment": s,
            "name": row.get(SEGMENT_NAME) or scan["name"] or f"segment {s}",
            "customers": customers,
            "share": float(row["share"]) if "share" in row else (customers / total if total else 0.0),
            "means": {f: _number(row.get(f"{f}_mean", scan["means"].get(f))) for f in numeric},
            "revenue": _number(scan["revenue"]) if value_col == "monetary" else None,
        }
        if row:
            entry["centroid_z"] = {d: _number(row.get(f"{d}_centroid_z")) for d in dimensions}
            entry["centroid"] = {d: _number(row.get(f"{d}_centroid", row.get(f"{d}_mean"))) for d in dimensions}
        else:  # a score run: the mean of its scored customers in the model's z-units
            entry["centroid_z"] = scan["mean_z"]
            entry["centroid"] = {d: entry["means"].get(d) for d in dimensions}
        if predicted:
            entry["expected_active_customers"] = _number(row.get("expected_active_customers", scan["p_purchase"]))
            entry["expected_revenue"] = _number(row.get("expected_revenue", scan["expected_spend"]))
        segments.append(entry)
    overall = {f: _weighted_mean([(e["means"][f], e["customers"]) for e in segments]) for f in numeric}
    for entry in segments:
        entry["facts"] = _distinctive(entry, dimensions, overall, scaling)

    sample = pd.concat([scans[s]["sample"] for s in segment_numbers], ignore_index=True) \
        if segment_numbers else pd.DataFrame(columns=shown)
    customer_map = _customer_map(sample, segments, dimensions, scaling, id_col, numeric)
    top = pd.concat([scans[s]["top"] for s in segment_numbers], ignore_index=True) \
        if segment_numbers else pd.DataFrame(columns=shown)
    data: dict[str, Any] = {
        "kind": "score" if scoring else "segment",
        "run": {
            "run_id": manifest["run_id"],
            "started_at": manifest.get("started_at"),
            "input": manifest.get("input", {}).get("path"),
            "customers": int(manifest.get("labelled_rows", total)),
            "k": len(segments),
            "model": manifest.get("model"),
        },
        "id_col": id_col,
        "features": numeric,
        "dimensions": dimensions,
        "segments": segments,
        "samples": _records(sample[[c for c in shown if c in sample.columns]]),
        "map": customer_map,
        "top_customers": {"limit": top_customers, "rank_columns": rank_columns,
                          "rows": _records(top[[c for c in shown if c in top.columns]])},
        "bounds": {"rows_per_segment": rows_per_segment, "top_customers": top_customers},
    }
    if not scoring:
        data["elbow"] = _elbow(pd.read_parquet(table["elbow"]).sort_values("k"), manifest)
        if os.path.isdir(table["migrations"]):
            data["migrations"] = _migrations(pd.read_parquet(table["migrations"]), manifest)
        if manifest.get("drift"):
            data["drift"] = manifest["drift"]
    if predicted:
        at_risk = pd.concat([scans[s]["at_risk"] for s in segment_numbers], ignore_index=True)
        at_risk = at_risk.sort_values(value_col, ascending=False).head(top_customers) if len(at_risk) else at_risk
        facts = manifest.get("predictions") or {}
        data["predictions"] = {
            "horizon_days": facts.get("horizon_days"),
            "model": facts.get("model"),
            "decided_by": facts.get("decided_by"),
            "value_column": value_col,
            "at_risk_band": AT_RISK,
            "at_risk": _records(at_risk[[c for c in shown if c in at_risk.columns]]),
            "at_risk_counts": {str(s): scans[s]["at_risk_customers"] for s in segment_numbers},
            "backtest": _backtest(table["predictions_eval"]),
        }
    return data


def scan_segment(labels: ds.Dataset, segment: int, shown: list[str], rank_columns: list[str],
                 numeric: list[str], value_col: Optional[str], rows_per_segment: int, top: int,
                 predicted: bool, z_units: Optional[tuple[list[str], dict]] = None) -> dict[str, Any]:
    """One streaming pass over a segment's labels: its count, sums, first ``rows_per_segment``
    rows (the sample), top ``top`` rows by each rank column and, with predictions, its most
    valuable customers at high churn risk; with ``z_units`` (dimensions, scaling), the mean of
    its customers in those z-units. Holds one batch and the candidates in memory."""
    scanner = labels.scanner(
        columns=shown, filter=ds.field(SEGMENT) == segment, batch_size=SCAN_BATCH_ROWS,
        batch_readahead=0, fragment_readahead=0,
        fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=False),
    )
    summed = list(dict.fromkeys([*numeric, *(["monetary"] if value_col == "monetary" else []),
                                 *(["p_purchase", "expected_spend"] if predicted else [])]))
    sums = dict.fromkeys(summed, 0.0)
    counts = dict.fromkeys(summed, 0)
    customers, at_risk_customers = 0, 0
    sample_parts: list[pa.Table] = []
    sampled = 0
    top_pool: Optional[pa.Table] = None
    risk_pool: Optional[pa.Table] = None
    name = None
    z_sum = None
    for batch in scanner.to_batches():
        if batch.num_rows == 0:
            continue
        part = pa.Table.from_batches([batch])
        customers += part.num_rows
        if name is None and SEGMENT_NAME in part.column_names:
            name = part.column(SEGMENT_NAME)[0].as_py()
        for c in summed:
            values = part.column(c)
            sums[c] += float(pc.sum(values).as_py() or 0.0)
            counts[c] += len(values) - values.null_count
        if z_units:
            z = dimension_values(part.to_pandas(), *z_units).sum(axis=0)
            z_sum = z if z_sum is None else z_sum + z
        if sampled < rows_per_segment:
            sample_parts.append(part.slice(0, rows_per_segment - sampled))
            sampled += sample_parts[-1].num_rows
        top_pool = _top_rows(part if top_pool is None else pa.concat_tables([top_pool, part]), rank_columns, top)
        if predicted and value_col:
            risky = part.filter(pc.equal(part.column("churn_risk"), AT_RISK))
            at_risk_customers += risky.num_rows
            if risky.num_rows:
                risk_pool = _top_rows(risky if risk_pool is None else pa.concat_tables([risk_pool, risky]),
                                      [value_col], top)
    means = {c: (sums[c] / counts[c] if counts[c] else None) for c in numeric}
    sample = pa.concat_tables(sample_parts).to_pandas() if sample_parts else pd.DataFrame(columns=shown)
    return {
        "customers": customers,
        "name": name,
        "means": means,
        "mean_z": ({d: _number(v / customers) for d, v in zip(z_units[0], z_sum)}
                   if z_units and customers else {}),
        "revenue": sums.get("monetary"),
        "p_purchase": sums.get("p_purchase"),
        "expected_spend": sums.get("expected_spend"),
        "sample": sample.assign(**{SEGMENT: segment}),
        "top": (top_pool.to_pandas() if top_pool is not None else pd.DataFrame(columns=shown)).assign(
            **{SEGMENT: segment}),
        "at_risk": (risk_pool.to_pandas() if risk_pool is not None else pd.DataFrame(columns=shown)).assign(
            **{SEGMENT: segment}),
        "at_risk_customers": at_risk_customers,
    }


def _top_rows(rows: pa.Table, columns: list[str], top: int) -> pa.Table:
    """The rows that are among the ``top`` largest of any of ``columns``, each row once."""
    if rows.num_rows <= top or not columns:
        return rows
    keep = np.unique(np.concatenate([
        pc.select_k_unstable(rows, k=top, sort_keys=[(c, "descending")]).to_numpy() for c in columns]))
    return rows.take(pa.array(keep))


def page(data: dict[str, Any]) -> str:
    """The page: our CSS and script, Plotly's runtime and the run's data, all inline."""
    from plotly.offline import get_plotlyjs

    assets = resources.files("segmentation") / "assets"
    payload = json.dumps(data, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")
    title = (f"Customer segments: scored {data['run']['customers']:,} customers" if data["kind"] == "score"
             else f"Customer segments: run {data['run']['run_id']}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n"
        f"<style>{(assets / 'dashboard.css').read_text(encoding='utf-8')}</style>\n"
        f"<script>{get_plotlyjs()}</script>\n"
        "</head><body>\n"
        f'<script id="dashboard-data" type="application/json">{payload}</script>\n'
        f"<script>{(assets / 'dashboard.js').read_text(encoding='utf-8')}</script>\n"
        "</body></html>\n"
    )


def _customer_map(sample: pd.DataFrame, segments: list[dict], dimensions: list[str], scaling: Optional[dict],
                  id_col: str, numeric: list[str]) -> dict[str, Any]:
    """The sample on two axes: the principal components of the z-units (or the two features),
    with each segment's centroid projected the same way."""
    if scaling and len(sample) and all(d in scaling for d in dimensions):
        points = dimension_values(sample, dimensions, scaling)
        basis, axes = projection(points, dimensions)
        xy = points @ basis
        centroids = np.array([[e["centroid_z"].get(d) or 0.0 for d in dimensions] for e in segments]) @ basis
    elif len(numeric) >= 1 and len(sample):  # no scaling known: the first two features as they are
        columns = numeric[:2] if len(numeric) > 1 else [numeric[0], numeric[0]]
        xy = sample[columns].to_numpy(dtype=float)
        axes = columns
        centroids = np.array([[e["means"].get(c) or 0.0 for c in columns] for e in segments])
    else:
        return {"axes": ["", ""], "x": [], "y": [], "centroids": []}
    return {
        "axes": list(axes),
        "x": [_number(v) for v in xy[:, 0]],
        "y": [_number(v) for v in xy[:, 1]],
        "centroids": [{"segment": e["segment"], "x": _number(c[0]), "y": _number(c[1])}
                      for e, c in zip(segments, centroids)],
    }


def _distinctive(entry: dict, dimensions: list[str], overall: dict, scaling: Optional[dict]) -> list[dict]:
    """The segment's dimensions furthest from the mean, in z-units, said in the user's units."""
    z = {d: v for d, v in entry["centroid_z"].items() if v is not None}
    facts = []
    for d in sorted(z, key=lambda d: -abs(z[d]))[:CARD_FACTS]:
        spec = (scaling or {}).get(d, {})
        category = spec.get("category")
        if category is not None:
            share = entry["centroid"].get(d)
            text = f"{spec.get('feature', d)} = {category}: {share:.0%} of its customers" if share is not None \
                else f"{spec.get('feature', d)} = {category}"
        else:
            mean, everyone = entry["means"].get(d), overall.get(d)
            text = (f"{d}: {_plain(mean)} on average, against {_plain(everyone)} for all customers"
                    if mean is not None and everyone is not None else d)
        facts.append({"dimension": d, "z": z[d], "text": text})
    return facts


def _elbow(elbow: pd.DataFrame, manifest: dict) -> dict[str, Any]:
    selection = manifest["k_selection"]
    return {
        "k": [int(k) for k in elbow["k"]],
        "wssse": [_number(v) for v in elbow["wssse"]],
        "silhouette": [_number(v) for v in elbow["silhouette"]],
        "chosen_k": int(manifest["chosen_k"]),
        "decided_by": selection.get("decided_by"),
        "summary": selection.get("summary"),
        "candidates": [{"k": int(c["k"]), "elbow_confirms": bool(c.get("elbow_confirms"))}
                       for c in selection.get("candidates", [])],
    }


def _migrations(migrations: pd.DataFrame, manifest: dict) -> dict[str, Any]:
    rows = [{"from": migration_label(r.from_segment, r.from_segment_name, "new customers"),
             "to": migration_label(r.to_segment, r.to_segment_name, "gone"),
             "from_segment": None if pd.isna(r.from_segment) else int(r.from_segment),
             "to_segment": None if pd.isna(r.to_segment) else int(r.to_segment),
             "customers": int(r.customers), "share": _number(r.share)} for r in migrations.itertuples()]
    return {"rows": rows, "summary": manifest.get("migrations")}


def _backtest(path: str) -> list[dict]:
    if not os.path.isdir(path):
        return []
    evaluation = pd.read_parquet(path)
    keep = ("model", "chosen", "auc", "top_decile_spend_share", "purchases_error", "spend_error", "gain",
            "calibration_predicted", "calibration_actual")
    return [{k: _json_value(row.get(k)) for k in keep} for row in evaluation.to_dict("records")]


def _partition_segments(labels: ds.Dataset) -> list[int]:
    found = {int(m.group(1)) for f in labels.files if (m := re.search(r"(?:^|/)segment=(-?\d+)/", f))}
    return sorted(found)


def _weighted_mean(pairs: list[tuple[Optional[float], int]]) -> Optional[float]:
    known = [(v, n) for v, n in pairs if v is not None and n]
    weight = sum(n for _, n in known)
    return sum(v * n for v, n in known) / weight if weight else None


def _plain(value: Optional[float]) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def _number(value: Any) -> Optional[float]:
    """A float for JSON: None for missing, NaN or infinite."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _json_value(value: Any) -> Any:
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json_value(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _number(value)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value if isinstance(value, str) else str(value)


def _records(frame: pd.DataFrame) -> dict[str, Any]:
    """A table as columns and rows of JSON values (dates and decimals as text)."""
    return {"columns": list(frame.columns),
            "rows": [[_json_value(v) for v in row] for row in frame.itertuples(index=False, name=None)]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m segmentation.dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("output", help="a published OUTPUT directory of the segment or score job")
    parser.add_argument("--rows-per-segment", type=int, default=400)
    parser.add_argument("--top-customers", type=int, default=100)
    args = parser.parse_args(argv)
    if not os.path.exists(os.path.join(local_path(args.output), "manifest.json")):
        print(f"error: {args.output} is not a segmentation output (no manifest.json)", file=sys.stderr)
        return 2
    print(write_dashboard(args.output, args.rows_per_segment, args.top_customers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
