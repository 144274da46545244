"""What the entry points in jobs/ share: argument errors and bad input as one ``error:`` line."""

from __future__ import annotations

import argparse
import sys

EXIT_BAD_INPUT = 2
EXIT_DRIFT = 3  # --fail-on-drift: the segments drifted, nothing was published


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one ``error:`` line and exit 2, like every bad input."""

    def error(self, message: str) -> None:
        report_error(message)
        sys.exit(EXIT_BAD_INPUT)


def report_error(message: object, code: int = EXIT_BAD_INPUT) -> int:
    """Prints ``error: <message>`` as one line, whatever the message holds (a key or a value
    typed with a newline in it is shown as \\n)."""
    text = str(message).replace("\r", "\\r").replace("\n", "\\n")
    print(f"error: {text}", file=sys.stderr)
    return code
