"""The job's small writes, run beside its main passes rather than after them.

The model, the elbow table and the prediction model are known long before the labels are
written; each is a handful of small Spark jobs (a model save is one job per stage of the
pipeline) that would otherwise run one after another at the end, with the cluster idle
between them. Here they run on background threads (their own FAIR scheduler pool on
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
# Two threads: the small tables (the profiles are written last, after the labels) need not queue
# behind the model's save, and the report, which reads the tables only, runs while it finishes.
WORKERS = 2


class Background:
    """Writes submitted in order, run on up to ``WORKERS`` threads; ``wait`` re-raises the first
    that failed."""

    def __init__(self, spark: SparkSession):
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix=POOL,
                                        initializer=thread_setup(spark), initargs=(POOL,))
        self._writes: list[tuple[str, Future]] = []

    def submit(self, name: str, write: Callable[..., Any], *args: Any) -> None:
        log.debug("writing %s in the background", name)
        self._writes.append((name, self._pool.submit(write, *args)))

    def wait(self, names: tuple[str, ...] | None = None) -> None:
        """Returns when the writes of ``names`` (default: every write) have finished; raises the
        first of them that failed, by submission order. Waiting for every write ends the thread."""
        try:
            for name, future in self._writes:
                if names is not None and name not in names:
                    continue
                exc = future.exception()
                if exc is not None:
                    log.info("writing %s failed", name)
                    raise exc
        finally:
            if names is None:
                self._pool.shutdown(wait=True)

    def settle(self) -> None:
        """After the job failed: lets running writes end, without raising, so that cleaning up the
        run's staging does not race a write into it."""
        for _, future in self._writes:
            future.cancel()
        wait_all([future for _, future in self._writes])
        self._pool.shutdown(wait=True)
