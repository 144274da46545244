"""K-means inside one Spark task: the sweep's engine for a sample that fits in a task.

The elbow sweep runs on a bounded sample (50,000 rows by default). On that size a
spark.ml ``KMeans.fit`` is almost all fixed cost: a dozen Spark jobs for k-means||
initialisation and one per Lloyd iteration, each of them scheduling tasks that
finish in milliseconds. So the sweep fans the K range out as Spark tasks instead:
the sample is broadcast to one task per K, and each task runs every seed of its K
here, in numpy, and returns only the best run's centres, sizes and cost.

The algorithm is the one scikit-learn's ``KMeans`` runs: greedy k-means++
initialisation (2 + ln K candidates per centre, keeping the one that lowers the cost
most), then Lloyd iterations until the centres move less than ``tol`` times the mean
variance of the features, an empty cluster taking the point farthest from its centre.
Everything is vectorised over rows: no Python loop runs per row.

The silhouette is Spark's ``ClusteringEvaluator`` silhouette (squared Euclidean
distance, each cluster summarised by its size, sum and sum of squared norms), on
a seeded subset of the rows.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class Run:
    """The best k-means run of one K."""

    k: int
    seed: int
    wssse: float
    iterations: int
    sizes: list[int]
    centers: np.ndarray  # (k, d)
    labels: np.ndarray  # (n,)
    runs: int


def run_seed(seed: int, run: int, k: int) -> int:
    """The seed of run ``run`` of K = ``k``: the same in both sweep engines."""
    return seed + 1009 * run + k


def squared_distances(x: np.ndarray, x_sq: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """(n, k) squared Euclidean distances; ``x_sq`` is each row's squared norm."""
    d = x_sq[:, None] - 2.0 * (x @ centers.T) + np.einsum("ij,ij->i", centers, centers)[None, :]
    return np.maximum(d, 0.0, out=d)


def cluster_sums(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(k, d) sum of the rows of each cluster."""
    return np.stack([np.bincount(labels, weights=x[:, j], minlength=k) for j in range(x.shape[1])], axis=1)


def kmeans_plus_plus(x: np.ndarray, x_sq: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, with 2 + ln k trials per centre)."""
    n = len(x)
    trials = 2 + int(math.log(k))
    centers = np.empty((k, x.shape[1]))
    centers[0] = x[rng.integers(n)]
    closest = squared_distances(x, x_sq, centers[:1])[:, 0]
    potential = closest.sum()
    for c in range(1, k):
        if potential <= 0.0:  # fewer distinct rows than k: any row will do
            centers[c] = x[rng.integers(n)]
            continue
        picks = np.searchsorted(np.cumsum(closest), rng.random(trials) * potential)
        picks = np.minimum(picks, n - 1)
        candidate = np.minimum(closest[:, None], squared_distances(x, x_sq, x[picks]))
        potentials = candidate.sum(axis=0)
        best = int(np.argmin(potentials))
        centers[c] = x[picks[best]]
        closest, potential = candidate[:, best], potentials[best]
    return centers


def lloyd(
    x: np.ndarray, x_sq: np.ndarray, centers: np.ndarray, max_iter: int, tol: float
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Lloyd iterations from ``centers``; returns (centers, labels, wssse, iterations)."""
    k = len(centers)
    iterations = 0
    for iterations in range(1, max_iter + 1):
        distances = squared_distances(x, x_sq, centers)
        labels = distances.argmin(axis=1)
        counts = np.bincount(labels, minlength=k)
        sums = cluster_sums(x, labels, k)
        moved = centers.copy()
        filled = counts > 0
        moved[filled] = sums[filled] / counts[filled, None]
        if not filled.all():  # an empty cluster takes the rows farthest from their centres
            own = distances[np.arange(len(x)), labels]
            far = np.argsort(own)[::-1][: int((~filled).sum())]
            moved[~filled] = x[far]
        shift = float(((moved - centers) ** 2).sum())
        centers = moved
        if shift <= tol:
            break
    distances = squared_distances(x, x_sq, centers)
    labels = distances.argmin(axis=1)
    wssse = float(distances[np.arange(len(x)), labels].sum())
    return centers, labels, wssse, iterations


def best_run(x: np.ndarray, k: int, seeds: list[int], max_iter: int, tol: float) -> Run:
    """k-means++ and Lloyd once per seed; the run with the lowest WSSSE."""
    x_sq = np.einsum("ij,ij->i", x, x)
    tolerance = tol * float(np.mean(np.var(x, axis=0)))  # scikit-learn's scale for tol
    best: Optional[Run] = None
    for seed in seeds:
        rng = np.random.default_rng(seed)
        centers, labels, wssse, iterations = lloyd(x, x_sq, kmeans_plus_plus(x, x_sq, k, rng), max_iter, tolerance)
        if best is None or wssse < best.wssse:
            sizes = np.bincount(labels, minlength=k).tolist()
            best = Run(k, seed, wssse, iterations, sizes, centers, labels, len(seeds))
    assert best is not None
    return best


def silhouette(x: np.ndarray, labels: np.ndarray, k: int) -> Optional[float]:
    """Spark ``ClusteringEvaluator``'s squared-Euclidean silhouette of ``x`` labelled ``labels``.

    For a row, the mean squared distance to a cluster's rows is |x|^2 - 2 x.S/n + Q/n, with
    n, S and Q the cluster's size, sum and sum of squared norms; the row's own cluster is
    scaled by n / (n - 1) to leave the row out. None with fewer than two non-empty clusters.
    """
    counts = np.bincount(labels, minlength=k).astype(float)
    if (counts > 0).sum() < 2:
        return None
    x_sq = np.einsum("ij,ij->i", x, x)
    sums = cluster_sums(x, labels, k)
    squares = np.bincount(labels, weights=x_sq, minlength=k)
    present = counts > 0
    safe = np.where(present, counts, 1.0)
    mean_distance = x_sq[:, None] - 2.0 * (x @ sums.T) / safe + (squares / safe)[None, :]
    rows = np.arange(len(x))
    own_size = counts[labels]
    own = mean_distance[rows, labels] * own_size / np.maximum(own_size - 1.0, 1.0)
    other = mean_distance.copy()
    other[:, ~present] = np.inf
    other[rows, labels] = np.inf
    neighbour = other.min(axis=1)
    score = np.where(
        own < neighbour, 1.0 - own / np.where(neighbour == 0, 1.0, neighbour),
        np.where(own > neighbour, neighbour / np.where(own == 0, 1.0, own) - 1.0, 0.0),
    )
    score[own_size == 1] = 0.0
    return float(score.mean())


def sweep_task(
    x: np.ndarray, k: int, seeds: list[int], max_iter: int, tol: float, silhouette_rows: int, sample_seed: int
) -> dict:
    """One task of the sweep: every seed of ``k`` on the rows ``x``; the best run as a result row.

    The rows are put in a canonical order first, so the result does not depend on the order
    in which the shuffle delivered them; the silhouette is on ``silhouette_rows`` of them,
    drawn by ``sample_seed`` (the same rows for every K).
    """
    started = time.monotonic()
    x = np.ascontiguousarray(x[np.lexsort(x.T[::-1])])
    run = best_run(x, k, seeds, max_iter, tol)
    some = np.arange(len(x))
    if len(x) > silhouette_rows:
        some = np.sort(np.random.default_rng(sample_seed).choice(len(x), silhouette_rows, replace=False))
    return {
        "k": k,
        "seed": run.seed,
        "wssse": run.wssse,
        "iterations": run.iterations,
        "sizes": run.sizes,
        "centers": run.centers.tolist(),
        "silhouette": silhouette(x[some], run.labels[some], k),
        "runs": run.runs,
        "seconds": time.monotonic() - started,
    }


def partition_fitter(seed: int, first_run: int, runs: int, max_iter: int, tol: float, silhouette_rows: int):
    """The ``mapInPandas`` function of the sweep: a partition holds the fit rows joined to its K
    (columns ``k`` and ``z``, the scaled vector as an array), one K per partition, though a
    partition with several is fitted per K all the same. The seeds are those of runs
    ``first_run`` .. ``first_run + runs - 1``, numbered as spark.ml's sweep numbers them."""

    def fit(batches):
        import pandas as pd

        parts = [batch for batch in batches if len(batch)]
        if not parts:
            return
        rows = pd.concat(parts, ignore_index=True)
        for k, group in rows.groupby("k", sort=True):
            k = int(k)
            x = np.stack(group["z"].to_numpy()).astype(np.float64)
            seeds = [run_seed(seed, run, k) for run in range(first_run, first_run + runs)]
            yield pd.DataFrame([sweep_task(x, k, seeds, max_iter, tol, silhouette_rows, seed)])

    return fit


def started_worker(batches):
    """``elbow.start_workers``' task: a worker with this module (and numpy, pandas) imported."""
    import pandas as pd

    for _ in batches:
        pass
    yield pd.DataFrame({"ready": [1]})
