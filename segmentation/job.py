"""The whole segmentation job, top-down in the order the data flows:

read (and, for transactions, build the RFM table and, with --predict-days, predict each
customer's next days), clean, sample, build features,
sweep K, select K, fit (carrying the previous run's segment identities), label, profile,
drift and migrations (since the previous run), publish, report, dashboard, and (with --mlflow) track.

Each step is one call into its own module; this function only wires them and
keeps the run's facts for the manifest.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Any, Iterator

import pyspark
from pyspark.sql import SparkSession

from segmentation import report as report_step
from segmentation.background import Background
from segmentation.clean import clean_customers
from segmentation.config import JobConfig
from segmentation.dashboard import write_dashboard
from segmentation.drift import enforce_drift, measure_drift
from segmentation.elbow import engine_for, kmeans_model, start_workers, sweep
from segmentation.features import fit_features
from segmentation.k_selection import select_k
from segmentation.label import label_customers, segment_model, segments_by_size, write_labels
from segmentation.lineage import carry_identities, read_previous
from segmentation.migrations import track_migrations
from segmentation.naming import name_segments
from segmentation.parse import LOG1P, is_categorical, parse_steps
from segmentation.predict import EVAL_SCHEMA, predict_customers
from segmentation.profile import profile_schema, profile_segments
from segmentation.publish import SCHEMA_VERSION, TABLES, new_run_id, open_publisher, utc_now, write_small_table
from segmentation.read import read_input, select_features, unreadable_file
from segmentation.rfm import carried_columns, customer_rfm, purchases
from segmentation.sample import draw_fit_rows, scale_fit_rows
from segmentation.session import is_connect
from segmentation.tracking import log_run, open_tracking

log = logging.getLogger(__name__)

def run_segmentation(spark: SparkSession, config: JobConfig) -> dict[str, Any]:
    """Runs the job and publishes its outputs to ``config.output.path``; returns the manifest."""
    run_id = new_run_id()
    started_at = utc_now()
    timings: dict[str, float] = {}
    stage = _stage_timer(timings)
    id_col, features = config.input.id_col, config.input.features
    steps = {f: parse_steps(f, s) for f, s in config.input.transforms.items()}
    categorical = tuple(f for f in features if is_categorical(steps.get(f, ())))
    numeric = tuple(f for f in features if f not in categorical)
    log1p_first = tuple(f for f in numeric if steps.get(f) and steps[f][0].kind == LOG1P)
    transactions = config.input.kind == "transactions"
    publisher = open_publisher(spark, config.output, run_id)
    tracking = open_tracking(config.mlflow)  # an unreachable tracking store stops the run here
    previous = read_previous(spark, config.lineage, config.output.path,  # before the publish replaces it
                             config.output.storage_options)

    publisher.begin()
    start_workers(spark, config.elbow, config.algorithm, _cores(spark))  # ready by the sweep
    sample = fit_data = rfm_cache = rfm_facts = predictions = None
    writes = Background(spark)  # the small outputs, written while the job goes on
    try:
        with stage("read"):
            table = transactions_table = read_input(spark, config.input)

        if transactions:
            with stage("rfm"):
                try:
                    table, rfm_cache, rfm_facts = customer_rfm(table, config.input)
                except Exception as exc:  # the first pass over the input finds unreadable files
                    raise (unreadable_file(exc, config.input.format) or exc) from None

        if config.predict.days:
            with stage("predict"):  # its own pass over the transactions, per customer and day
                reference = rfm_facts.reference
                predictions = predict_customers(spark, purchases(transactions_table, config.input, reference),
                                                id_col, reference, config.predict, config.seed,
                                                rfm_facts.first_purchase)
                writes.submit("predictions_eval", write_small_table, spark, predictions.evaluation, EVAL_SCHEMA,
                              publisher.path("predictions_eval"))
                writes.submit("prediction_model", predictions.model.save, spark, publisher.path("prediction_model"))

        with stage("clean"):
            customers = select_features(table, id_col, features, categorical, carried_columns(config.input, features))
            cleaned = clean_customers(customers, config.input, numeric, categorical, log1p_first)
            clean, clean_rows, dropped = cleaned.table, cleaned.rows, cleaned.dropped

        with stage("sample"):
            sample, fit_rows = draw_fit_rows(
                clean, clean_rows, id_col, features, config.elbow.sample_rows, config.seed, _cores(spark)
            )

        with stage("features"):
            # The scaler learns its means and deviations from the fit rows, like the model.
            feature_model, scaling = fit_features(
                sample, features, config.input.zero_variance, config.algorithm != "bisecting",
                steps,
            )
            features = scaling.input_features  # without any zero-variance feature dropped by policy
            fit_data = scale_fit_rows(feature_model, sample, features, config.k.max)

        with stage("sweep"):
            ks = list(range(config.k.min, config.k.max + 1))
            engine = engine_for(config.elbow, config.algorithm, fit_rows)
            log.info("sweep: k=%d..%d on %d rows, engine %s", ks[0], ks[-1], fit_rows, engine)
            elbow = sweep(spark, fit_data, ks, config.elbow, config.seed, fit_rows, config.algorithm, engine)

        with stage("select_k"):
            selection = select_k(
                ks,
                [p.wssse for p in elbow],
                [p.silhouette for p in elbow],
                fixed=config.k.fixed,
                bic=[p.bic for p in elbow] if config.algorithm == "gmm" else None,
                total=scaling.total_sum_of_squares(fit_rows),
                rows=fit_rows,
                rule=config.k.rule,
            )
            log.info("chose k=%d by %s", selection.chosen_k, selection.decided_by)
            if selection.clear_structure is False:
                log.warning("%s", selection.summary)
            elbow_rows = [p.to_row(selection.chosen_k) for p in elbow]
            writes.submit("elbow", write_small_table, spark, elbow_rows, ELBOW_SCHEMA, publisher.path("elbow"))

        with stage("fit"):
            # The sweep already fitted the chosen K on the same rows: its best seed is the model.
            chosen = next(p for p in elbow if p.k == selection.chosen_k)
            if chosen.model is None:  # the tasks engine: its centres become a spark.ml KMeansModel
                chosen = kmeans_model(spark, chosen)
            centers_z = [scaling.scaled_to_z(c) for c in chosen.centers]
            segments = segments_by_size(
                centers_z, chosen.sizes, scaling, lambda z: name_segments(scaling.features, z, scaling.categorical)
            )
            segments, lineage = carry_identities(segments, scaling, previous, config.lineage, run_id)
            model = segment_model(feature_model, chosen.model, segments, scaling)
            writes.submit("model", model.write().save, publisher.path("model"))

        with stage("label"):
            # For transactions all RFM columns, also one dropped as a feature for zero variance.
            carry = carried_columns(config.input, features)
            labels = clean.transform(label_customers(model, id_col, (*features, *carry), segments, scaling))
            if predictions is not None:  # one row per customer: segment and prediction read together
                labels = labels.join(predictions.customers, on=id_col, how="left")
            write_labels(labels, publisher.path("labels"), config.output.max_rows_per_file)

        with stage("profile"):
            published = spark.read.parquet(publisher.path("labels"))
            per_segment = profile_segments(spark, published, scaling, segments, clean_rows)  # K rows
            writes.submit("profiles", write_small_table, spark, per_segment,
                          profile_schema(scaling, predictions is not None), publisher.path("profiles"))
            labelled_rows = sum(int(row["customers"]) for row in per_segment)
            if labelled_rows != clean_rows:  # an integrity check, not an input problem
                raise RuntimeError(f"labelled {labelled_rows} rows but {clean_rows} were clean")
            all_rows_wssse = sum(float(row["wssse"]) for row in per_segment)
            fit_quality = _fit_quality(chosen, fit_rows, all_rows_wssse, labelled_rows)

        continued = previous if lineage["previous_run_id"] else None  # None: a new lineage
        with stage("drift"):  # before the migrations' join, so --fail-on-drift stops without it
            drift = measure_drift(per_segment, scaling, continued, lineage, config.drift)
            enforce_drift(drift, config.drift)  # --fail-on-drift: a drifted run stops here, unpublished

        with stage("migrations"):
            migrations = track_migrations(spark, published, id_col, segments, continued, publisher.path("migrations"))

        with stage("publish"):  # the tables' background writes, which the report reads
            writes.wait(TABLES)

        manifest = {
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id,
            "started_at": started_at,
            "finished_at": None,
            "spark_version": spark.version,
            "pyspark_version": pyspark.__version__,
            "master": _master(spark),
            "config": config.to_dict(),
            "input": {"path": config.input.path, "format": config.input.format, "kind": config.input.kind},
            "transactions": rfm_facts.to_dict() if rfm_facts else None,
            "id_col": id_col,
            "features": list(features),
            "categorical_features": [f for f in categorical if f in features],
            "dimensions": list(scaling.features),
            "dropped_features": [f for f in config.input.features if f not in features],
            "scaling": scaling.to_dict(),
            "input_rows": cleaned.input_rows,
            "labelled_rows": labelled_rows,
            "dropped_rows": dropped,
            "imputed": cleaned.imputed,
            "algorithm": config.algorithm,
            "fit_rows": fit_rows,
            "elbow_engine": engine,
            "fit_quality": fit_quality,
            "chosen_k": selection.chosen_k,
            "k_selection": selection.to_dict(),
            "elbow": elbow_rows,
            "segments": [
                {"segment": s.number, "segment_name": s.name, "fitted_rows": s.fitted_rows}
                for s in segments
            ],
            "lineage": lineage,
            "migrations": migrations,
            "drift": drift,
            "predictions": predictions.facts if predictions else None,
            "timings": timings,
            "outputs": {part: publisher.location(part) for part in OUTPUT_PARTS
                        if (part != "migrations" or migrations is not None)
                        and (part not in PREDICTION_PARTS or predictions is not None)},
        }

        if config.report.enabled and publisher.is_local:
            tables = {part: publisher.path(part) for part in TABLES}
            with stage("report"):
                publisher.write_manifest(manifest)  # the report and the dashboard read it; rewritten below
                report_step.write_report(publisher.staging, config.report.scatter_rows_per_segment, tables)
            with stage("dashboard"):
                write_dashboard(publisher.staging, config.report.scatter_rows_per_segment,
                                config.report.top_customers, tables)
        elif config.report.enabled:
            log.warning("report skipped: the output %s is not on a local file system", config.output.path)

        with stage("publish"):  # what is left of the background writes: the models
            writes.wait()
        manifest["finished_at"] = utc_now()
        publisher.commit(manifest)
    except BaseException:
        writes.settle()  # no write still running into the staging that abort removes
        publisher.abort()
        raise
    finally:
        for cached in (sample, fit_data, rfm_cache, predictions and predictions.cache):  # the run's caches, also when it fails
            if cached is not None:
                cached.unpersist()
    log.info("published %s (run %s)", config.output.path, run_id)
    log_run(tracking, config.mlflow, manifest, config.output.path)
    return manifest


OUTPUT_PARTS = (*TABLES, "model", "prediction_model", "report", "manifest.json")
PREDICTION_PARTS = ("predictions_eval", "prediction_model")

ELBOW_SCHEMA = (
    "k INT, wssse DOUBLE, rows LONG, silhouette DOUBLE, sizes ARRAY<LONG>, "
    "iterations INT, seconds DOUBLE, chosen BOOLEAN, log_likelihood DOUBLE, bic DOUBLE"
)


def _fit_quality(chosen, fit_rows: int, all_rows_wssse: float, all_rows: int) -> dict[str, Any]:
    """How well the fit rows stood for all rows: the chosen model's WSSSE per row on each."""
    on_sample = chosen.wssse / fit_rows
    on_all = all_rows_wssse / all_rows
    return {
        "k": chosen.k,
        "fit_rows": fit_rows,
        "sample_wssse_per_row": on_sample,
        "all_rows_wssse_per_row": on_all,
        "relative_error": (on_sample - on_all) / on_all if on_all else 0.0,
    }



def _stage_timer(timings: dict[str, float]):
    @contextmanager
    def stage(name: str) -> Iterator[None]:
        log.info("stage %s ...", name)
        started = time.monotonic()
        yield
        timings[name] = round(timings.get(name, 0.0) + time.monotonic() - started, 3)  # a stage met twice adds up
        log.info("stage %s done in %.1f s", name, timings[name])

    return stage


def _cores(spark: SparkSession) -> int:
    if is_connect(spark):  # no SparkContext: the server's shuffle width stands for its cores
        return max(2, int(spark.conf.get("spark.sql.shuffle.partitions", "8")))
    return max(2, spark.sparkContext.defaultParallelism)


def _master(spark: SparkSession) -> str:
    return spark.conf.get("spark.master", "connect") if is_connect(spark) else spark.sparkContext.master
