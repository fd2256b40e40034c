"""What machine a benchmark ran on, how fast its fp32 GEMM is, and how much memory we used."""

from __future__ import annotations

import os
import platform
import resource
import time
from importlib import metadata

from mvit.exporters.targets import DISTRIBUTIONS

# Versions recorded in every results file (when installed): mvit and what every row needs, then
# the runtimes and converters each target declares.
LIBRARIES = ("mvit", "torch", "numpy", *DISTRIBUTIONS)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if platform.system() == "Darwin":
        try:
            import subprocess

            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5)
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def machine_info() -> dict:
    system = platform.system()
    return {
        "os": {"Darwin": "macOS"}.get(system, system),
        "os_version": platform.mac_ver()[0] if system == "Darwin" else platform.release(),
        "device_model": platform.machine(),
        "cpu": cpu_name(),
        "cores": os.cpu_count() or 1,
        "thermal_state": None,  # only the iOS harness can read these
        "low_power_mode": None,
        "libraries": library_versions(),
    }


def gemm_gflops(threads: int, size: int = 2048, repeats: int = 5) -> float:
    """Best-of-`repeats` fp32 square matmul throughput with torch at `threads` threads.

    The best (not the mean) is the machine's reachable peak; every benchmark row is read as a
    fraction of it. Measured in the same run because the machine's speed drifts between runs.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(size, size, generator=torch.Generator().manual_seed(0))
        b = torch.randn(size, size, generator=torch.Generator().manual_seed(1))
        torch.mm(a, b)  # warm-up: thread pool start, page faults
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return 2.0 * size**3 / best / 1e9


class PeakRss:
    """Peak resident set size of this process while a block runs, in MB.

    On Linux the kernel's high-water mark (VmHWM) is reset at the start (writing 5 to
    /proc/self/clear_refs), so each benchmark row reports its own peak; the figure includes the
    Python/torch baseline of the process, not just the model. Elsewhere the process-lifetime
    maximum (getrusage) is reported, which can only grow from row to row.
    """

    def __enter__(self) -> PeakRss:
        self.mb: float | None = None
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self._linux = True
        except OSError:
            self._linux = False
        return self

    def __exit__(self, *exc) -> None:
        if self._linux:
            try:
                with open("/proc/self/status") as fh:
                    for line in fh:
                        if line.startswith("VmHWM:"):
                            self.mb = int(line.split()[1]) / 1024.0
                            return
            except OSError:
                pass
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # ru_maxrss is kilobytes on Linux, bytes on macOS.
        self.mb = maxrss / (1024.0 * 1024.0) if platform.system() == "Darwin" else maxrss / 1024.0
