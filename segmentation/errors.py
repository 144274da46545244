"""The one exception type the entry points map to exit code 2."""


class InputError(Exception):
    """Bad input or bad configuration: the user can fix it.

    The message is a single line that names the problem and the path, key or
    column involved; the job prints it as ``error: <message>`` and exits 2.
    Anything else that escapes the job is a bug or an infrastructure fault (exit 1).
    """
