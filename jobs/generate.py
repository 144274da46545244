"""Synthetic customers with planted segments, or their transactions, as Parquet (or CSV).

    ./spark-submit.sh jobs/generate.py --help

The command itself (arguments, exit codes) is segmentation/commands/generate.py; this is the
script spark-submit runs.
"""

import sys

from segmentation.commands.generate import main

if __name__ == "__main__":
    sys.exit(main())
