"""The command-line entry points: ``jobs/*.py`` under spark-submit, and the console scripts
``segment-customers``, ``score-customers`` and ``generate-customers`` of an installed wheel.

Each parses its arguments, loads the config, takes a session (the caller's active one, or
its own, stopped at the end), calls the library and maps errors to exit codes.
"""
