"""What every command (mvit-export, mvit-verify, mvit-bench, mvit-eval) does the same way.

- bad input: one `error: ...` line on stderr and exit 2, never a traceback;
- Ctrl-C or SIGTERM: one `error: interrupted ...` line and exit 130, after cleanup ran;
- a bug: one `internal error` line and exit 3 (MVIT_DEBUG=1 re-raises for the traceback);
- third-party chatter (absl, oneDNN, TensorFlow/XLA C++ logs, tqdm bars) kept off the terminal
  unless MVIT_DEBUG=1.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from .errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, MvitError, one_line
from .reading import printable

# C++ loggers read these once, when their library loads, so they are set before any import of
# torch / litert / coremltools. setdefault: a user's own setting wins.
_QUIET_ENV = {
    "TQDM_DISABLE": "1",  # converters draw their own progress bars
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow / LiteRT C++ logging
    "GLOG_minloglevel": "3",
    "ABSL_MIN_LOG_LEVEL": "3",
    "ONEDNN_VERBOSE": "0",
    "TF_ENABLE_ONEDNN_OPTS": "0",  # else TF prints a oneDNN notice on import
}
_QUIET_LOGGERS = (
    "coremltools",
    "torchao",
    "torch.utils._pytree",
    "absl",
    "jax",
    "tensorflow",
    "litert_torch",
    "ai_edge_torch",
    "onnxscript",
    "onnx_ir",
    "torch.onnx",
    "torch._dynamo",
    "torch.export",
)


# Notices C++ runtimes print on fd 2 whatever the log level: TFLite's minimal logger ("INFO: Created
# TensorFlow Lite XNNPACK delegate for CPU."), absl's pre-init warning and glog-style I/W lines.
_NATIVE_CHATTER = re.compile(rb"^(INFO: |WARNING: All log messages before absl::InitializeLog|[IW]\d{4} \d\d:\d\d:\d\d)")

INTERRUPTED = "interrupted; nothing half-written was left under a final name"


def debug() -> bool:
    return bool(os.environ.get("MVIT_DEBUG"))


def quiet_third_party() -> None:
    """Keep the terminal to mvit's own lines; MVIT_DEBUG=1 keeps everything."""
    if debug():
        return
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:  # absl installs its own handler on first use and would print its warnings anyway
        from absl import logging as absl_logging  # type: ignore[import-not-found]

        absl_logging.set_verbosity(absl_logging.ERROR)
        absl_logging.set_stderrthreshold("error")
    except Exception:  # absl is optional (it comes with the TFLite extra)
        pass
    warnings.filterwarnings("ignore")


@contextlib.contextmanager
def native_chatter_filtered() -> Iterator[None]:
    """Collect what native code writes to fd 2 during the block and pass on all but known notices.

    LiteRT's interpreter announces its XNNPACK delegate from C++, past every logger setting, so
    it can only be filtered at the file descriptor. Python's own stderr keeps going straight to
    the terminal meanwhile (progress bars stay live); MVIT_DEBUG=1 leaves fd 2 alone.
    """
    if debug():
        yield
        return
    try:
        sys.stderr.flush()
        python_on_fd2 = sys.stderr.fileno() == 2
    except Exception:  # a captured stderr (tests) has no descriptor: leave it as it is
        python_on_fd2 = False
    saved = os.dup(2)
    python_stderr = sys.stderr
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        if python_on_fd2:
            sys.stderr = open(saved, "w", closefd=False, buffering=1)
        try:
            yield
        finally:
            if python_on_fd2:
                sys.stderr.flush()
                sys.stderr = python_stderr
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = b"".join(line for line in sink if not _NATIVE_CHATTER.match(line))
            if kept:
                os.write(2, kept)


PROGRESS_SECONDS_ENV = "MVIT_PROGRESS_SECONDS"
_PROGRESS_SECONDS = 30.0


class PlainProgress:
    """Progress where stderr is not a terminal (CI logs, pipes), where a bar cannot be drawn: every
    MVIT_PROGRESS_SECONDS (default 30) one line on stderr saying what runs and for how long. Work
    that ends sooner prints nothing, and stdout never gets a line, so piped results stay clean."""

    def __init__(self, prog: str, describe: Callable[[], str], enabled: bool | None = None) -> None:
        self.prog, self.describe = prog, describe
        self.enabled = (not _stderr_is_terminal()) if enabled is None else enabled
        self.every = _progress_seconds()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def __enter__(self) -> PlainProgress:
        if self.enabled and _stderr_is_a_file():
            self._started = time.monotonic()
            self._thread = threading.Thread(target=self._run, name="mvit-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            elapsed = int(time.monotonic() - self._started)
            try:
                print(f"{self.prog}: {self.describe()} ({elapsed // 60}:{elapsed % 60:02d} elapsed)", file=sys.stderr, flush=True)
            except (OSError, ValueError):  # stderr closed (a pipe whose reader went away): stay quiet
                return


def describe_bars(progress: Any) -> str:
    """What a rich Progress shows, as one plain phrase: the first unfinished task and its count."""
    tasks = [t for t in progress.tasks if not t.finished] or list(progress.tasks)
    if not tasks:
        return "starting"
    task = tasks[0]
    eta = task.time_remaining
    left = f", about {int(eta) // 60}:{int(eta) % 60:02d} left" if eta is not None and task.completed else ""
    return f"{task.description} ({int(task.completed)} of {int(task.total or 0)}{left})"


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _stderr_is_a_file() -> bool:
    """A log file, a pipe or a terminal has a descriptor; a caller's in-memory capture (a library
    user's redirect, a test) does not, and gets no progress lines mixed into what it collects."""
    try:
        sys.stderr.fileno()
        return True
    except (AttributeError, ValueError, OSError):
        return False


def _progress_seconds() -> float:
    try:
        value = float(os.environ.get(PROGRESS_SECONDS_ENV, _PROGRESS_SECONDS))
    except ValueError:
        return _PROGRESS_SECONDS
    return value if value > 0 and value == value else _PROGRESS_SECONDS


def fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    """Print the one error line and return the exit code; text it quotes from files cannot drive the terminal."""
    print(f"error: {printable(message)}", file=sys.stderr, flush=True)
    return code


def print_note(console: Any, message: str) -> None:
    """One `note:` line on a rich console (it keeps live bars intact); what it quotes from files is
    escaped as in error lines, so a label or a file name cannot drive the terminal."""
    console.print(f"note: {printable(message)}", markup=False, highlight=False, soft_wrap=True)


# Set by a SIGINT/SIGTERM: libraries can swallow the KeyboardInterrupt it raises (a bare `except:`
# around an import) or die of the half-imported module it leaves (AttributeError), so the outcome of
# a run that was interrupted is decided by this flag, not by which exception came out.
_interrupt = {"requested": False}


def interrupt_requested() -> bool:
    """True once Ctrl-C or SIGTERM reached a running command; nothing may be published after it."""
    return _interrupt["requested"]


def _note_sigterm(signum: int, frame: Any) -> None:
    _interrupt["requested"] = True


def note_sigterm_until_run() -> None:
    """Called by each command's module before its heavy imports: a SIGTERM that arrives while torch
    or a converter is still being imported is noted (raising there would leave half-imported
    modules) and answered by run_cli with exit 130 before any work starts. Not installed from a thread."""
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, _note_sigterm)


def _signal_as_interrupt(signum: int, frame: Any) -> None:
    _interrupt["requested"] = True
    raise KeyboardInterrupt


def run_cli(command: Any, argv: list[str] | None, prog: str) -> int:
    """Run a click/typer command with the shared error path; returns the exit code."""
    previous: dict[int, Any] | None = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):  # cleanup runs as for Ctrl-C, and the flag is set
            was = signal.getsignal(sig)
            previous[sig] = signal.SIG_DFL if was is _note_sigterm else was  # type: ignore[index]
            signal.signal(sig, _signal_as_interrupt)
    except ValueError:  # not the main thread (tests calling in a thread): keep the default
        previous = None
    try:
        if interrupt_requested():  # SIGTERM during the imports: nothing started yet
            return fail(INTERRUPTED, EXIT_INTERRUPTED)
        rv = command.main(args=argv, prog_name=prog, standalone_mode=False)
        if rv == EXIT_INTERRUPTED or interrupt_requested():  # typer turns Ctrl-C into a silent exit 130 of its own
            return fail(INTERRUPTED, EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        return fail(INTERRUPTED, EXIT_INTERRUPTED)
    except MvitError as exc:
        if interrupt_requested():
            return fail(INTERRUPTED, EXIT_INTERRUPTED)
        return fail(one_line(exc), exc.exit_code)
    except Exception as exc:
        if interrupt_requested():  # e.g. a module left half-imported by the interrupt
            return fail(INTERRUPTED, EXIT_INTERRUPTED)
        # typer 0.29 vendors click (typer._click), so its exceptions are matched by shape.
        if exc.__class__.__name__ == "Abort":
            return fail(INTERRUPTED, EXIT_INTERRUPTED)
        if exc.__class__.__name__ == "NoArgsIsHelpError":  # the help text was printed: that is the answer
            return EXIT_BAD_INPUT
        if hasattr(exc, "exit_code") and not hasattr(exc, "format_message"):  # typer.Exit
            return int(exc.exit_code)
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            return fail(f"{one_line(Exception(exc.format_message()))} (see {prog} --help)")
        if isinstance(exc, OSError) and exc.errno is not None:
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            return fail(f"{exc.strerror or one_line(exc)}{where}; check the path, permissions and free disk space")
        if debug():
            raise
        return fail(f"internal error: {exc.__class__.__name__}: {one_line(exc)} (rerun with MVIT_DEBUG=1 for the traceback)", EXIT_INTERNAL)
    finally:
        _interrupt["requested"] = False
        for signum, handler in (previous or {}).items():
            signal.signal(signum, handler)
    return rv if isinstance(rv, int) else 0
