"""Label new customers with a saved segment model.

    ./spark-submit.sh jobs/score.py --help

The command itself (arguments, exit codes) is segmentation/commands/score.py; this is the
script spark-submit runs.
"""

import sys

from segmentation.commands.score import main

if __name__ == "__main__":
    sys.exit(main())
