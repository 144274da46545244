"""Label new customers with a saved segment model.

    ./spark-submit.sh jobs/score.py --model OUTPUT/model --input PATH --output PATH2 \
        [--input-format parquet|csv|json|table] [--id-col NAME] [--config conf/local.yaml] \
        [--input-kind transactions] [--set KEY=VALUE ...]

A model fitted on transactions scores transactions (``--input-kind transactions``, with the
columns under ``input.transactions.*``): the RFM columns are built first, as the segment
job builds them, to the new data's own reference date unless one is set.

Writes PATH2/labels/segment=<n>/ (the segment job's layout), PATH2/manifest.json and
PATH2/_SUCCESS, published atomically. Exit codes as the segment job: 0, 2 (bad input,
one ``error:`` line), 1.
"""

import sys

from segmentation.commands.score import main

if __name__ == "__main__":
    sys.exit(main())
