"""Stage 4, sweep K: the distributed elbow computation, by one of two engines.

``tasks`` (kmeans on a bounded sample, the default): one Spark job whose tasks are the
K values. The fit rows are broadcast to one task per K, which runs every seed of its K
in numpy (``task_kmeans``: k-means++ and Lloyd, scikit-learn's algorithm) and returns
the best run's centres, sizes, WSSSE and silhouette: K rows come back, never the data.
Why: on a sample a spark.ml fit is almost all fixed cost (about 1.7 s a fit on 2
cores, a dozen Spark jobs each), so 9 K with 2 seeds took 30 s; a task computes 10 seeds
of its K in 0.3 to 1.3 s. The chosen K's centres become a spark.ml
``KMeansModel`` (``kmeans_model``), so the saved model and the labelling pass are
spark.ml's as before.

``spark_ml`` (any algorithm, and fit rows too many for one task): every (K, seed)
spark.ml fit is submitted from a thread pool, so the cluster runs
several fits side by side while each one's driver-side steps (k-means||
initialisation, convergence checks) would otherwise leave executors idle.
The WSSSE comes from each model's training summary: no extra pass over the data.

k-means|| lands in a poor local minimum for some seeds (on the planted data here,
one seed in three to eight at the planted K), which puts a bump in the curve that
misleads any elbow rule. So each K keeps the best of ``seeds_per_k`` fits, and a K
whose WSSSE sits visibly above the convex shape of its neighbours (it falls less
into K than out of it, by more than 2% of the curve's height) is fitted again with
fresh seeds, for up to ``repair_rounds`` rounds.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional

import math

from pyspark.ml.clustering import BisectingKMeans, GaussianMixture, KMeans, KMeansModel
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from segmentation.config import ElbowConfig
from segmentation.features import SCALED_VECTOR
from segmentation.session import is_connect, ship_package, thread_setup
from segmentation.task_kmeans import partition_fitter, run_seed, started_worker

log = logging.getLogger(__name__)

PREDICTION = "prediction"


@dataclass
class ElbowPoint:
    """One K of the elbow: the best of its seeds."""

    k: int
    wssse: float
    rows: int
    silhouette: Optional[float]
    sizes: list[int]
    iterations: int
    seconds: float  # wall seconds of all this K's fits and its silhouette
    seed: int
    model: Any  # the fitted spark.ml clustering model (None from the tasks engine: see kmeans_model)
    centers: list[list[float]]  # cluster centres (Gaussian means for gmm), z-units
    fits: int = 1  # seeds tried for this K
    log_likelihood: Optional[float] = None  # gmm only
    bic: Optional[float] = None  # gmm only: -2 log-likelihood + parameters * ln(rows)

    def to_row(self, chosen_k: int) -> dict:
        return {
            "k": self.k,
            "wssse": self.wssse,
            "rows": self.rows,
            "silhouette": self.silhouette,
            "sizes": self.sizes,
            "iterations": self.iterations,
            "seconds": round(self.seconds, 3),
            "chosen": self.k == chosen_k,
            "log_likelihood": self.log_likelihood,
            "bic": self.bic,
        }


def estimator(algorithm: str, k: int, seed: int, cfg: ElbowConfig):
    """The spark.ml estimator of ``algorithm`` for K clusters."""
    common = dict(k=k, seed=seed, maxIter=cfg.max_iter, featuresCol=SCALED_VECTOR, predictionCol=PREDICTION)
    if algorithm == "kmeans":
        return KMeans(**common, tol=cfg.tol, initMode=cfg.init_mode, initSteps=cfg.init_steps)
    if algorithm == "bisecting":
        return BisectingKMeans(**common)
    if algorithm == "gmm":
        return GaussianMixture(**common, tol=cfg.tol)
    raise ValueError(f"unknown algorithm {algorithm!r}")


def fit_seeds(
    sweep_data: DataFrame,
    k: int,
    cfg: ElbowConfig,
    seed: int,
    rows: int,
    first_run: int = 0,
    algorithm: str = "kmeans",
) -> ElbowPoint:
    """Fits K with ``cfg.seeds_per_k`` seeds (runs from ``first_run`` on) and keeps the best:
    the lowest WSSSE, or for the Gaussian mixture the highest log-likelihood."""
    started = time.monotonic()
    best: Optional[ElbowPoint] = None
    for run in range(first_run, first_run + cfg.seeds_per_k):
        this_seed = run_seed(seed, run, k)
        model = estimator(algorithm, k, this_seed, cfg).fit(sweep_data)
        point = _point(algorithm, model, k, this_seed, rows, sweep_data)
        if best is None or _loss(point) < _loss(best):
            best = point
    assert best is not None
    best.seconds, best.fits = time.monotonic() - started, cfg.seeds_per_k
    return best


def _loss(point: ElbowPoint) -> float:
    return -point.log_likelihood if point.log_likelihood is not None else point.wssse


def _point(algorithm: str, model, k: int, seed: int, rows: int, data: DataFrame) -> ElbowPoint:
    summary = model.summary
    sizes = [int(s) for s in summary.clusterSizes]
    point = ElbowPoint(k=k, wssse=0.0, rows=rows, silhouette=None, sizes=sizes,
                       iterations=int(summary.numIter), seconds=0.0, seed=seed, model=model, centers=[])
    if algorithm != "gmm":
        point.wssse = float(summary.trainingCost)
        point.centers = [list(map(float, c)) for c in model.clusterCenters()]
        return point
    means = model.gaussiansDF.select("mean").collect()  # K rows
    point.centers = [list(map(float, row["mean"])) for row in means]
    point.wssse = wssse(model.transform(data), point.centers)
    point.log_likelihood = float(summary.logLikelihood)
    d = len(point.centers[0])
    parameters = (k - 1) + k * d + k * d * (d + 1) // 2  # weights, means, full covariances
    point.bic = -2.0 * point.log_likelihood + parameters * math.log(rows)
    return point


def wssse(predicted: DataFrame, centers: list[list[float]]) -> float:
    """Sum of squared distances of each row to the centre of its predicted cluster: one pass."""
    z = vector_to_array(F.col(SCALED_VECTOR))
    squared = None
    for cluster, center in enumerate(centers):
        distance = sum((z[i] - F.lit(c)) * (z[i] - F.lit(c)) for i, c in enumerate(center))
        squared = (F.when(F.col(PREDICTION) == cluster, distance) if squared is None
                   else squared.when(F.col(PREDICTION) == cluster, distance))
    return float(predicted.agg(F.sum(squared)).first()[0] or 0.0)


BUMP_TOLERANCE = 0.02


def bumps(points: list[ElbowPoint]) -> list[int]:
    """The K whose WSSSE breaks the convex, falling shape of the curve: likely poor local minima."""
    w = [p.wssse for p in points]
    height = max(w[0] - w[-1], 0.0) or max(w) or 1.0
    suspects = []
    for i in range(1, len(w)):
        drop_in = w[i - 1] - w[i]
        drop_out = w[i] - w[i + 1] if i + 1 < len(w) else 0.0
        if drop_in < 0 or drop_out > drop_in + BUMP_TOLERANCE * height:
            suspects.append(points[i].k)
    return suspects


def silhouette(point: ElbowPoint, silhouette_data: DataFrame) -> Optional[float]:
    """Squared-Euclidean silhouette of the point's model on ``silhouette_data``.

    None when the model has fewer than two non-empty clusters (known from its training
    summary, so no pass is spent checking).
    """
    if sum(1 for size in point.sizes if size > 0) < 2:
        return None
    evaluator = ClusteringEvaluator(
        featuresCol=SCALED_VECTOR, predictionCol=PREDICTION, metricName="silhouette"
    )
    return float(evaluator.evaluate(point.model.transform(silhouette_data)))


def engine_for(cfg: ElbowConfig, algorithm: str, rows: int) -> str:
    """``elbow.engine``, with auto resolved: tasks for kmeans on at most ``task_max_rows`` rows."""
    if cfg.engine != "auto":
        return cfg.engine
    return "tasks" if algorithm == "kmeans" and rows <= cfg.task_max_rows else "spark_ml"


def start_workers(spark: SparkSession, cfg: ElbowConfig, algorithm: str, cores: int) -> None:
    """Starts the tasks engine's Python workers in the background, while the JVM reads and cleans.

    The sweep's first tasks otherwise pay for the workers' start (the daemon, pyspark's worker,
    pandas, pyarrow, numpy, this package) and the JVM's first Arrow exchange: about 2 s here,
    measured as a cold 9-task mapInPandas job of 3.2 s against 1.3 s after a warm-up. One tiny
    job of ``cores`` tasks, in a thread of its own (its own FAIR pool on classic Spark), so
    idle workers are waiting when the sweep starts (spark.python.worker.reuse, the default).
    Where the engine cannot be tasks, nothing is started; a failure here is only logged.
    """
    if algorithm != "kmeans" or cfg.engine == "spark_ml":
        return
    name_pool = thread_setup(spark)

    def warm() -> None:
        try:
            name_pool("start-workers")
            ship_package(spark)
            spark.range(cores, numPartitions=cores).mapInPandas(started_worker, "ready INT").collect()
        except Exception as exc:  # noqa: BLE001 - an optimisation; the sweep reports real failures
            log.debug("starting the Python workers early failed: %s", exc)

    threading.Thread(target=warm, name="start-workers", daemon=True).start()


def sweep(
    spark: SparkSession,
    sweep_data: DataFrame,
    ks: list[int],
    cfg: ElbowConfig,
    seed: int,
    rows: int,
    algorithm: str = "kmeans",
    engine: str = "spark_ml",
) -> list[ElbowPoint]:
    """Fits every K in ``ks`` on the (cached) ``sweep_data`` of ``rows`` rows; returns points by K.

    The silhouette of each K is on at most ``cfg.silhouette_rows`` of the rows. Refits of K
    that bump the WSSSE curve are for the k-means family; a Gaussian mixture does not
    minimise WSSSE, so its curve is left as fitted."""
    if engine == "tasks":
        return _sweep_in_tasks(spark, sweep_data, ks, cfg, seed, rows)
    silhouette_data = sweep_data
    if rows > cfg.silhouette_rows:
        silhouette_data = sweep_data.sample(cfg.silhouette_rows / rows, seed=seed)
    pools = thread_setup(spark)

    def fit_k(k: int, first_run: int = 0) -> ElbowPoint:
        pools(f"elbow-k{k}")
        return fit_seeds(sweep_data, k, cfg, seed, rows, first_run, algorithm)

    workers = min(cfg.parallelism, len(ks))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="elbow") as pool:
        # Largest K first: those fits take longest, so the pool drains evenly.
        by_k = {p.k: p for p in pool.map(fit_k, sorted(ks, reverse=True))}
        if algorithm != "gmm":
            _repair(by_k, cfg.repair_rounds, cfg.seeds_per_k,
                    lambda suspects, first_run: list(pool.map(lambda k: fit_k(k, first_run), suspects)))

        def with_silhouette(point: ElbowPoint) -> ElbowPoint:
            pools(f"elbow-k{point.k}")
            started = time.monotonic()
            point.silhouette = silhouette(point, silhouette_data)
            point.seconds += time.monotonic() - started
            _log_point(point, "seconds")
            return point

        points = list(pool.map(with_silhouette, [by_k[k] for k in sorted(by_k, reverse=True)]))
    return sorted(points, key=lambda p: p.k)


def _log_point(point: ElbowPoint, seconds: str) -> None:
    """The sweep's one progress line per K; ``seconds`` names what its seconds measure."""
    log.info(
        "elbow k=%d wssse=%.6g silhouette=%s iterations=%d fits=%d %s=%.1f",
        point.k, point.wssse, "n/a" if point.silhouette is None else f"{point.silhouette:.4f}",
        point.iterations, point.fits, seconds, point.seconds,
    )


def _repair(by_k: dict[int, ElbowPoint], rounds: int, seeds_per_k: int, refit) -> None:
    """Refits, with fresh seeds, the K whose WSSSE bumps the curve, for up to ``rounds`` rounds;
    ``refit(ks, first_run)`` returns their new points. Each K keeps its better point."""
    for round_ in range(1, rounds + 1):
        suspects = bumps([by_k[k] for k in sorted(by_k)])
        if not suspects:
            return
        log.info("elbow: refitting k=%s with fresh seeds (round %d)", suspects, round_)
        for again in refit(suspects, round_ * seeds_per_k):
            kept = by_k[again.k]
            better = again if again.wssse < kept.wssse else kept
            better.fits, better.seconds = kept.fits + again.fits, kept.seconds + again.seconds
            by_k[again.k] = better


TASK_RESULT_SCHEMA = (
    "k INT, seed LONG, wssse DOUBLE, iterations INT, sizes ARRAY<LONG>, centers ARRAY<ARRAY<DOUBLE>>, "
    "silhouette DOUBLE, runs INT, seconds DOUBLE"
)


def _sweep_in_tasks(
    spark: SparkSession, sweep_data: DataFrame, ks: list[int], cfg: ElbowConfig, seed: int, rows: int
) -> list[ElbowPoint]:
    """The tasks engine: one Spark job per round, one task per K (see the module's doc)."""
    ship_package(spark)  # its tasks run this package's numpy k-means on the server's workers
    shipped = sweep_data.select(vector_to_array(F.col(SCALED_VECTOR)).alias("z"))

    def fit(some_ks: list[int], first_run: int) -> list[ElbowPoint]:
        # One partition per K, holding that K joined to every fit row (the bounded sample is
        # broadcast): no shuffle, and no two K share a task. Hash-partitioning the K values
        # instead put 5 of K = 2..10 into one of 9 partitions.
        # The largest K first: its task is the longest, and tasks start in partition order.
        largest_first = sorted(some_ks, reverse=True)
        grid = spark.range(len(some_ks), numPartitions=len(some_ks)).select(
            F.element_at(F.array(*[F.lit(k) for k in largest_first]), (F.col("id") + 1).cast("int")).alias("k")
        )
        fitter = partition_fitter(seed, first_run, cfg.task_seeds_per_k, cfg.max_iter, cfg.tol, cfg.silhouette_rows)
        results = (
            grid.crossJoin(F.broadcast(shipped))
            .mapInPandas(fitter, TASK_RESULT_SCHEMA)
            .collect()  # one row per K
        )
        return [
            ElbowPoint(
                k=r["k"], wssse=r["wssse"], rows=rows, silhouette=r["silhouette"], sizes=list(r["sizes"]),
                iterations=r["iterations"], seconds=r["seconds"], seed=r["seed"], model=None,
                centers=[list(c) for c in r["centers"]], fits=r["runs"],
            )
            for r in results
        ]

    by_k = {p.k: p for p in fit(ks, 0)}
    _repair(by_k, cfg.repair_rounds, cfg.task_seeds_per_k, fit)
    points = sorted(by_k.values(), key=lambda p: p.k)
    for point in points:
        _log_point(point, "task seconds")
    return points


def kmeans_model(spark: SparkSession, point: ElbowPoint) -> ElbowPoint:
    """The point with a spark.ml ``KMeansModel`` whose centres are exactly the point's.

    spark.ml has no public way to make a model from given centres. On classic Spark the model
    is built in the driver's JVM from an MLlib model of those centres (the constructors that
    ``KMeans.fit`` itself calls): no Spark job, where a fit took about 3 s at every size. On
    Spark Connect, which has no JVM here, KMeans is fitted with random initialisation on a
    table of exactly those K centres: the initial centres are a sample of K rows out of K,
    i.e. all of them, and a Lloyd step moves none (each is the mean of itself). Either way
    the model's centres are checked, and the point's centres and sizes put in its cluster
    order.
    """
    model = _fitted_on_centres(spark, point) if is_connect(spark) else _built_from_centres(spark, point)
    found = model.clusterCenters()  # one remote call
    order = []
    for center in found:
        gaps = [sum((a - b) ** 2 for a, b in zip(center, c)) for c in point.centers]
        order.append(min(range(len(gaps)), key=gaps.__getitem__))
    if sorted(order) != list(range(point.k)) or any(
        max(abs(a - b) for a, b in zip(center, point.centers[i])) > 1e-9 for center, i in zip(found, order)
    ):
        raise RuntimeError(f"the KMeansModel made from the k={point.k} centres does not have those centres")
    point.centers = [point.centers[i] for i in order]
    point.sizes = [point.sizes[i] for i in order]
    point.model = model
    return point


def _built_from_centres(spark: SparkSession, point: ElbowPoint) -> KMeansModel:
    """A ``KMeansModel`` made in the JVM: ``new ml.KMeansModel(uid, new mllib.KMeansModel(centres))``
    (both constructors are Scala ``private[ml]``/public and the same in Spark 3.5 and 4.x)."""
    gateway = spark.sparkContext._gateway
    jvm = spark.sparkContext._jvm
    centres = gateway.new_array(jvm.org.apache.spark.mllib.linalg.Vector, point.k)
    for i, center in enumerate(point.centers):
        values = gateway.new_array(gateway.jvm.double, len(center))
        for j, value in enumerate(center):
            values[j] = float(value)
        centres[i] = jvm.org.apache.spark.mllib.linalg.Vectors.dense(values)
    parent = jvm.org.apache.spark.mllib.clustering.KMeansModel(centres)
    estimator = KMeans(k=point.k, seed=point.seed, featuresCol=SCALED_VECTOR, predictionCol=PREDICTION)
    model = KMeansModel(jvm.org.apache.spark.ml.clustering.KMeansModel(estimator.uid, parent))
    # The params a fit copies from its estimator, so the saved model's metadata says the same.
    return model._set(**{param.name: value for param, value in estimator.extractParamMap().items()
                         if model.hasParam(param.name) and estimator.isSet(param)})


def _fitted_on_centres(spark: SparkSession, point: ElbowPoint) -> KMeansModel:
    table = spark.createDataFrame([(c,) for c in point.centers], "center ARRAY<DOUBLE>").select(
        array_to_vector("center").alias(SCALED_VECTOR)
    )
    return KMeans(
        k=point.k, initMode="random", maxIter=1, seed=point.seed,
        featuresCol=SCALED_VECTOR, predictionCol=PREDICTION,
    ).fit(table)


