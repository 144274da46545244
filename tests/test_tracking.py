"""--mlflow: a run logged to a real MLflow tracking store (SQLite, artifacts on disk), read back
with MLflow's own client; an unreachable store stops the run before any work; a failure while
logging leaves the publish as it is."""

from __future__ import annotations

import json
import os

import mlflow
import pytest

from conftest import MALL, MALL_CONFIG, free_port, small_config
from segmentation.errors import InputError
from segmentation.job import run_segmentation
from segmentation.tracking import _metrics


@pytest.fixture()
def store(tmp_path, monkeypatch):
    """A SQLite tracking store in tmp_path; artifacts land beside it (MLflow's ./mlruns)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_a_run_is_logged_with_its_parameters_elbow_quality_report_and_model(spark, store, tmp_path):
    output = str(tmp_path / "mall")
    manifest = run_segmentation(spark, small_config(**MALL_CONFIG, **{
        "output.path": output, "mlflow.enabled": True, "mlflow.tracking_uri": store}))

    client = mlflow.MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("customer-segmentation")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["segmentation.run_id"] == manifest["run_id"]
    assert run.data.tags["segmentation.k_decided_by"] == manifest["k_selection"]["decided_by"]
    assert run.data.params["k.max"] == "7" and run.data.params["input.id_col"] == "CustomerID"
    assert run.data.metrics["chosen_k"] == manifest["chosen_k"] == 5
    assert run.data.metrics["labelled_rows"] == 200
    assert run.data.metrics["fit_quality.relative_error"] == pytest.approx(manifest["fit_quality"]["relative_error"])
    wssse = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "wssse")}
    assert wssse == {p["k"]: pytest.approx(p["wssse"]) for p in manifest["elbow"]}
    silhouette = client.get_metric_history(run.info.run_id, "silhouette")
    assert sorted(m.step for m in silhouette) == list(range(2, 8))
    assert not [key for key in run.data.metrics if key.startswith(("migrations.", "drift."))]  # a first run
    later = {m.key: m.value for m in _metrics({**manifest, "drift": {"drifted": True},
                                               "migrations": {"stability": 0.9, "new_customers": 3}})}
    assert (later["migrations.stability"], later["migrations.new_customers"], later["drift.drifted"]) == (0.9, 3, 1)

    artifacts = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"manifest.json", "report", "model"} <= artifacts
    assert "report/report.html" in {f.path for f in client.list_artifacts(run.info.run_id, "report")}
    logged = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="manifest.json",
                                                 tracking_uri=store, dst_path=str(tmp_path / "down"))
    assert json.load(open(logged))["run_id"] == manifest["run_id"]
    # the logged model is the published PipelineModel: it labels customers as the run did
    from pyspark.ml import PipelineModel

    model_dir = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="model",
                                                    tracking_uri=store, dst_path=str(tmp_path / "down"))
    published = spark.read.parquet(os.path.join(output, "labels")).select("CustomerID", "segment")
    mall = spark.read.csv(str(MALL), header=True, inferSchema=True)
    scored = PipelineModel.load(model_dir).transform(mall).select("CustomerID", "segment")
    assert scored.count() == 200
    assert scored.join(published, "CustomerID").filter(scored.segment != published.segment).count() == 0


def test_the_tracking_uri_comes_from_the_environment_when_the_config_has_none(spark, store, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    run_segmentation(spark, small_config(**MALL_CONFIG, **{
        "output.path": str(tmp_path / "o"), "mlflow.enabled": True, "mlflow.experiment": "weekly"}))
    client = mlflow.MlflowClient(tracking_uri=store)
    assert len(client.search_runs([client.get_experiment_by_name("weekly").experiment_id])) == 1


def test_an_unreachable_tracking_uri_stops_the_run_before_any_work(spark, store, tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    output = tmp_path / "o"
    with pytest.raises(InputError, match=rf"^MLflow tracking URI {uri} cannot be reached: "):
        run_segmentation(spark, small_config(**MALL_CONFIG, **{
            "output.path": str(output), "mlflow.enabled": True, "mlflow.tracking_uri": uri}))
    assert not output.exists()


def test_a_failure_while_logging_is_one_warning_and_the_publish_stays(spark, store, tmp_path, caplog):
    # The experiment's artifact store is a path under a plain file: every artifact upload fails.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    mlflow.MlflowClient(tracking_uri=store).create_experiment("blocked", artifact_location=f"file://{blocker}/art")
    output = tmp_path / "o"
    manifest = run_segmentation(spark, small_config(**MALL_CONFIG, **{
        "output.path": str(output), "mlflow.enabled": True, "mlflow.tracking_uri": store,
        "mlflow.experiment": "blocked"}))
    warnings = [r for r in caplog.records if r.name == "segmentation.tracking" and r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].getMessage().startswith("mlflow: the run was published but not logged: ")
    assert "\n" not in warnings[0].getMessage()
    assert json.load(open(output / "manifest.json"))["run_id"] == manifest["run_id"]
    assert (output / "labels").is_dir() and (output / "model").is_dir()
