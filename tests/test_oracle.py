"""scikit-learn as an independent oracle: same K, same data, same answer."""

import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from segmentation.config import ElbowConfig
from segmentation.elbow import PREDICTION, fit_seeds
from segmentation.features import fit_features
from segmentation.sample import draw_fit_rows, scale_fit_rows

FEATURES = ("x0", "x1", "x2")


def test_fixed_k_on_blobs_agrees_with_scikit_learn(spark):
    points, truth = make_blobs(n_samples=3000, centers=4, n_features=3, cluster_std=1.2, random_state=3)
    rows = [(i, *map(float, p)) for i, p in enumerate(points)]
    df = spark.createDataFrame(rows, "id LONG, x0 DOUBLE, x1 DOUBLE, x2 DOUBLE")

    feature_model, _ = fit_features(df, FEATURES)
    rows, n = draw_fit_rows(df, 3000, "id", FEATURES, ElbowConfig().sample_rows, 5, 2)
    data = scale_fit_rows(feature_model, rows, FEATURES)
    point = fit_seeds(data, 4, ElbowConfig(seeds_per_k=2), seed=5, rows=n)
    labelled = point.model.transform(feature_model.transform(df)).select("id", PREDICTION).toPandas()
    spark_labels = labelled.sort_values("id")[PREDICTION].to_numpy()

    # Spark's StandardScaler divides by the sample standard deviation (ddof=1).
    scaled = (points - points.mean(axis=0)) / points.std(axis=0, ddof=1)
    oracle = SkKMeans(n_clusters=4, n_init=10, random_state=0).fit(scaled)

    assert point.wssse == pytest.approx(oracle.inertia_, rel=0.01)
    assert adjusted_rand_score(oracle.labels_, spark_labels) >= 0.95
    assert adjusted_rand_score(truth, spark_labels) >= 0.95
    assert sorted(point.sizes) == sorted(np.bincount(oracle.labels_).tolist())
