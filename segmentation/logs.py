"""Log lines of the job's own progress, one per stage and per K, on stderr."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(*names: str) -> None:
    """INFO and up from ``segmentation`` and the named entry-point loggers, to stderr.

    Our loggers get their own handler rather than the root logger's: PySpark and
    py4j configure the root logger differently depending on how Python was
    started, and the progress lines must not depend on that.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    for name in ("segmentation", *names):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
