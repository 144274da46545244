"""Stage 10, report: plots of a run's outputs with pandas and matplotlib, no Spark.

``python -m segmentation.report OUTPUT`` writes into ``OUTPUT/report/``:

- ``elbow.png``: WSSSE by K with the chosen K marked, the silhouette beside it;
- ``sizes.png``: customers per segment;
- ``profiles.png``: a heatmap of the centroids in z-units, segment names on the axis;
- ``scatter.png``: a bounded, per-segment sample of customers projected on the two
  principal components of the scaled features, coloured by segment;
- ``migrations.png`` (a run that carries on a lineage): the migration matrix, where the
  previous run's customers went (rows: the previous segments and new customers; columns:
  this run's segments and customers who are gone; colour: share of the row);
- ``predictions.png`` (a run with ``--predict-days``): the backtest's gain chart (the share
  of held-out spend captured by the top customers by expected spend, each model and baseline
  beside the random line) and the calibration by decile of ``p_purchase``;
- ``report.html``: one self-contained page for business users (the plots embedded),
  with the segments' names, sizes and profiles and the run's facts.

It reads only the small outputs and at most ``rows_per_segment`` labels per segment.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import os
import sys
from typing import Mapping, Optional

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.dataset as ds  # noqa: E402

from segmentation.publish import TABLES, is_delta_output  # noqa: E402
from segmentation.read import local_path  # noqa: E402

PLOTS = ("elbow.png", "sizes.png", "profiles.png", "scatter.png")
MIGRATIONS_PLOT = "migrations.png"
PREDICTIONS_PLOT = "predictions.png"
PAGE = "report.html"


def write_report(output: str, rows_per_segment: int = 400, tables: Optional[Mapping[str, str]] = None) -> list[str]:
    """Writes the plots of the run in ``output`` (its manifest and report folder) into ``output/report``;
    returns their paths. ``tables``: where each table's Parquet is, when not ``output/TABLE``."""
    output = local_path(output)
    table = table_paths(output, tables)
    with open(os.path.join(output, "manifest.json"), encoding="utf-8") as handle:
        manifest = json.load(handle)
    elbow = pd.read_parquet(table["elbow"]).sort_values("k")
    profiles = pd.read_parquet(table["profiles"]).sort_values("segment")
    sample = label_sample(table["labels"], profiles["segment"].tolist(), rows_per_segment)
    directory = os.path.join(output, "report")
    os.makedirs(directory, exist_ok=True)
    dimensions = manifest.get("dimensions", manifest["features"])
    paths = [os.path.join(directory, name) for name in PLOTS]
    plot_elbow(elbow, manifest["chosen_k"], paths[0], manifest["k_selection"].get("candidates", []))
    plot_sizes(profiles, paths[1])
    plot_profiles(profiles, dimensions, paths[2])
    plot_scatter(sample, profiles, dimensions, manifest["scaling"], paths[3])
    migrations_path = table["migrations"]
    if os.path.isdir(migrations_path):
        paths.append(os.path.join(directory, MIGRATIONS_PLOT))
        plot_migrations(pd.read_parquet(migrations_path), paths[-1])
    if os.path.isdir(table["predictions_eval"]):
        paths.append(os.path.join(directory, PREDICTIONS_PLOT))
        plot_predictions(pd.read_parquet(table["predictions_eval"]), paths[-1])
    page = os.path.join(directory, PAGE)
    write_page(manifest, profiles, elbow, paths, page)
    return [*paths, page]


def table_paths(output: str, tables: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """Where each table of the run in ``output`` is on the local disk: ``tables`` where given, else ``output/TABLE``."""
    table = {name: local_path(path) for name, path in (tables or {}).items()}
    for name in TABLES:
        table.setdefault(name, os.path.join(output, name))
    return table


def write_page(manifest: dict, profiles: pd.DataFrame, elbow: pd.DataFrame, plots: list[str],
               path: str) -> None:
    """The run as one HTML file with nothing to fetch: plots inline as base64 PNG."""
    features = manifest["features"]
    numeric = [f for f in features if f not in manifest.get("categorical_features", [])]
    e = html.escape
    table = pd.DataFrame({
        "segment": profiles["segment"],
        "name": profiles["segment_name"],
        "customers": profiles["customers"].map("{:,}".format),
        "share": profiles["share"].map("{:.1%}".format),
        **{f"{name} (mean / median)": [
            f"{mean:,.2f} / {median:,.2f}" for mean, median in
            zip(profiles[f"{name}_mean"], profiles[f"{name}_median"])] for name in numeric},
    })
    predictions = manifest.get("predictions")
    if predictions:
        horizon = predictions["horizon_days"]
        table[f"expected active, next {horizon} days"] = profiles["expected_active_customers"].map("{:,.0f}".format)
        table[f"expected revenue, next {horizon} days"] = profiles["expected_revenue"].map("{:,.2f}".format)
    selection = manifest["k_selection"]
    chosen = elbow[elbow["k"] == manifest["chosen_k"]]
    silhouette = chosen["silhouette"].iloc[0] if len(chosen) else None
    facts = [
        ("Run", manifest["run_id"]),
        ("Started (UTC)", manifest["started_at"]),
        ("Input", f"{manifest['input']['path']} ({manifest['input']['format']})"),
        ("Customers read / segmented", f"{manifest['input_rows']:,} / {manifest['labelled_rows']:,}"),
        ("Rows dropped", ", ".join(f"{k}: {v:,}" for k, v in manifest["dropped_rows"].items()) or "none"),
        ("Features", ", ".join(features)),
        ("Segments (K)", f"{manifest['chosen_k']}, chosen by {selection['decided_by']}"
                         f" from K = {int(elbow['k'].min())}..{int(elbow['k'].max())}"),
        ("Why this K", selection["summary"]),
        ("Silhouette at that K", "n/a" if silhouette is None or pd.isna(silhouette) else f"{silhouette:.3f}"),
        ("Model fitted on", f"{manifest['fit_rows']:,} customers"),
        ("Spark", f"{manifest['spark_version']} ({manifest['master']})"),
    ]
    images = "\n".join(
        f'<figure><img alt="{e(os.path.basename(p))}" src="data:image/png;base64,'
        f'{base64.b64encode(open(p, "rb").read()).decode("ascii")}"></figure>'
        for p in plots
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Customer segments: run {e(manifest["run_id"])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
th {{ background: #f3f3f3; }} td:nth-child(2) {{ text-align: left; }}
dl {{ display: grid; grid-template-columns: max-content auto; gap: 4px 16px; }}
dt {{ font-weight: 600; }} img {{ max-width: 100%; }}
</style></head>
<body>
<h1>Customer segments</h1>
<p>{manifest["labelled_rows"]:,} customers in {manifest["chosen_k"]} segments.</p>
<p class="k-choice">{e(selection["summary"])}</p>
<h2>Segments</h2>
{table.to_html(index=False, escape=True, classes="segments", border=0)}
{_lineage_html(manifest.get("lineage"))}
{_drift_html(manifest.get("drift"), manifest.get("migrations"))}
{_predictions_html(predictions)}
<h2>Plots</h2>
{images}
<h2>About this run</h2>
<dl>{"".join(f"<dt>{e(k)}</dt><dd>{e(str(v))}</dd>" for k, v in facts)}</dl>
</body></html>
"""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page)


def _predictions_html(predictions) -> str:
    """The chosen model and how it did on the held-out days, beside the others."""
    if not predictions:
        return ""
    e = html.escape

    def share(value) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    rows = "".join(
        f"<tr><td>{e(r['model'])}{' (chosen)' if r['chosen'] else ''}</td>"
        f"<td>{'n/a' if r['auc'] is None else format(r['auc'], '.3f')}</td><td>{share(r['top_decile_spend_share'])}</td>"
        f"<td>{share(r['purchases_error'])}</td><td>{share(r['spend_error'])}</td></tr>"
        for r in predictions["backtest"])
    return (f"<h2>Next {predictions['horizon_days']} days</h2>\n"
            f"<p class=\"predictions\">Predicted by {e(predictions['model'])} ({e(predictions['decided_by'])}). "
            f"Backtest: fitted on the history before {e(predictions['cutoff'])}, scored on the "
            f"{predictions['customers_at_cutoff']:,} customers known then.</p>\n"
            "<table class=\"backtest\"><tr><th>model</th><th>AUC</th><th>spend in top 10%</th>"
            f"<th>purchases miss</th><th>spend miss</th></tr>{rows}</table>")


def _lineage_html(lineage) -> str:
    """Since the previous run: which segments were found again, which are new, which retired."""
    if not lineage or not lineage.get("previous_run_id"):
        reason = (lineage or {}).get("reason")
        return f"<p class=\"lineage\">{html.escape(reason)}</p>" if reason else ""
    e = html.escape
    kept = ", ".join(f"{p['segment']} {e(p['segment_name'])} (moved {p['distance_z']:.2f} z)" for p in lineage["pairs"])
    retired = ", ".join(f"{r['segment']} {e(r['segment_name'])}" for r in lineage["retired"])
    new = ", ".join(str(n) for n in lineage["new"])
    return (f'<h2>Since the previous run</h2>\n<dl class="lineage">'
            f"<dt>Previous run</dt><dd>{e(lineage['previous_run_id'])}</dd>"
            f"<dt>Found again</dt><dd>{kept or 'none'}</dd>"
            f"<dt>New segments</dt><dd>{new or 'none'}</dd>"
            f"<dt>Retired</dt><dd>{retired or 'none'}</dd></dl>")


def _drift_html(drift, migrations) -> str:
    """Per segment: share before and now, centroid shift; whether the run drifted, and why."""
    if not drift:
        return ""
    e = html.escape
    verdict = ("Drifted: " + "; ".join(drift["reasons"])) if drift["drifted"] else "No drift beyond the limits."
    stability = (migrations or {}).get("stability")
    moved = ("" if stability is None else
             f"<p class=\"stability\">{stability:.1%} of the {migrations['returning_customers']:,} returning "
             f"customers kept their segment; {migrations['new_customers']:,} are new and "
             f"{migrations['gone_customers']:,} are gone.</p>")
    table = pd.DataFrame({
        "segment": [s["segment"] for s in drift["segments"]],
        "name": [s["segment_name"] for s in drift["segments"]],
        "status": [s["status"] for s in drift["segments"]],
        "share before": ["" if s["previous_share"] is None else f"{s['previous_share']:.1%}" for s in drift["segments"]],
        "share now": [f"{s['share']:.1%}" for s in drift["segments"]],
        "centroid shift (z)": ["" if s["centroid_shift_z"] is None else f"{s['centroid_shift_z']:.2f}"
                               for s in drift["segments"]],
    })
    return (f'<h3>Drift</h3>\n<p class="drift">{e(verdict)}</p>\n{moved}\n'
            f'{table.to_html(index=False, escape=True, classes="drift", border=0)}')


def label_sample(labels_path: str, segments: list[int], rows_per_segment: int) -> pd.DataFrame:
    """At most ``rows_per_segment`` labels of each segment, reading only that segment's files.

    The scan reads one small batch at a time, with no read-ahead: by default pyarrow reads
    and decodes several row groups ahead, and ``head`` of the 10M-row labels held 0.6 GiB in
    this process (0.4 GiB this way; 1.4 GiB at 100M rows before).
    """
    dataset = ds.dataset(labels_path, format="parquet", partitioning="hive")
    parts = [
        dataset.scanner(
            filter=ds.field("segment") == segment,
            batch_size=max(1, rows_per_segment),
            batch_readahead=0,
            fragment_readahead=0,
            fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=False),
        ).head(rows_per_segment).to_pandas()
        for segment in segments
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def plot_elbow(elbow: pd.DataFrame, chosen_k: int, path: str, candidates: list[dict] = ()) -> None:
    """WSSSE and silhouette by K side by side; the chosen K circled, the rule's candidates
    marked (filled where the elbow confirmed them)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(elbow["k"], elbow["wssse"], marker="o")
    for confirmed, marker in ((True, "s"), (False, "x")):
        ks = [c["k"] for c in candidates if c["elbow_confirms"] == confirmed]
        if ks:
            shown = elbow[elbow["k"].isin(ks)]
            label = "candidate, elbow confirms" if confirmed else "candidate, elbow does not confirm"
            for axis, column in ((left, "wssse"), (right, "silhouette")):
                axis.scatter(shown["k"], shown[column], marker=marker, s=70, color="tab:orange", zorder=3,
                             label=label)
    chosen = elbow[elbow["k"] == chosen_k]
    left.scatter(chosen["k"], chosen["wssse"], s=180, facecolors="none", edgecolors="red", linewidths=2,
                 label=f"chosen K = {chosen_k}")
    left.set(title="Elbow: within-cluster sum of squares", xlabel="K", ylabel="WSSSE (z-units²)")
    left.legend()
    right.plot(elbow["k"], elbow["silhouette"], marker="o", color="tab:green")
    right.axvline(chosen_k, color="red", linestyle="--", label=f"chosen K = {chosen_k}")
    right.set(title="Silhouette (higher is better)", xlabel="K", ylabel="silhouette")
    right.legend()
    for axis in (left, right):
        axis.set_xticks(elbow["k"])
    _save(fig, path)


def plot_sizes(profiles: pd.DataFrame, path: str) -> None:
    fig, axis = plt.subplots(figsize=(8, 0.5 * len(profiles) + 1.5))
    labels = _segment_labels(profiles)
    axis.barh(labels, profiles["customers"], color=_colours(len(profiles)))
    for y, (count, share) in enumerate(zip(profiles["customers"], profiles["share"])):
        axis.text(count, y, f" {count:,} ({share:.0%})", va="center")
    axis.invert_yaxis()
    axis.set(title="Customers per segment", xlabel="customers")
    axis.margins(x=0.25)
    _save(fig, path)


def plot_profiles(profiles: pd.DataFrame, features: list[str], path: str) -> None:
    z = profiles[[f"{name}_centroid_z" for name in features]].to_numpy()
    fig, axis = plt.subplots(figsize=(1.6 * len(features) + 4, 0.6 * len(profiles) + 2))
    limit = max(1.0, float(np.abs(z).max()))
    image = axis.imshow(z, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    axis.set_xticks(range(len(features)), features, rotation=20, ha="right")
    axis.set_yticks(range(len(profiles)), _segment_labels(profiles))
    for (row, col), value in np.ndenumerate(z):
        axis.text(col, row, f"{value:+.2f}", ha="center", va="center", fontsize=9)
    fig.colorbar(image, ax=axis, label="centroid (z-units)")
    axis.set_title("Segment profiles: centroids in standard deviations from the mean")
    _save(fig, path)


def plot_migrations(migrations: pd.DataFrame, path: str) -> None:
    """The migration matrix: share of each row (a previous segment, or new customers) by where
    its customers are now (a segment of this run, or gone), with the counts written in."""
    rows = migrations.assign(
        origin=[migration_label(n, s, "new customers") for n, s in zip(migrations["from_segment"], migrations["from_segment_name"])],
        target=[migration_label(n, s, "gone") for n, s in zip(migrations["to_segment"], migrations["to_segment_name"])],
    )
    origins = _by_number(rows["origin"].unique(), "new customers")
    targets = _by_number(rows["target"].unique(), "gone")
    share = rows.pivot_table(index="origin", columns="target", values="share", aggfunc="sum").reindex(
        index=origins, columns=targets).fillna(0.0)
    count = rows.pivot_table(index="origin", columns="target", values="customers", aggfunc="sum").reindex(
        index=origins, columns=targets).fillna(0).astype(int)
    fig, axis = plt.subplots(figsize=(1.5 * len(targets) + 4, 0.6 * len(origins) + 2.5))
    image = axis.imshow(share.to_numpy(), cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    axis.set_xticks(range(len(targets)), targets, rotation=20, ha="right")
    axis.set_yticks(range(len(origins)), origins)
    for (row, col), value in np.ndenumerate(share.to_numpy()):
        if count.iat[row, col]:
            axis.text(col, row, f"{value:.0%}\n{count.iat[row, col]:,}", ha="center", va="center", fontsize=8,
                      color="white" if value > 0.6 else "black")
    fig.colorbar(image, ax=axis, label="share of the row")
    axis.set(xlabel="this run", ylabel="previous run", title="Where the previous run's customers went")
    _save(fig, path)


def plot_predictions(evaluation: pd.DataFrame, path: str) -> None:
    """The backtest: a gain chart per model and baseline, and the calibration of p_purchase."""
    fig, (gain_axis, calibration_axis) = plt.subplots(1, 2, figsize=(12, 4.8))
    for row in evaluation.itertuples():
        label = f"{row.model}{' (chosen)' if row.chosen else ''}"
        gain = list(row.gain)
        share = np.linspace(0, 1, len(gain) + 1)
        gain_axis.plot(share * 100, [0.0, *gain], marker="o", markersize=3, label=label,
                       linewidth=2.5 if row.chosen else 1.2)
        if row.calibration_predicted is not None:
            calibration_axis.plot(list(row.calibration_predicted), list(row.calibration_actual), marker="o",
                                  label=label, linewidth=2.5 if row.chosen else 1.2)
    gain_axis.plot([0, 100], [0, 1], color="grey", linestyle=":", label="random")
    gain_axis.set(xlabel="top % of customers by expected spend", ylabel="share of held-out spend",
                  title=f"Gain over the held-out {int(evaluation['horizon_days'].iloc[0])} days")
    calibration_axis.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    calibration_axis.set(xlabel="predicted p_purchase (decile mean)", ylabel="share who bought",
                         title="Calibration by decile")
    for axis in (gain_axis, calibration_axis):
        axis.legend(fontsize=8)
    _save(fig, path)


def migration_label(number, name, empty: str) -> str:
    """A migration's end as shown: ``"3: name"``, or ``empty`` (new customers, gone) where it has no segment."""
    return empty if pd.isna(number) else f"{int(number)}: {name}"


def _by_number(labels, last: str) -> list[str]:
    """``"3: name"`` labels by segment number, ``last`` after them."""
    return sorted(labels, key=lambda v: (v == last, 0 if v == last else int(v.split(":")[0])))


def dimension_values(sample: pd.DataFrame, dimensions: list[str], scaling: dict) -> np.ndarray:
    """The sample in the model's z-units, each dimension as the model computes it before scaling:
    a feature after its transforms (log1p, clip at fitted bounds), or 1/0 for one category."""
    columns = []
    for name in dimensions:
        spec = scaling[name]
        raw = sample[spec.get("feature", name)]
        category = spec.get("category")
        if category is None:
            value = raw.to_numpy(dtype=float)
            for step in spec.get("steps", []):
                value = np.log1p(value) if step[0] == "log1p" else np.clip(value, step[1], step[2])
        elif category == "(other)":
            known = [scaling[d]["category"] for d in dimensions
                     if scaling[d].get("feature") == spec["feature"] and scaling[d]["category"] != "(other)"]
            value = (~raw.isin(known)).to_numpy(dtype=float)
        else:
            value = (raw == category).to_numpy(dtype=float)
        columns.append((value - spec["mean"]) / spec["std"] if spec["std"] else np.zeros(len(value)))
    return np.column_stack(columns) if columns else np.zeros((len(sample), 0))


def plot_scatter(sample: pd.DataFrame, profiles: pd.DataFrame, features: list[str],
                 scaling: dict, path: str) -> None:
    fig, axis = plt.subplots(figsize=(8, 6))
    centroids = profiles[[f"{name}_centroid_z" for name in features]].to_numpy()
    if len(sample):
        points = dimension_values(sample, features, scaling)
        basis, axes_names = projection(points, features)
        colours = _colours(len(profiles))
        for i, (segment, label) in enumerate(zip(profiles["segment"], _segment_labels(profiles))):
            mine = points[sample["segment"].to_numpy() == segment] @ basis
            axis.scatter(mine[:, 0], mine[:, 1], s=8, alpha=0.5, color=colours[i], label=label)
        projected = centroids @ basis
        axis.scatter(projected[:, 0], projected[:, 1], marker="X", s=160, c="black", label="centroids")
        axis.set(xlabel=axes_names[0], ylabel=axes_names[1])
        axis.legend(fontsize=8, loc="best")
    axis.set_title("Customers by segment (sample, 2-D projection of scaled features)")
    _save(fig, path)


def projection(points: np.ndarray, features: list[str]) -> tuple[np.ndarray, list[str]]:
    """The two principal axes of the sample (or the features themselves when there are two)."""
    if points.shape[1] == 1:
        return np.array([[1.0, 0.0]]), [features[0], ""]
    if points.shape[1] == 2:
        return np.eye(2), [f"{features[0]} (z)", f"{features[1]} (z)"]
    centred = points - points.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    explained = singular**2 / max(float((singular**2).sum()), 1e-12)
    return vt[:2].T, [f"PC{i + 1} ({explained[i]:.0%} of variance)" for i in range(2)]


def _segment_labels(profiles: pd.DataFrame) -> list[str]:
    return [f"{s}: {n}" for s, n in zip(profiles["segment"], profiles["segment_name"])]


def _colours(n: int) -> list:
    palette = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [palette(i % palette.N) for i in range(n)]


def _save(fig, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m segmentation.report", description=__doc__.splitlines()[0])
    parser.add_argument("output", help="a published OUTPUT directory of the segment job")
    parser.add_argument("--rows-per-segment", type=int, default=400)
    args = parser.parse_args(argv)
    folder, tables = args.output, None
    if is_delta_output(args.output):  # the last run its runs table names: its own files and artifacts
        from segmentation.delta import latest_run

        run = latest_run(args.output)
        folder = run["artifacts"]
        tables = {part: f"{args.output.rstrip('/')}/{part}/{run['run_id']}" for part in TABLES}
    if not os.path.exists(os.path.join(folder, "manifest.json")):
        print(f"error: {args.output} is not a segmentation output (no manifest.json)", file=sys.stderr)
        return 2
    for path in write_report(folder, args.rows_per_segment, tables):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
