"""Stage 6b, lineage: the same segments keep their numbers and names from run to run.

A run reads the run it replaces (the one published at OUTPUT) or the one named by
``lineage.previous`` (``--previous PATH``; ``none`` starts a new lineage), and matches its new
segments to the previous ones: an optimal one-to-one assignment of centroids
(``scipy.optimize.linear_sum_assignment``) by Euclidean distance in the *previous* run's scaled
space (a new centroid is taken back to its features' transformed values with this run's scaler,
then scaled by the previous run's). A pair further apart than ``lineage.match_limit_z`` is no
match.

- A matched segment keeps its ``segment`` number and ``segment_name``.
- A new segment gets the next number never used in the lineage (numbers are never reused)
  and its own name (with `` (2)``, ... when a kept segment already has it).
- A previous segment with no match is retired.

The first run of a lineage numbers segments by size (0 is the largest), as before; later
numbers can have gaps and need not follow size. When the previous run's model dimensions differ
(other features or categories), a new lineage starts and the manifest says why; when that run was
named with ``--previous PATH``, it is bad input instead.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from pyspark.sql import DataFrame, SparkSession

from segmentation.config import LineageConfig
from segmentation.errors import InputError, first_line
from segmentation.features import Scaling
from segmentation.label import SEGMENT, SEGMENT_NAME, Segment
from segmentation.profile import dimension_means
from segmentation.publish import MANIFEST, TABLES, is_delta_output
from segmentation.read import is_local_path, local_path

log = logging.getLogger(__name__)

NEW_LINEAGE = "none"


@dataclass(frozen=True)
class PreviousSegment:
    number: int
    name: str
    centroid_z: tuple[float, ...]
    customers: int = 0
    share: float = 0.0
    # Per model dimension the profile's mean (numeric, original units) or share (a category).
    means: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PreviousRun:
    path: str
    run_id: str
    lineage_id: str
    dimensions: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    segments: tuple[PreviousSegment, ...]
    highest_segment: int  # the highest number the lineage has ever given
    id_col: str = ""
    # A Delta output's run: the version of each table it wrote (None: the plain Parquet layout).
    versions: Optional[Mapping[str, int]] = None
    storage_options: Optional[Mapping[str, str]] = None

    def read(self, spark: SparkSession, part: str) -> DataFrame:
        """One of the run's tables (``labels``, ``profiles``, ...) as it was published."""
        return _read_part(spark, self.path, part, self.versions, self.storage_options)


def _read_part(spark: SparkSession, path: str, part: str, versions: Optional[Mapping[str, int]],
               storage_options: Optional[Mapping[str, str]]) -> DataFrame:
    if versions is None:
        return spark.read.parquet(f"{path.rstrip('/')}/{part}")
    from segmentation.delta import read_table

    return read_table(spark, path, part, versions[part], storage_options)


def read_previous(
    spark: SparkSession, config: LineageConfig, output: str, storage_options: Optional[Mapping[str, str]] = None
) -> Optional[PreviousRun]:
    """The run this one follows, or None (a first run, or ``--previous none``).

    Read whole before anything is published (the publish replaces OUTPUT). For a Delta output,
    the last run its ``runs`` table names.
    """
    if config.previous == NEW_LINEAGE:
        return None
    path = config.previous or output
    try:
        text, versions = _published_manifest(spark, path, storage_options)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a Delta output whose runs table cannot be read
        return _unusable(f"previous run {path} cannot be read: {first_line(exc)}", config)
    if text is None:
        if config.previous:
            raise InputError(f"previous run not found: {path} has no {MANIFEST}")
        return None  # nothing published at OUTPUT yet: the first run of a lineage
    try:
        manifest = json.loads(text)
        scaling = manifest["scaling"]
        dimensions = tuple(scaling)
        lineage = manifest.get("lineage") or {}
        profiles = _read_part(spark, path, "profiles", versions, storage_options)
        rows = [row.asDict() for row in profiles.collect()]  # K rows
        segments = tuple(_previous_segment(row, dimensions) for row in sorted(rows, key=lambda r: r[SEGMENT]))
    except Exception as exc:  # noqa: BLE001 - not a segment run's output (a score run's, or older)
        return _unusable(f"previous run {path} is not a segment run's output: {first_line(exc)}", config)
    numbers = [s.number for s in segments]
    return PreviousRun(
        path=path,
        run_id=manifest["run_id"],
        lineage_id=lineage.get("lineage_id") or manifest["run_id"],
        dimensions=dimensions,
        mean=tuple(float(scaling[d]["mean"]) for d in dimensions),
        std=tuple(float(scaling[d]["std"]) for d in dimensions),
        segments=segments,
        highest_segment=int(lineage.get("highest_segment", max(numbers, default=-1))),
        id_col=manifest["id_col"],
        versions=versions,
        storage_options=storage_options,
    )


def _unusable(problem: str, config: LineageConfig) -> None:
    """A previous run that cannot be carried on: bad input when named with --previous, else a new lineage."""
    if config.previous:
        raise InputError(problem)
    log.warning("lineage: %s; a new lineage starts", problem)
    return None


def _previous_segment(row: dict[str, Any], dimensions: tuple[str, ...]) -> PreviousSegment:
    """One row of a previous run's profiles (a KeyError when it is not a segment run's)."""
    means = dimension_means(row, dimensions)
    return PreviousSegment(
        int(row[SEGMENT]), str(row[SEGMENT_NAME]), tuple(float(row[f"{d}_centroid_z"]) for d in dimensions),
        int(row["customers"]), float(row["share"]), {d: float(v) for d, v in means.items() if v is not None},
    )


def carry_identities(
    segments: list[Segment], scaling: Scaling, previous: Optional[PreviousRun], config: LineageConfig, run_id: str
) -> tuple[list[Segment], dict[str, Any]]:
    """The segments renumbered and renamed by the lineage, and the manifest's ``lineage``."""
    facts: dict[str, Any] = {
        "lineage_id": run_id, "previous_run_id": None, "previous_path": None,
        "match_limit_z": config.match_limit_z, "pairs": [], "new": [], "retired": [], "reason": None,
    }
    if previous is not None and previous.dimensions != tuple(scaling.features):
        other = f"the previous run {previous.run_id} has other model dimensions ({', '.join(previous.dimensions)})"
        if config.previous:  # named with --previous: the user expected this run to carry it on
            raise InputError(f"{other} than this run ({', '.join(scaling.features)}); "
                             f"its segments cannot be carried on: pass --previous none to start a new lineage")
        facts["reason"] = f"{other}: a new lineage starts"
        log.warning("lineage: %s", facts["reason"])
        previous = None
    if previous is None:
        facts["new"] = [s.number for s in segments]
        facts["highest_segment"] = max(s.number for s in segments)
        return segments, facts

    facts.update(lineage_id=previous.lineage_id, previous_run_id=previous.run_id, previous_path=previous.path)
    cost = [[_distance(_in_previous_space(s.centroid_z, scaling, previous), p.centroid_z) for p in previous.segments]
            for s in segments]
    matched = {new: old for new, old in _assignment(cost) if cost[new][old] <= config.match_limit_z}
    kept_names = {previous.segments[old].name for old in matched.values()}
    next_number = previous.highest_segment + 1
    carried = []
    for i, segment in enumerate(segments):  # in size order, so new numbers follow size too
        if i in matched:
            old = previous.segments[matched[i]]
            carried.append(dataclasses.replace(segment, number=old.number, name=old.name))
            facts["pairs"].append({"segment": old.number, "segment_name": old.name,
                                   "distance_z": round(cost[i][matched[i]], 6)})
        else:
            carried.append(dataclasses.replace(segment, number=next_number, name=_fresh(segment.name, kept_names)))
            kept_names.add(carried[-1].name)
            facts["new"].append(next_number)
            next_number += 1
    retired = [p for j, p in enumerate(previous.segments) if j not in matched.values()]
    facts["retired"] = [{"segment": p.number, "segment_name": p.name} for p in retired]
    facts["highest_segment"] = next_number - 1
    facts["pairs"].sort(key=lambda pair: pair["segment"])
    log.info("lineage %s: %d segments kept, %d new, %d retired (previous run %s)", facts["lineage_id"],
             len(matched), len(facts["new"]), len(retired), previous.run_id)
    return sorted(carried, key=lambda s: s.number), facts


def _in_previous_space(centroid_z: tuple[float, ...], scaling: Scaling, previous: PreviousRun) -> list[float]:
    """A centroid of this run (z-units) in the previous run's z-units: the same transformed values,
    scaled by the previous run's means and deviations."""
    values = scaling.from_z(list(centroid_z))
    return [(v - m) / s if s else 0.0 for v, m, s in zip(values, previous.mean, previous.std)]


def _distance(a, b) -> float:
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))


def _assignment(cost: list[list[float]]) -> list[tuple[int, int]]:
    """The one-to-one pairs (new, previous) of least total distance (rectangular allowed)."""
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(cost)
    return list(zip(rows.tolist(), cols.tolist()))


def _fresh(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name} ({n})" in taken:
        n += 1
    return f"{name} ({n})"


def _published_manifest(
    spark: SparkSession, path: str, storage_options: Optional[Mapping[str, str]]
) -> tuple[Optional[str], Optional[dict[str, int]]]:
    """The manifest of the run published at ``path`` (None: none there) and, for a Delta output,
    its tables' versions."""
    if is_delta_output(path, storage_options):
        from segmentation.delta import latest_run

        run = latest_run(path, storage_options)
        if run is None:
            return None, None
        return run["manifest"], {part: run.get(f"{part}_version") for part in TABLES if run.get(f"{part}_version") is not None}
    return _read_text(spark, f"{path.rstrip('/')}/{MANIFEST}"), None


def _read_text(spark: SparkSession, path: str) -> Optional[str]:
    """A small text file's content, None when it does not exist (local, or through Spark)."""
    if is_local_path(path):
        local = local_path(path)
        if not os.path.isfile(local):
            return None
        with open(local, encoding="utf-8") as handle:
            return handle.read()
    try:
        rows = spark.read.text(path, wholetext=True).collect()
    except Exception as exc:  # noqa: BLE001 - Spark's "path does not exist"
        if "PATH_NOT_FOUND" in str(exc) or "does not exist" in str(exc):
            return None
        raise
    return rows[0][0] if rows else None
