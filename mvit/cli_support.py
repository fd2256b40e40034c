"""What all three commands (mvit-export, mvit-verify, mvit-bench) do the same way.

- bad input: one `error: ...` line on stderr and exit 2, never a traceback;
- Ctrl-C or SIGTERM: one `error: interrupted ...` line and exit 130, after cleanup ran;
- a bug: one `internal error` line and exit 3 (MVIT_DEBUG=1 re-raises for the traceback);
- third-party chatter (absl, oneDNN, TensorFlow/XLA C++ logs, tqdm bars) kept off the terminal
  unless MVIT_DEBUG=1.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from typing import Any

from .errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, MvitError, one_line

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
_QUIET_LOGGERS = ("coremltools", "torchao", "torch.utils._pytree", "absl", "jax", "tensorflow", "litert_torch",
                  "ai_edge_torch", "onnxscript", "onnx_ir", "torch.onnx", "torch._dynamo", "torch.export")


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


def fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    """Print the one error line and return the exit code."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_cli(command: Any, argv: list[str] | None, prog: str) -> int:
    """Run a click/typer command with the shared error path; returns the exit code."""
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)  # cleanup runs as for Ctrl-C
    except ValueError:  # not the main thread (tests calling in a thread): keep the default
        previous = None
    try:
        rv = command.main(args=argv, prog_name=prog, standalone_mode=False)
        if rv == EXIT_INTERRUPTED:  # typer turns Ctrl-C into a silent exit 130 of its own
            return fail(INTERRUPTED, EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        return fail(INTERRUPTED, EXIT_INTERRUPTED)
    except MvitError as exc:
        return fail(one_line(exc), exc.exit_code)
    except Exception as exc:
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
        return fail(f"internal error: {exc.__class__.__name__}: {one_line(exc)} (rerun with MVIT_DEBUG=1 for the traceback)",
                    EXIT_INTERNAL)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return rv if isinstance(rv, int) else 0
