"""The segment job: read customers, sweep K, label, profile and publish segments.

    ./spark-submit.sh jobs/segment.py [--config conf/local.yaml] [--input PATH] ...

Exit codes: 0 done; 2 bad input or config (one ``error:`` line on stderr, nothing
written to OUTPUT); 1 anything else.
"""

import sys

from segmentation.commands.segment import main

if __name__ == "__main__":
    sys.exit(main())
