"""The one exception base and the one-line message every mvit command shows.

Every layer (models, exporters, benchmarks) raises a subclass of `MvitError` for anything the
user can fix; its message is one line saying what was wrong and what to do. The CLIs turn it
into `error: <message>` and its exit code (mvit.cli_support).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # a verification check failed / a latency regression was found
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3  # a bug in mvit: one line, the traceback with MVIT_DEBUG=1
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM, as shells report SIGINT

_MAX_DETAIL = 300


class MvitError(Exception):
    """A user-facing failure: one line, what was wrong and what to do. Exit code 2 by default."""

    exit_code = EXIT_BAD_INPUT


def one_line(exc: BaseException, limit: int = _MAX_DETAIL) -> str:
    """The first non-empty line of an exception's message (or its type), at most `limit` chars.

    Third-party messages can be empty, many lines long, or point users at unsafe options; only
    their first line is ever shown, and never an empty string.
    """
    for line in str(exc).splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return type(exc).__name__
