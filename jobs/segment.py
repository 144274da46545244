"""The segment job: read customers, sweep K, label, profile and publish segments.

    ./spark-submit.sh jobs/segment.py --help

The command itself (arguments, exit codes) is segmentation/commands/segment.py; this is the
script spark-submit runs.
"""

import sys

from segmentation.commands.segment import main

if __name__ == "__main__":
    sys.exit(main())
