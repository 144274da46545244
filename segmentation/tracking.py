"""Stage 11, tracking (optional, ``--mlflow``): the run's parameters, elbow, chosen K, quality
figures, report and model, logged to MLflow.

The tracking store is checked before any work starts (an unreachable URI is bad input: one
``error:`` line, nothing published). Logging happens after the publish and never undoes it:
an MLflow failure there is one warning line. The tracking URI is ``mlflow.tracking_uri`` or,
when that is null, ``MLFLOW_TRACKING_URI`` (MLflow's own default after that).

What is logged: every config key as a parameter (dotted names); metrics ``chosen_k``,
``input_rows``, ``labelled_rows``, ``dropped_rows``, the fit quality, since the previous run
``migrations.*`` (stability and the customer counts) and ``drift.drifted`` (1 or 0), and per K (as the metric's
step) ``wssse``, ``silhouette`` and, for gmm, ``bic``; tags with the run id, the output path, the
schema version and how K was decided; artifacts ``manifest.json``, ``report/`` and ``model/``
(the saved PipelineModel, loadable with ``PipelineModel.load``) when the output is a local path.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

from segmentation.config import MlflowConfig
from segmentation.errors import InputError, first_line
from segmentation.read import is_local_path, local_path

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'customer-segmentation[mlflow]'"
# MLflow's REST client retries for minutes by default; the check before the run should not.
CHECK_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
MAX_PARAMS_PER_CALL = 100  # MLflow's limit for one batch
MAX_PARAM_LENGTH = 6000


def open_tracking(config: MlflowConfig) -> Optional[Any]:
    """None when tracking is off; else an MLflow client whose store answered. Raises InputError."""
    if not config.enabled:
        return None
    try:
        import mlflow
    except ImportError:
        raise InputError(f"--mlflow needs MLflow, which is not installed: {INSTALL_HINT}") from None
    for name in ("mlflow", "alembic"):  # their INFO lines (database migrations) are not the job's
        logging.getLogger(name).setLevel(logging.WARNING)
    uri = config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or mlflow.get_tracking_uri()
    saved = {key: os.environ.get(key) for key in CHECK_ENV}
    os.environ.update({key: os.environ.get(key, value) for key, value in CHECK_ENV.items()})
    try:
        client = mlflow.MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - whatever the store says, the run cannot be tracked
        raise InputError(f"MLflow tracking URI {uri} cannot be reached: {first_line(exc)}") from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return client


def log_run(client: Optional[Any], config: MlflowConfig, manifest: dict[str, Any], output: str) -> None:
    """Logs the published run to MLflow; a failure is one warning line, the publish stays."""
    if client is None:
        return
    try:
        run_id = _log(client, config, manifest, output)
        log.info("mlflow: logged as run %s in experiment %s", run_id, config.experiment)
    except Exception as exc:  # noqa: BLE001 - tracking is a side channel
        log.warning("mlflow: the run was published but not logged: %s", first_line(exc))


def _log(client: Any, config: MlflowConfig, manifest: dict[str, Any], output: str) -> str:
    from mlflow.entities import Param

    experiment = client.get_experiment_by_name(config.experiment)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(config.experiment)
    tags = {
        "segmentation.run_id": manifest["run_id"],
        "segmentation.output": output,
        "segmentation.schema_version": str(manifest["schema_version"]),
        "segmentation.k_decided_by": manifest["k_selection"]["decided_by"],
        "mlflow.runName": f"segment {manifest['run_id']}",
    }
    run = client.create_run(experiment_id, tags=tags)
    run_id = run.info.run_id
    status = "FAILED"
    try:
        params = [Param(key, str(value)[:MAX_PARAM_LENGTH]) for key, value in _flat(manifest["config"]).items()]
        for start in range(0, len(params), MAX_PARAMS_PER_CALL):
            client.log_batch(run_id, params=params[start:start + MAX_PARAMS_PER_CALL])
        client.log_batch(run_id, metrics=_metrics(manifest))
        client.log_dict(run_id, manifest, "manifest.json")
        if is_local_path(output):
            for name in ("report", "model"):
                folder = local_path(manifest["outputs"].get(name) or os.path.join(output, name))
                if os.path.isdir(folder):
                    client.log_artifacts(run_id, folder, name)
        status = "FINISHED"
    finally:
        client.set_terminated(run_id, status)
    return run_id


def _metrics(manifest: dict[str, Any]) -> list:
    from mlflow.entities import Metric

    now = _millis(manifest["finished_at"])
    values = {
        "chosen_k": manifest["chosen_k"],
        "input_rows": manifest["input_rows"],
        "labelled_rows": manifest["labelled_rows"],
        "dropped_rows": sum(manifest["dropped_rows"].values()),
        **{f"fit_quality.{key}": value for key, value in (manifest.get("fit_quality") or {}).items()
           if isinstance(value, (int, float))},
        # Since the previous run (absent from a lineage's first run): stability and drift (1 or 0).
        **{f"migrations.{key}": value for key, value in (manifest.get("migrations") or {}).items()},
        **({"drift.drifted": int(manifest["drift"]["drifted"])} if manifest.get("drift") else {}),
    }
    metrics = [Metric(key, float(value), now, 0) for key, value in values.items() if value is not None]
    for point in manifest["elbow"]:
        for key in ("wssse", "silhouette", "bic"):
            if point.get(key) is not None:
                metrics.append(Metric(key, float(point[key]), now, int(point["k"])))
    return metrics


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _millis(timestamp: str) -> int:
    import datetime

    return int(datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)
