"""The job's background writes: they run beside the caller, and a failure reaches the caller."""

import threading

import pytest
from pyspark.errors import AnalysisException

from segmentation.background import POOL, Background


def test_writes_run_on_their_own_thread_in_their_own_pool_and_wait_returns_after_them(spark, tmp_path):
    seen = {}
    release = threading.Event()

    def write(path):
        seen["thread"] = threading.current_thread().name
        seen["pool"] = spark.sparkContext.getLocalProperty("spark.scheduler.pool")
        release.wait(timeout=60)  # the caller goes on while this write is under way
        spark.range(3).coalesce(1).write.parquet(path)

    writes = Background(spark)
    writes.submit("numbers", write, str(tmp_path / "numbers"))
    assert not (tmp_path / "numbers").exists()
    release.set()
    writes.wait()
    assert spark.read.parquet(str(tmp_path / "numbers")).count() == 3
    assert seen["thread"].startswith(POOL) and seen["pool"] == POOL
    assert spark.sparkContext.getLocalProperty("spark.scheduler.pool") != POOL  # the caller's own pool


def test_the_first_failed_write_is_raised_by_wait_after_every_write_ended(spark, tmp_path):
    taken = str(tmp_path / "taken")
    spark.range(1).write.parquet(taken)
    writes = Background(spark)
    writes.submit("taken", lambda: spark.range(2).write.parquet(taken))  # exists: Spark refuses
    writes.submit("after", lambda: spark.range(2).write.parquet(str(tmp_path / "after")))
    with pytest.raises(AnalysisException):
        writes.wait()
    assert spark.read.parquet(str(tmp_path / "after")).count() == 2  # it ran to its end first
    assert spark.read.parquet(taken).count() == 1


def test_settle_after_a_failure_lets_running_writes_end_and_raises_nothing(spark, tmp_path):
    started, release = threading.Event(), threading.Event()

    def slow():
        started.set()
        release.wait(timeout=60)
        spark.range(4).write.parquet(str(tmp_path / "slow"))

    writes = Background(spark)
    writes.submit("slow", slow)
    writes.submit("queued", lambda: spark.range(1).write.parquet(str(tmp_path / "queued")))
    started.wait(timeout=60)
    threading.Timer(0.5, release.set).start()
    writes.settle()  # returns only once the running write has ended; the queued one never starts
    assert spark.read.parquet(str(tmp_path / "slow")).count() == 4
    assert not (tmp_path / "queued").exists()
