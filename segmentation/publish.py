"""Stage 9, publish: every output is written to a staging directory beside OUTPUT and
swapped in only once all parts are complete, ``manifest.json`` and ``_SUCCESS`` last.

Until the swap nothing under OUTPUT changes, so a run that fails leaves the previous
publish as it was. The swap is two renames (OUTPUT -> .NAME.previous-RUN, staging
-> OUTPUT): atomic each on a local or HDFS file system. On object stores a rename
is a copy; see the README for what that means.

On a local file system a run holds an exclusive lock on ``.NAME.lock`` beside OUTPUT
from start to end, so a second run on the same OUTPUT is refused at once; the
kernel releases the lock when a run dies, even by SIGKILL. Holding it, a run
clears what a killed run left beside OUTPUT (staging) and, if a run was killed
between the two renames of its swap, puts the previous publish back first.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from datetime import datetime, timezone
from dataclasses import dataclass
from typing import Any, Optional

from pyspark.sql import SparkSession
from pyspark.sql.types import StructType

from segmentation.errors import InputError
from segmentation.read import is_hidden, is_local_path, local_path
from segmentation.session import is_connect
from segmentation.sql import local_table


def write_small_table(spark: SparkSession, rows: list, schema: StructType | str, path: str) -> None:
    """A table of a few rows (the elbow, the profiles, the migrations, the backtest) as one Parquet file."""
    local_table(spark, rows, schema).coalesce(1).write.parquet(path)


def utc_now() -> str:
    """The time of day for manifests: UTC, ISO 8601, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    """Sortable by start time, unique across machines: ``20261123T120000Z-1a2b3c4d``."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


# The version of the output contract (the README's table); every manifest carries it.
SCHEMA_VERSION = 9
MANIFEST = "manifest.json"
SUCCESS = "_SUCCESS"
# The outputs that are tables (Parquet folders; with output.format delta, Delta tables).
TABLES = ("labels", "profiles", "elbow", "migrations", "predictions_eval")
RUNS_TABLE = "runs"  # output.format delta: the table that publishes each run (segmentation/delta.py)


def model_manifest(model_path: str) -> Optional[dict[str, Any]]:
    """The manifest of the segment run that made the model at ``model_path`` (beside its
    ``model/``), when the model is on a local path and the manifest is there."""
    path = os.path.join(os.path.dirname(local_path(model_path).rstrip("/")), MANIFEST)
    if not (is_local_path(model_path) and os.path.exists(path)):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def is_delta_output(path: str, storage_options: Any = None) -> bool:
    """Whether ``path`` is an output of ``output.format delta`` (it has a ``runs`` Delta table)."""
    runs = f"{path.rstrip('/')}/{RUNS_TABLE}"
    if is_local_path(path):
        return os.path.isdir(os.path.join(local_path(runs), "_delta_log"))
    try:
        from deltalake import DeltaTable
    except ImportError:
        return False
    return DeltaTable.is_deltatable(runs, storage_options=plain_options(storage_options))


def plain_options(storage_options: Any) -> Optional[dict[str, str]]:
    """Storage options as deltalake takes them: a dict, or None for none."""
    return dict(storage_options) if storage_options else None


def open_publisher(spark: SparkSession, output: Any, run_id: str) -> "Publisher":
    """The publisher of ``output.format`` (an OutputConfig): the plain Parquet swap, or Delta tables."""
    if output.format == "delta":
        from segmentation.delta import DeltaPublisher, require_deltalake

        require_deltalake()  # before the run, not at its end
        return DeltaPublisher.for_output(spark, output.path, run_id, keep_runs=output.keep_runs,
                                         storage_options=output.storage_options or None)
    return Publisher.for_output(spark, output.path, run_id)


class _LocalFs:
    def exists(self, path: str) -> bool:
        return os.path.exists(local_path(path))

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(local_path(path))

    def listdir(self, path: str) -> list[str]:
        return os.listdir(local_path(path))

    def rename(self, src: str, dst: str) -> None:
        os.rename(local_path(src), local_path(dst))

    def delete(self, path: str) -> None:
        target = local_path(path)
        if os.path.isdir(target):
            shutil.rmtree(target)
        elif os.path.exists(target):
            os.remove(target)

    def mkdirs(self, path: str) -> None:
        os.makedirs(local_path(path), exist_ok=True)

    def files(self, path: str) -> list[tuple[str, int, int]]:
        """The data files under ``path``: (relative path, bytes, modified in ms); hidden ones left out."""
        root = local_path(path)
        found = []
        for folder, _, names in os.walk(root):
            for name in names:
                if not is_hidden(name):
                    full = os.path.join(folder, name)
                    stat = os.stat(full)
                    found.append((os.path.relpath(full, root), stat.st_size, int(stat.st_mtime * 1000)))
        return sorted(found)

    def write_text(self, path: str, text: str) -> None:
        with open(local_path(path), "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())


class _HadoopFs:
    """HDFS, S3A, ABFS, GCS...: through the JVM's Hadoop FileSystem (classic Spark only)."""

    def __init__(self, spark: SparkSession, path: str):
        jvm = spark.sparkContext._jvm
        self._path = jvm.org.apache.hadoop.fs.Path
        self._fs = self._path(path).getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())

    def exists(self, path: str) -> bool:
        return bool(self._fs.exists(self._path(path)))

    def is_dir(self, path: str) -> bool:
        return bool(self._fs.getFileStatus(self._path(path)).isDirectory())

    def listdir(self, path: str) -> list[str]:
        return [s.getPath().getName() for s in self._fs.listStatus(self._path(path))]

    def rename(self, src: str, dst: str) -> None:
        if not self._fs.rename(self._path(src), self._path(dst)):
            raise OSError(f"rename {src} -> {dst} failed")

    def delete(self, path: str) -> None:
        self._fs.delete(self._path(path), True)

    def mkdirs(self, path: str) -> None:
        self._fs.mkdirs(self._path(path))

    def files(self, path: str) -> list[tuple[str, int, int]]:
        root = self._fs.makeQualified(self._path(path)).toString().rstrip("/") + "/"
        listing = self._fs.listFiles(self._path(path), True)
        found = []
        while listing.hasNext():
            status = listing.next()
            full = status.getPath().toString()
            if not is_hidden(status.getPath().getName()):
                found.append((full[len(root):], int(status.getLen()), int(status.getModificationTime())))
        return sorted(found)

    def write_text(self, path: str, text: str) -> None:
        stream = self._fs.create(self._path(path), True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()


@dataclass
class Publisher:
    """Owns the staging directory of one run and swaps it into OUTPUT at the end."""

    output: str
    run_id: str
    fs: Any
    lock_handle: Any = None

    @classmethod
    def for_output(cls, spark: SparkSession, output: str, run_id: str, **options: Any) -> "Publisher":
        output = output.rstrip("/")
        if not is_local_path(output) and is_connect(spark):
            raise InputError(
                f"output {output} is not a local path: on Spark Connect the job publishes through "
                "a file system this client shares with the server (a local or mounted path)"
            )
        fs = _LocalFs() if is_local_path(output) else _HadoopFs(spark, output)
        publisher = cls(output, run_id, fs, **options)
        if publisher.is_local:
            publisher.lock()
        try:
            if publisher.is_local:
                publisher.recover()
            publisher.check_replaceable()
        except BaseException:
            publisher.release()
            raise
        return publisher

    def lock(self) -> None:
        """Takes ``.NAME.lock`` beside OUTPUT, or refuses: another run is publishing there."""
        parent = local_path(self._beside("lock")).rpartition("/")[0] or "."
        try:
            if not os.path.isdir(parent):
                os.makedirs(parent, exist_ok=True)
            handle = open(local_path(self._beside("lock")), "a+", encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write beside the output {self.output}: {exc.strerror} ({parent})") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise InputError(
                f"another run is publishing to {self.output} ({holder}); "
                "wait for it to finish or choose another --output"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"run {self.run_id}, pid {os.getpid()}\n")
        handle.flush()
        self.lock_handle = handle

    def release(self) -> None:
        if self.lock_handle is not None:
            self.lock_handle.close()  # closing the file drops the flock
            self.lock_handle = None

    def recover(self) -> None:
        """Undoes what killed runs left: restores a half-swapped publish, deletes stale staging."""
        head, _, name = self.output.rpartition("/")
        parent = head or "."
        if not self.fs.exists(parent):
            return
        leftovers = sorted(n for n in self.fs.listdir(parent) if n.startswith(f".{name}."))
        previous = [n for n in leftovers if n.startswith(f".{name}.previous-")]
        if previous and not self.fs.exists(self.output):
            self.fs.rename(f"{parent}/{previous[-1]}", self.output)
        for entry in leftovers:
            if ".staging-" in entry or ".previous-" in entry:
                self.fs.delete(f"{parent}/{entry}")

    @property
    def staging(self) -> str:
        return self._beside(f"staging-{self.run_id}")

    @property
    def previous(self) -> str:
        return self._beside(f"previous-{self.run_id}")

    def path(self, part: str) -> str:
        """Where this run writes ``part`` while it runs."""
        return f"{self.staging}/{part}"

    def location(self, part: str) -> str:
        """Where ``part`` is read once the run is published (the manifest's ``outputs``)."""
        return f"{self.output}/{part}"

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, _LocalFs)

    def check_replaceable(self) -> None:
        """Refuses to replace a directory that is not an earlier publish of this job."""
        if not self.fs.exists(self.output):
            return
        if not self.fs.is_dir(self.output):
            raise InputError(
                f"output {self.output} is a file, not a directory; refusing to replace it: choose another --output"
            )
        entries = self.fs.listdir(self.output)
        if RUNS_TABLE in entries and MANIFEST not in entries and is_delta_output(self.output):
            raise InputError(
                f"output {self.output} holds Delta tables (output.format delta); a Parquet publish "
                "cannot replace them: choose another --output, or pass --output-format delta"
            )
        if entries and MANIFEST not in entries:
            raise InputError(
                f"output {self.output} exists and is not a segmentation output (no {MANIFEST}); "
                "refusing to replace it: choose another --output"
            )

    def begin(self) -> None:
        try:
            self.fs.delete(self.staging)
            self.fs.mkdirs(self.staging)
        except OSError as exc:
            self.release()
            raise InputError(f"cannot write beside the output {self.output}: {exc.strerror}") from None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        self.fs.write_text(self.path(MANIFEST), json.dumps(manifest, indent=2, default=str) + "\n")

    def commit(self, manifest: dict[str, Any]) -> None:
        """Writes the manifest and _SUCCESS into staging, then swaps staging into OUTPUT."""
        self.write_manifest(manifest)
        self.fs.write_text(self.path(SUCCESS), "")
        parent = self.output.rsplit("/", 1)[0] if "/" in self.output else "."
        self.fs.mkdirs(parent)
        had_previous = self.fs.exists(self.output)
        if had_previous:
            self.fs.rename(self.output, self.previous)
        self.fs.rename(self.staging, self.output)
        if had_previous:
            self.fs.delete(self.previous)
        self.release()

    def abort(self) -> None:
        self.fs.delete(self.staging)
        self.release()

    def _beside(self, suffix: str) -> str:
        head, _, name = self.output.rpartition("/")
        hidden = f".{name}.{suffix}"
        return f"{head}/{hidden}" if head else hidden
