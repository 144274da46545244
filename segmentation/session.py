"""The SparkSession the entry points build; the library only ever receives one."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from contextlib import contextmanager
from typing import Iterator

from pyspark.sql import SparkSession

from segmentation.config import JobConfig
from segmentation.errors import InputError, first_line
from segmentation.package import package_zip

log = logging.getLogger(__name__)


@contextmanager
def job_session(config: JobConfig, remote: str | None = None) -> Iterator[SparkSession]:
    """The session a command runs on: the caller's active one (a notebook's, a platform's,
    a test's), never stopped here; else one built by ``build_session`` and stopped at the end."""
    active = None if (remote or os.environ.get("SPARK_REMOTE")) else SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    spark = build_session(config, remote)
    try:
        yield spark
    finally:
        spark.stop()


def boot_jvm(remote: str | None = None) -> None:
    """Starts the driver's JVM in a background thread when ``job_session`` will build a classic
    session, so that the job's own imports (pandas, spark.ml, matplotlib: about 1.4 s here) run
    while it boots (about 2 s here) instead of before it. ``build_session`` then waits for it
    (``SparkContext._ensure_initialized`` holds its lock while launching) and, should the launch
    have failed, launches again and raises in the main thread. Nothing to do on Spark Connect,
    beside an active session, or where a JVM is already up."""
    from pyspark import SparkContext

    if (remote or os.environ.get("SPARK_REMOTE") or SparkContext._gateway is not None
            or SparkSession.getActiveSession() is not None):
        return

    def boot() -> None:
        try:
            SparkContext._ensure_initialized()
        except Exception:  # noqa: BLE001 - build_session tries again and raises it
            pass

    threading.Thread(target=boot, name="boot-jvm", daemon=True).start()


def build_session(config: JobConfig, remote: str | None = None) -> SparkSession:
    """A classic session, or a Spark Connect one when ``remote`` (or ``SPARK_REMOTE``) names a server.

    Classic: the config's Spark properties, where ``spark-submit --conf`` did not set them.
    Connect: the server owns its static properties; the config's runtime (SQL) properties
    are set on the session and the others are logged and left to the server.
    """
    remote = remote or os.environ.get("SPARK_REMOTE")
    if remote:
        return _connect_session(config, remote)
    from pyspark import SparkConf, SparkContext

    # Attach to the JVM first, so that SparkConf() holds what spark-submit was given.
    SparkContext._ensure_initialized()
    conf = SparkConf()
    conf.setIfMissing("spark.master", "local[*]")
    for key, value in config.spark.properties.items():
        if not conf.contains(key):
            conf.set(key, value)
    if not conf.contains("spark.ui.showConsoleProgress"):
        conf.set("spark.ui.showConsoleProgress", "true" if sys.stderr.isatty() else "false")
    conf.setIfMissing("spark.app.name", config.spark.app_name)
    spark = SparkSession.builder.config(conf=conf).getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def _connect_session(config: JobConfig, remote: str) -> SparkSession:
    spark = SparkSession.builder.remote(remote).appName(config.spark.app_name).getOrCreate()
    left = []
    for key, value in config.spark.properties.items():
        if not key.startswith("spark.sql."):
            left.append(key)
            continue
        try:
            spark.conf.set(key, value)
        except Exception:  # noqa: BLE001 - a static SQL property: the server's to set
            left.append(key)
    if left:
        log.info("Spark Connect: left to the server: %s", ", ".join(sorted(left)))
    return spark


_SHIPPED: set[str] = set()
_SHIPPING = threading.Lock()  # one upload a session, whichever thread asks first


def ship_package(spark: SparkSession) -> None:
    """On Spark Connect, gives the server's Python workers this package as a Python artifact.

    Functions that run on the server (the tasks engine's ``mapInPandas``) import
    ``segmentation``; a remote server's Python does not have it. Once per session. A server
    that refuses artifacts is an input error that says what to install there instead.
    """
    if not is_connect(spark):
        return
    with _SHIPPING, tempfile.TemporaryDirectory() as directory:
        if spark.session_id in _SHIPPED:  # shipped already, maybe by elbow.start_workers' thread
            return
        archive = package_zip(directory)
        try:
            spark.addArtifacts(archive, pyfile=True)
        except Exception as exc:  # noqa: BLE001 - the server's refusal, in its words
            raise InputError(
                f"the Spark Connect server refused the job's Python package ({first_line(exc)}); "
                "install it in the server's Python instead: pip install customer-segmentation (make dist)"
            ) from None
        _SHIPPED.add(spark.session_id)
    log.info("Spark Connect: shipped the segmentation package to the server's Python workers")


def is_connect(spark: SparkSession) -> bool:
    """True for a Spark Connect session (no SparkContext, no JVM in this process)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def thread_setup(spark: SparkSession):
    """Prepares a pool thread for Spark: its own FAIR scheduler pool on classic Spark; on
    Spark Connect, the session made active in the thread (pyspark.ml's remote calls, such as
    a model's summary, look for the thread's active session)."""
    context = None if is_connect(spark) else spark.sparkContext
    lock = threading.Lock()

    def name_pool(pool: str) -> None:
        if context is None:
            activate = getattr(type(spark), "_set_default_and_active_session", None)
            if activate is not None:
                activate(spark)
            return
        with lock:
            context.setLocalProperty("spark.scheduler.pool", pool)

    return name_pool
