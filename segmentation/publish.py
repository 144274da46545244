"""Stage 9, publish: every output is written to a staging directory beside OUTPUT and
swapped in only once all parts are complete, ``manifest.json`` and ``_SUCCESS`` last.

Until the swap nothing under OUTPUT changes, so a run that fails leaves the previous
publish as it was. The swap is two renames (OUTPUT -> .NAME.previous-RUN, staging
-> OUTPUT): atomic each on a local or HDFS file system. On object stores a rename
is a copy; see the README for what that means.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession

from segmentation.errors import InputError
from segmentation.read import is_local_path, local_path

MANIFEST = "manifest.json"
SUCCESS = "_SUCCESS"
PARTS = ("labels", "profiles", "elbow", "model", "report")


class _LocalFs:
    def exists(self, path: str) -> bool:
        return os.path.exists(local_path(path))

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

    def listdir(self, path: str) -> list[str]:
        return [s.getPath().getName() for s in self._fs.listStatus(self._path(path))]

    def rename(self, src: str, dst: str) -> None:
        if not self._fs.rename(self._path(src), self._path(dst)):
            raise OSError(f"rename {src} -> {dst} failed")

    def delete(self, path: str) -> None:
        self._fs.delete(self._path(path), True)

    def mkdirs(self, path: str) -> None:
        self._fs.mkdirs(self._path(path))

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

    @classmethod
    def for_output(cls, spark: SparkSession, output: str, run_id: str) -> "Publisher":
        output = output.rstrip("/")
        fs = _LocalFs() if is_local_path(output) else _HadoopFs(spark, output)
        publisher = cls(output, run_id, fs)
        publisher.check_replaceable()
        return publisher

    @property
    def staging(self) -> str:
        return self._beside(f"staging-{self.run_id}")

    @property
    def previous(self) -> str:
        return self._beside(f"previous-{self.run_id}")

    def path(self, part: str) -> str:
        return f"{self.staging}/{part}"

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, _LocalFs)

    def check_replaceable(self) -> None:
        """Refuses to replace a directory that is not an earlier publish of this job."""
        if not self.fs.exists(self.output):
            return
        entries = self.fs.listdir(self.output)
        if entries and MANIFEST not in entries:
            raise InputError(
                f"output {self.output} exists and is not a segmentation output (no {MANIFEST}); "
                "refusing to replace it: choose another --output"
            )

    def begin(self) -> None:
        self.fs.delete(self.staging)
        self.fs.mkdirs(self.staging)

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

    def abort(self) -> None:
        self.fs.delete(self.staging)

    def _beside(self, suffix: str) -> str:
        head, _, name = self.output.rpartition("/")
        hidden = f".{name}.{suffix}"
        return f"{head}/{hidden}" if head else hidden
