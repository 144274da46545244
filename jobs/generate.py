"""Synthetic customers with planted segments, or their transactions, written as Parquet (or CSV).

    ./spark-submit.sh jobs/generate.py --rows N --output PATH [--seed S] [--segments K] [--partitions P]
    ./spark-submit.sh jobs/generate.py --kind transactions --rows N --customers M --output PATH

Rows are made on the executors from spark.range: the driver never holds them.
"""

import sys

from segmentation.commands.generate import main

if __name__ == "__main__":
    sys.exit(main())
