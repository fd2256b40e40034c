"""Checks every CLI test shares: the one-line error contract of every command."""

from __future__ import annotations

import re
import subprocess


def stop_and_check_interrupted(proc: subprocess.Popen, sig: int) -> tuple[str, str]:
    """Send `sig` to a running command, wait, and assert exit 130 with exactly one `error: interrupted` line."""
    try:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: interrupted"), err
    assert "Traceback" not in out + err
    return out, err


def run_main(capsys, main, *args: str) -> tuple[int, str, str]:
    """Run a CLI entry point (`mvit.exporters.cli.main`, `verify_main`, `mvit.benchmarks.cli.main`)
    in-process as a user's shell would: (exit code, stdout, stderr)."""
    import pytest

    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def exit_code(entry, argv: list[str]) -> int:
    """A CLI entry point run in-process for its exit code alone (output left to the caller's capture)."""
    try:
        entry(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


# mvit's own lines besides the one `error:` line: notes, and the plain progress lines printed where
# stderr is not a terminal (mvit.cli_support.PlainProgress).
OWN_LINE = re.compile(r"^(note: |mvit-(export|verify|bench|eval): .* elapsed\)$)")


def own_lines_only(err: str) -> bool:
    return all(OWN_LINE.match(line) for line in err.splitlines() if line.strip())
