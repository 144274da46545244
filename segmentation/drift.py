"""Stage 8c, drift: how far the segments moved since the previous run of the lineage.

From the two runs' profiles alone (K rows each; no pass over the customers), per segment:
customers and share now and before, the change of share (in points of the whole, 0.05 = 5
points), the centroid shift in the previous run's z-units (the distance the matching used), and
per model dimension the change of its mean (original units; for a category, of its share).

The run has drifted when a segment found again moved more than ``drift.centroid_shift_z`` or
its share changed by more than ``drift.share_change``, or (with ``drift.new_or_retired``) a
segment is new or retired. A drifted run logs one warning line; with ``drift.fail_on_drift``
(``--fail-on-drift``) it publishes nothing and the job exits with EXIT_DRIFT (3).
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from segmentation.config import DriftConfig
from segmentation.errors import DriftError
from segmentation.features import Scaling
from segmentation.label import SEGMENT, SEGMENT_NAME
from segmentation.lineage import PreviousRun
from segmentation.profile import dimension_means

log = logging.getLogger(__name__)


def measure_drift(
    profiles: list[dict[str, Any]], scaling: Scaling, previous: Optional[PreviousRun], lineage: dict[str, Any],
    config: DriftConfig,
) -> Optional[dict[str, Any]]:
    """The manifest's ``drift``; None when the run starts a lineage."""
    if previous is None:
        return None
    before = {s.number: s for s in previous.segments}
    shift = {pair["segment"]: pair["distance_z"] for pair in lineage["pairs"]}
    segments, reasons = [], []
    for row in sorted(profiles, key=lambda r: r[SEGMENT]):
        number, old = int(row[SEGMENT]), before.get(int(row[SEGMENT]))
        means = dimension_means(row, scaling.features)
        entry = {
            "segment": number, "segment_name": row[SEGMENT_NAME], "status": "kept" if old else "new",
            "customers": int(row["customers"]), "previous_customers": old.customers if old else None,
            "share": float(row["share"]), "previous_share": old.share if old else None,
            "share_change": float(row["share"]) - old.share if old else None,
            "centroid_shift_z": shift.get(number) if old else None,
            "mean_shift": {d: _change(v, old.means.get(d)) for d, v in means.items()} if old else {},
        }
        segments.append(entry)
        if not old:
            if config.new_or_retired:
                reasons.append(f"segment {number} {row[SEGMENT_NAME]!r} is new")
            continue
        if entry["centroid_shift_z"] > config.centroid_shift_z:
            reasons.append(f"segment {number} {row[SEGMENT_NAME]!r} moved {entry['centroid_shift_z']:.2f} z "
                           f"(limit {config.centroid_shift_z})")
        if abs(entry["share_change"]) > config.share_change:
            reasons.append(f"segment {number} {row[SEGMENT_NAME]!r} share {old.share:.1%} -> {entry['share']:.1%} "
                           f"(limit ±{config.share_change:.1%})")
    for retired in lineage["retired"]:
        old = before[retired["segment"]]
        segments.append({
            "segment": old.number, "segment_name": old.name, "status": "retired", "customers": 0,
            "previous_customers": old.customers, "share": 0.0, "previous_share": old.share,
            "share_change": -old.share, "centroid_shift_z": None, "mean_shift": {},
        })
        if config.new_or_retired:
            reasons.append(f"segment {old.number} {old.name!r} retired")
    return {
        "drifted": bool(reasons),
        "reasons": reasons,
        "thresholds": {"centroid_shift_z": config.centroid_shift_z, "share_change": config.share_change,
                       "new_or_retired": config.new_or_retired},
        "previous_run_id": previous.run_id,
        "segments": sorted(segments, key=lambda s: s["segment"]),
    }


def enforce_drift(drift: Optional[dict[str, Any]], config: DriftConfig) -> None:
    """One warning line for a drifted run; with ``fail_on_drift`` a DriftError (nothing is published)."""
    if not drift or not drift["drifted"]:
        return
    summary = f"the segments drifted since run {drift['previous_run_id']}: {'; '.join(drift['reasons'])}"
    if config.fail_on_drift:
        raise DriftError(f"{summary}; nothing was published (--fail-on-drift)")
    log.warning("drift: %s", summary)


def _change(now: Optional[float], before: Optional[float]) -> Optional[float]:
    return None if now is None or before is None else float(now) - float(before)
