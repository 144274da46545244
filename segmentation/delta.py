"""Stage 9 with ``output.format: delta``: the run's tables as Delta Lake tables, one version per run.

Spark writes each table's Parquet files as it does for the plain layout, but into a folder of
this run inside the table (``OUTPUT/labels/RUN_ID/segment=N/part-...``), where no reader looks:
a Delta table is what its log lists. At the end the driver commits those files to each table's log
with delta-rs (the ``deltalake`` package): one ``overwrite`` transaction per table, listing the
files by path, size and partition; no row passes through the driver. The files a commit replaces
stay on disk, so every earlier run stays readable by version or timestamp.

delta-rs commits one table at a time, so the run is published by the ``runs`` table, committed
last: one row appended per run, naming the version of each table that run wrote. Reading one run's
tables together goes through it (the README's "Reading Delta outputs"). A run killed before that
row leaves tables whose latest version no run names; the next run's commit replaces it, and its
vacuum deletes the files.

The model, the report and the manifest are files, not tables: ``OUTPUT/artifacts/RUN_ID/``.

Retention: after the commit the job keeps the last ``output.keep_runs`` runs named in ``runs``. It
vacuums each table keeping those runs' versions (so older versions' files, and any file no version
lists, are deleted) and deletes older runs' artifacts. ``runs`` itself keeps every run's row.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Optional
from urllib.parse import unquote

import pyarrow as pa

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from segmentation.errors import InputError
from segmentation.label import SEGMENT
from segmentation.publish import MANIFEST, RUNS_TABLE as RUNS, TABLES, Publisher, is_delta_output, plain_options
from segmentation.read import is_hidden, is_local_path, local_path

log = logging.getLogger(__name__)

PARTITION_BY = {"labels": [SEGMENT]}
ARTIFACTS = "artifacts"


def require_deltalake():
    """The deltalake module, or the error: line that says how to install it."""
    try:
        import deltalake
    except ImportError:
        raise InputError(
            "output.format delta needs the deltalake package: pip install 'customer-segmentation[delta]'"
        ) from None
    return deltalake


@dataclass
class DeltaPublisher(Publisher):
    """Publishes a run as new versions of OUTPUT's Delta tables, ``runs`` last."""

    keep_runs: int = 10
    storage_options: Optional[Mapping[str, str]] = None

    def recover(self) -> None:
        """Nothing to undo: a killed run's files are in no table's log, and the next vacuum deletes them."""

    def check_replaceable(self) -> None:
        if not self.fs.exists(self.output):
            return
        if not self.fs.is_dir(self.output):
            raise InputError(f"output {self.output} is a file, not a directory: choose another --output")
        entries = self.fs.listdir(self.output)
        if MANIFEST in entries:
            raise InputError(
                f"output {self.output} holds a Parquet publish (output.format parquet); a Delta output "
                "cannot replace it in place: choose another --output"
            )
        foreign = [e for e in entries if e not in (*TABLES, RUNS, ARTIFACTS)]  # else what a first run left
        if foreign or (RUNS in entries and not is_delta_output(self.output, self.storage_options)):
            raise InputError(
                f"output {self.output} exists and is not a segmentation output (no {RUNS} Delta table); "
                "refusing to write into it: choose another --output"
            )

    @property
    def staging(self) -> str:
        return f"{self.output}/{ARTIFACTS}/{self.run_id}"

    def path(self, part: str) -> str:
        if part in TABLES:
            return f"{self.output}/{part}/{self.run_id}"
        return f"{self.staging}/{part}"

    def location(self, part: str) -> str:
        return f"{self.output}/{part}" if part in TABLES else self.path(part)

    def commit(self, manifest: dict[str, Any]) -> None:
        """Commits every table this run wrote, then the manifest, then the run's row in ``runs``."""
        _failpoint("before-commit")
        versions = {}
        for part in TABLES:
            if self.fs.exists(self.path(part)):
                versions[part] = self._commit_table(part)
                _failpoint(f"after-{part}")
        manifest["delta"] = {"versions": versions, "runs_table": f"{self.output}/{RUNS}"}
        self.write_manifest(manifest)
        self._append_run(manifest, versions)
        _failpoint("after-runs")
        self._keep_last_runs()
        self.release()

    def abort(self) -> None:
        for part in TABLES:
            self.fs.delete(self.path(part))
        self.fs.delete(self.staging)
        if self.is_local:
            _remove_empty_folders(local_path(self.output))
        self.release()

    # --- the commits ---------------------------------------------------------------------

    def _commit_table(self, part: str) -> int:
        deltalake = require_deltalake()
        from deltalake.transaction import AddAction, create_table_with_add_actions

        table = f"{self.output}/{part}"
        files = self.fs.files(self.path(part))
        if not files:
            raise RuntimeError(f"the run wrote no data files to {self.path(part)}")
        partition_by = PARTITION_BY.get(part, [])
        footers = [_footer(f"{self.path(part)}/{rel}") for rel, _, _ in files]  # reads no rows
        actions = [
            AddAction(f"{self.run_id}/{rel}", size, _partition_values(rel), mtime, True,
                      json.dumps({"numRecords": footer.num_rows}))
            for (rel, size, mtime), footer in zip(files, footers)
        ]
        schema = deltalake.Schema.from_arrow(_schema(footers[0], partition_by))
        if deltalake.DeltaTable.is_deltatable(table, storage_options=self._options):
            current = deltalake.DeltaTable(table, storage_options=self._options)
            current.create_write_transaction(actions, "overwrite", schema, partition_by or None)
        else:
            create_table_with_add_actions(table, schema, actions, "error", partition_by or None,
                                          storage_options=self._options)
        version = deltalake.DeltaTable(table, storage_options=self._options).version()
        log.info("delta: %s version %d, %d files", table, version, len(actions))
        return version

    def _append_run(self, manifest: dict[str, Any], versions: dict[str, int]) -> None:
        lineage = manifest.get("lineage") or {}
        row = {
            "run_id": manifest["run_id"],
            "lineage_id": lineage.get("lineage_id"),
            "previous_run_id": lineage.get("previous_run_id"),
            "started_at": manifest["started_at"],
            "finished_at": manifest["finished_at"],
            # After every table's commit: a table read as of this time shows this run's version.
            "published_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "schema_version": manifest["schema_version"],
            "chosen_k": manifest["chosen_k"],
            "labelled_rows": manifest["labelled_rows"],
            **{f"{part}_version": versions.get(part) for part in TABLES},
            "artifacts": self.staging,
            "manifest": json.dumps(manifest, default=str),
        }
        table = pa.Table.from_pylist([row], schema=RUNS_SCHEMA)
        # schema_mode merge: a runs table of an earlier schema_version gains the new tables' columns.
        require_deltalake().write_deltalake(f"{self.output}/{RUNS}", table, mode="append", schema_mode="merge",
                                     storage_options=self._options)

    def _keep_last_runs(self) -> None:
        """Vacuums every table down to the versions of the last ``keep_runs`` runs."""
        deltalake = require_deltalake()
        runs = sorted(read_runs(self.output, self.storage_options), key=_run_order)
        kept = runs[-self.keep_runs:]
        for part in TABLES:
            table = f"{self.output}/{part}"
            if not deltalake.DeltaTable.is_deltatable(table, storage_options=self._options):
                continue
            dt = deltalake.DeltaTable(table, storage_options=self._options)
            keep = sorted({r.get(f"{part}_version") for r in kept if r.get(f"{part}_version") is not None})
            vacuum = dict(retention_hours=0, enforce_retention_duration=False, full=True, keep_versions=keep)
            # A vacuum commits twice to the log: only when it has data files to delete (not just
            # the checksum and _SUCCESS files Spark writes beside them).
            if any(not is_hidden(os.path.basename(f)) for f in dt.vacuum(dry_run=True, **vacuum)):
                deleted = dt.vacuum(dry_run=False, **vacuum)
                log.info("delta: vacuumed %d files of %s, keeping versions %s", len(deleted), table, keep)
        kept_ids = {run["run_id"] for run in kept}
        artifacts = f"{self.output}/{ARTIFACTS}"
        for name in self.fs.listdir(artifacts) if self.fs.exists(artifacts) else []:
            if name not in kept_ids:  # older runs', and those of runs killed before publishing
                self.fs.delete(f"{artifacts}/{name}")
        if self.is_local:
            _remove_empty_folders(local_path(self.output))

    @property
    def _options(self) -> Optional[dict[str, str]]:
        return plain_options(self.storage_options)


def _failpoint(name: str) -> None:
    """Crash tests: ``SEGMENTATION_FAILPOINT=after-labels`` SIGKILLs the job right there (tests/test_delta_crash.py)."""
    if os.environ.get("SEGMENTATION_FAILPOINT") == name:
        log.warning("failpoint %s: killing the job", name)
        os.kill(os.getpid(), signal.SIGKILL)


def _partition_values(relative: str) -> dict[str, str]:
    """``segment=3/part-0.parquet`` -> ``{"segment": "3"}`` (Spark's partition folders)."""
    return dict(unquote(p).split("=", 1) for p in relative.split("/")[:-1] if "=" in p)


def _footer(path: str):
    """A Parquet file's footer (its schema and row count), read from a local path or an object store."""
    import pyarrow.parquet as pq
    from pyarrow import fs as pafs

    if is_local_path(path):
        return pq.read_metadata(local_path(path))
    filesystem, inside = pafs.FileSystem.from_uri(path.replace("s3a://", "s3://", 1))
    with filesystem.open_input_file(inside) as handle:
        return pq.read_metadata(handle)


def _schema(footer, partition_by: list[str]) -> pa.Schema:
    """The table's Arrow schema: a data file's, plus the partition columns Spark left out of the files."""
    schema = footer.schema.to_arrow_schema().remove_metadata()
    for name in partition_by:  # the job's partition columns are all the segment number
        schema = schema.append(pa.field(name, pa.int32()))
    return schema


def _remove_empty_folders(root: str) -> None:
    """Deletes the empty folders under ``root`` (a vacuum deletes files, not folders)."""
    for folder, _, _ in os.walk(root, topdown=False):
        if folder != root and not os.listdir(folder):
            os.rmdir(folder)


def _run_order(run: dict[str, Any]) -> tuple[str, str]:
    return (run["finished_at"] or "", run["run_id"])


RUNS_SCHEMA = pa.schema(
    [("run_id", pa.string()), ("lineage_id", pa.string()), ("previous_run_id", pa.string()),
     ("started_at", pa.string()), ("finished_at", pa.string()),
     ("published_at", pa.string()), ("schema_version", pa.int32()),
     ("chosen_k", pa.int32()), ("labelled_rows", pa.int64())]
    + [(f"{part}_version", pa.int64()) for part in TABLES]
    + [("artifacts", pa.string()), ("manifest", pa.string())]
)


# --- reading -----------------------------------------------------------------------------


def read_runs(output: str, storage_options: Optional[Mapping[str, str]] = None) -> list[dict[str, Any]]:
    """Every row of OUTPUT's ``runs`` table (one per published run), in commit order."""
    deltalake = require_deltalake()
    table = deltalake.DeltaTable(f"{output.rstrip('/')}/{RUNS}",
                                 storage_options=plain_options(storage_options))
    return sorted(table.to_pyarrow_table().to_pylist(), key=_run_order)


def latest_run(output: str, storage_options: Optional[Mapping[str, str]] = None) -> Optional[dict[str, Any]]:
    runs = read_runs(output, storage_options)
    return runs[-1] if runs else None


def read_table(spark: SparkSession, output: str, part: str, version: int,
               storage_options: Optional[Mapping[str, str]] = None) -> DataFrame:
    """One version of one of OUTPUT's tables as a Spark DataFrame, from the files delta-rs lists for it.

    (A ``spark.read.parquet`` of the table's folder would also read files that later versions
    removed and files no version lists.) Partition values come from the log, one read per value.
    """
    deltalake = require_deltalake()
    root = f"{output.rstrip('/')}/{part}"
    dt = deltalake.DeltaTable(root, version=version,
                              storage_options=plain_options(storage_options))
    actions = pa.table(dt.get_add_actions(flatten=True))
    paths = [f"{root}/{unquote(p)}" for p in actions.column("path").to_pylist()]  # the log's paths are URIs
    partition_by = dt.metadata().partition_columns
    if not partition_by:
        return spark.read.parquet(*paths)
    (name,) = partition_by  # the job's tables have at most one partition column
    by_value: dict[Any, list[str]] = {}
    for path, value in zip(paths, actions.column(f"partition.{name}").to_pylist()):
        by_value.setdefault(value, []).append(path)
    parts = [spark.read.parquet(*files).withColumn(name, F.lit(value).cast("int"))  # segment, as _schema types it
             for value, files in sorted(by_value.items())]
    result = parts[0]
    for other in parts[1:]:
        result = result.unionByName(other)
    return result
