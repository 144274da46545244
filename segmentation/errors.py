"""The one exception type the entry points map to exit code 2."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (Spark's run to pages), or its type's name."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class InputError(Exception):
    """Bad input or bad configuration: the user can fix it.

    The message is a single line that names the problem and the path, key or
    column involved; the job prints it as ``error: <message>`` and exits 2.
    Anything else that escapes the job is a bug or an infrastructure fault (exit 1).
    """


class DriftError(Exception):
    """The segments drifted past the configured limits and ``drift.fail_on_drift`` is set: the
    run published nothing; the job prints ``error: <message>`` and exits 3 (EXIT_DRIFT)."""
