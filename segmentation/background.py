"""The job's small writes, run beside its main passes rather than after them.

The model, the elbow table and the prediction model are known long before the labels are
written; each is a handful of small Spark jobs (a model save is one job per stage of the
pipeline) that would otherwise run one after another at the end, with the cluster idle
between them. Here they run on one background thread (its own FAIR scheduler pool on
classic Spark; the session made active on Spark Connect) while the driver goes on with
labels, profiles and migrations, and ``wait`` is where the job meets them before the report
and the commit read what they wrote.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor, wait as wait_all
from typing import Any, Callable

from pyspark.sql import SparkSession

from segmentation.session import thread_setup

log = logging.getLogger(__name__)

POOL = "publish"


class Background:
    """Writes submitted in order on one thread; ``wait`` re-raises the first that failed."""

    def __init__(self, spark: SparkSession):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=POOL,
                                        initializer=thread_setup(spark), initargs=(POOL,))
        self._writes: list[tuple[str, Future]] = []

    def submit(self, name: str, write: Callable[..., Any], *args: Any) -> None:
        log.debug("writing %s in the background", name)
        self._writes.append((name, self._pool.submit(write, *args)))

    def wait(self) -> None:
        """Returns when every write has finished; raises the first failure, by submission order."""
        try:
            for name, future in self._writes:
                exc = future.exception()
                if exc is not None:
                    log.info("writing %s failed", name)
                    raise exc
        finally:
            self._pool.shutdown(wait=True)

    def settle(self) -> None:
        """After the job failed: lets running writes end, without raising, so that cleaning up the
        run's staging does not race a write into it."""
        for _, future in self._writes:
            future.cancel()
        wait_all([future for _, future in self._writes])
        self._pool.shutdown(wait=True)
