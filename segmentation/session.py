"""The SparkSession the entry points build; the library only ever receives one."""

from __future__ import annotations

import sys

from pyspark import SparkConf, SparkContext
from pyspark.sql import SparkSession

from segmentation.config import JobConfig


def build_session(config: JobConfig) -> SparkSession:
    """A session with the config's Spark properties; ``spark-submit --conf`` values win."""
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
