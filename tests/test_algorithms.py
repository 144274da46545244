"""--algorithm bisecting and gmm: the same outputs and K selection as kmeans, on planted data."""

import json
import os

import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.ml import PipelineModel
from sklearn.metrics import adjusted_rand_score

from segmentation.job import run_segmentation

from conftest import small_config


@pytest.mark.parametrize("algorithm", ["bisecting", "gmm"])
def test_other_algorithms_find_the_planted_segments(spark, customers_path, tmp_path, algorithm):
    output = str(tmp_path / algorithm)
    # Bisecting k-means runs every split for exactly max_iter rounds (Spark has no tolerance for it):
    # 5 rounds separate these planted segments, at a sixth of the default's Spark jobs. The mixture
    # stops at its tolerance or after 15 rounds (the K it picks by BIC stop earlier than that).
    rounds = {"elbow.max_iter": 5 if algorithm == "bisecting" else 15}
    config = small_config(**{"input.path": customers_path, "output.path": output, "k.max": 7,
                             "algorithm": algorithm, "report.enabled": False, **rounds})
    manifest = run_segmentation(spark, config)
    assert manifest["algorithm"] == algorithm
    assert manifest["chosen_k"] == 5
    elbow = pd.read_parquet(os.path.join(output, "elbow")).sort_values("k")
    if algorithm == "gmm":  # K by the lowest BIC, recorded per K beside the log-likelihood
        assert manifest["k_selection"]["decided_by"].startswith("lowest BIC")
        assert elbow.loc[elbow["bic"].idxmin(), "k"] == 5
        assert elbow["log_likelihood"].notna().all()
    else:  # the k-means family minimises WSSSE: its curve falls (a mixture's need not)
        assert manifest["k_selection"]["decided_by"] == "silhouette checked by the elbow"
        assert elbow["bic"].isna().all()
        assert (elbow["wssse"].diff().dropna() < 0).all()

    labels = spark.read.parquet(os.path.join(output, "labels"))
    truth = spark.read.parquet(customers_path).select("customer_id", "true_segment")
    joined = labels.join(truth, "customer_id").select("segment", "true_segment").toPandas()
    assert len(joined) == 6000
    assert adjusted_rand_score(joined["true_segment"], joined["segment"]) > 0.95

    # The saved model is the same kind of PipelineModel and gives back the run's labels.
    model = PipelineModel.load(os.path.join(output, "model"))
    expected = {"bisecting": "BisectingKMeansModel", "gmm": "GaussianMixtureModel"}[algorithm]
    assert type(model.stages[2]).__name__ == expected
    rescored = model.transform(spark.read.parquet(customers_path)).select("customer_id", "segment")
    assert_df_equality(rescored, labels.select("customer_id", "segment"),
                       ignore_row_order=True, ignore_nullable=True)
    assert json.load(open(os.path.join(output, "manifest.json")))["chosen_k"] == 5
