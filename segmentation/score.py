"""Scoring new customers with a saved segment model, in one pass over the input.

The model (``OUTPUT/model`` of a segment run) carries the feature steps, the KMeans
centroids and the run's segment numbers and names, so scoring is reading, dropping
what cannot be scored, ``model.transform`` (for transactions with a prediction model, its
predictions joined on) and a partitioned write, published as
atomically as the segment job's outputs: ``PATH/labels/segment=<n>/``,
``PATH/manifest.json`` and ``PATH/_SUCCESS``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import Observation, SparkSession
from pyspark.sql import functions as F

from segmentation.clean import keep_valid, with_drop_reason
from segmentation.config import InputConfig, OutputConfig, ReportConfig
from segmentation.dashboard import write_dashboard
from segmentation.errors import InputError, first_line
from segmentation.features import model_inputs
from segmentation.label import label_customers, write_labels
from segmentation.publish import SCHEMA_VERSION, Publisher, model_manifest, new_run_id, utc_now
from segmentation.read import is_local_path, local_path, read_input, select_features, text_columns
from segmentation.predict import predict_with_saved
from segmentation.rfm import carried_columns, customer_rfm, purchases

log = logging.getLogger(__name__)


def load_segment_model(path: str) -> PipelineModel:
    if is_local_path(path) and not os.path.isdir(local_path(path)):
        raise InputError(f"no saved model at {path}: give the model/ directory of a segment run")
    try:
        return PipelineModel.load(path)
    except Exception as exc:  # noqa: BLE001 - any load failure means no usable model there
        raise InputError(f"cannot load a segment model from {path}: {first_line(exc)}") from None


def model_features(model: PipelineModel) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the input columns the model reads, in order; those of them it one-hot encodes)."""
    assembler = next(s for s in model.stages if isinstance(s, VectorAssembler))
    return model_inputs(assembler.getInputCols())


def run_id_col(model_path: str) -> str | None:
    """The id column of the run that made the model, from its manifest beside ``model/``."""
    return (model_manifest(model_path) or {}).get("id_col")


def score_customers(
    spark: SparkSession,
    model_path: str,
    input_cfg: InputConfig,
    output: str,
    max_rows_per_file: int = OutputConfig.max_rows_per_file,
    prediction_model: str | None = None,
    report: ReportConfig = ReportConfig(),
) -> dict[str, Any]:
    """Labels the customers of ``input_cfg`` with the model at ``model_path`` and, for transactions
    with ``prediction_model`` (a segment run's ``prediction_model/``), predicts their next days as
    of the input's reference date; with ``report.enabled`` and a local output, writes the
    dashboard of the scored customers. Returns the manifest."""
    run_id = new_run_id()
    started_at = utc_now()
    model = load_segment_model(model_path)
    features, categorical = model_features(model)
    numeric = tuple(f for f in features if f not in categorical)
    cfg = replace(input_cfg, features=features)
    transactions = cfg.kind == "transactions"
    carry = carried_columns(cfg, features)
    if prediction_model and not transactions:
        raise InputError("predictions need transactions (dates and amounts): give --input-kind transactions")
    publisher = Publisher.for_output(spark, output, run_id)
    publisher.begin()
    rfm_cache = rfm_facts = predicted = stats_cache = None
    try:
        table = raw = read_input(spark, cfg)
        if transactions:  # the customers' RFM columns, built as the segment job builds them
            table, rfm_cache, rfm_facts = customer_rfm(table, cfg)
        if prediction_model:
            reference = rfm_facts.reference
            predicted, stats_cache = predict_with_saved(purchases(raw, cfg, reference), cfg.id_col, reference,
                                                        prediction_model, spark)
        customers = select_features(table, cfg.id_col, features, categorical, carry)
        text = text_columns(customers, numeric)
        reasoned = customers.transform(with_drop_reason(cfg.id_col, numeric, text, (), cfg.number_text))
        # Counted while the labels are written: the input is read once (twice with predictions). A row the model's
        # transforms cannot take (log1p of a value <= -1) is left out by the model: counted
        # as dropped, from the rows labelled.
        read, written = Observation("score_input"), Observation("score_labels")
        observed = reasoned.observe(read, F.count(F.lit(1)).alias("input_rows"))
        labels = keep_valid(observed).transform(label_customers(model, cfg.id_col, (*features, *carry)))
        if predicted is not None:
            labels = labels.join(predicted, on=cfg.id_col, how="left")
        labels = labels.observe(written, F.count(F.lit(1)).alias("labelled_rows"))
        write_labels(labels, publisher.path("labels"), max_rows_per_file)
        input_rows = int(read.get["input_rows"])
        dropped_rows = input_rows - int(written.get["labelled_rows"])
        if input_rows == dropped_rows:
            raise InputError(
                f"no rows of {cfg.path} could be scored: all {input_rows} have missing or unparseable values"
            )
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id,
            "kind": "score",
            "started_at": started_at,
            "finished_at": utc_now(),
            "spark_version": spark.version,
            "model": model_path,
            "input": {"path": cfg.path, "format": cfg.format, "kind": cfg.kind},
            "transactions": rfm_facts.to_dict() if rfm_facts else None,
            "id_col": cfg.id_col,
            "features": list(features),
            "categorical_features": list(categorical),
            "prediction_model": prediction_model,
            "input_rows": input_rows,
            "labelled_rows": input_rows - dropped_rows,
            "dropped_rows": dropped_rows,
            "outputs": {"labels": f"{output}/labels"},
        }
        if report.enabled and publisher.is_local:  # sizes, profiles and the map of the scored customers
            manifest["outputs"]["report"] = f"{output}/report"
            publisher.write_manifest(manifest)  # the dashboard reads it; rewritten by the commit
            write_dashboard(publisher.staging, report.scatter_rows_per_segment, report.top_customers)
        publisher.commit(manifest)
    except BaseException:
        publisher.abort()
        raise
    finally:
        for cached in (rfm_cache, stats_cache):
            if cached is not None:
                cached.unpersist()
    log.info("scored %d customers into %s", input_rows - dropped_rows, output)
    return manifest
