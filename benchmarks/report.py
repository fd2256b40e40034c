"""`mvit-bench report`: a results file (runner or iOS harness) -> markdown table + PNG plot."""

from __future__ import annotations

from pathlib import Path

from mvit.exporters.targets import RUNTIME_NOTES

from .files import atomic_write

BASELINE_MODEL = "mobilenet_v2"  # the paper's main comparison network


def runtime_label(result: dict) -> str:
    """A row's runtime, with its compute units (a device's rows, from the iOS harness) or the note
    its target declares (`RUNTIME_NOTES`: a vendor's reference path run on this host, whose times
    prove the artefact runs, not how fast a device runs it)."""
    units = result.get("compute_units")
    if units:
        return f"{result['runtime']} ({units})"
    note = RUNTIME_NOTES.get(result["runtime"])
    return f"{result['runtime']} ({note})" if note else result["runtime"]


def _fmt(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def machine_line(doc: dict) -> str:
    m = doc["machine"]
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items())
    extra = ""
    if m.get("thermal_state") is not None:
        extra += f", thermal {m['thermal_state']}"
    if m.get("low_power_mode") is not None:
        extra += f", low-power {'on' if m['low_power_mode'] else 'off'}"
    return (
        f"{m['device_model']}, {m['cpu']}, {m['cores']} cores, {m['os']} {m['os_version']}{extra}; "
        f"{doc['tool']['name']} {doc['tool']['version']}, {doc['created_utc']}; {libs}"
    )


def markdown_table(doc: dict) -> str:
    gemm = doc.get("gemm_gflops")
    baseline = {runtime_label(r): r["stats"]["median_ms"] for r in doc["results"] if r["model"] == BASELINE_MODEL}
    lines = [
        f"Machine: {machine_line(doc)}",
        "",
        f"fp32 GEMM peak measured in this run: {_fmt(gemm, 1)} GFLOP/s" if gemm else "fp32 GEMM peak: not measured in this run",
        "",
        "| model | config | runtime | threads | input | mean ms | median ms | p90 ms | p99 ms | min ms | std ms "
        "| load ms | first ms | peak RSS MB | GMACs | GFLOP/s | % of GEMM peak | median vs mobilenet_v2 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["results"]:
        s = r["stats"]
        label = runtime_label(r)
        gf = r.get("gflops_per_s")
        peak = f"{100 * gf / gemm:.0f}%" if gf and gemm else "-"
        vs = f"{s['median_ms'] / baseline[label]:.2f}x" if baseline.get(label) else "-"  # 0 ms: no ratio
        lines.append(
            f"| {r['model']} | {r['config']} | {label} | {r['threads'] if r['threads'] is not None else '-'} "
            f"| {r['input_size'][0]}x{r['input_size'][1]} | {s['mean_ms']:.2f} | {s['median_ms']:.2f} "
            f"| {s['p90_ms']:.2f} | {s['p99_ms']:.2f} | {s['min_ms']:.2f} | {s['std_ms']:.2f} "
            f"| {_fmt(r['load_ms'], 0)} | {_fmt(r['first_inference_ms'], 1)} | {_fmt(r.get('peak_rss_mb'), 0)} "
            f"| {_fmt(r['macs'] / 1e9 if r.get('macs') else None, 3)} | {_fmt(gf, 1)} | {peak} | {vs} |"
        )
    runs = sorted({(r["warmup_runs"], r["runs"]) for r in doc["results"]})
    lines += ["", "Warm-up / timed runs per row: " + ", ".join(f"{w} / {n}" for w, n in runs) + "."]
    return "\n".join(lines) + "\n"


def plot(doc: dict, path: Path) -> Path:
    """Median latency per model, configs side by side, one panel per runtime; whiskers min..p90."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = doc["results"]
    runtimes = list(dict.fromkeys(runtime_label(r) for r in results))
    configs = list(dict.fromkeys(r["config"] for r in results))
    colours = {"A": "tab:blue", "B": "tab:orange", "-": "tab:grey"}
    fig, axes = plt.subplots(1, max(1, len(runtimes)), figsize=(5 * max(1, len(runtimes)), 4.5), squeeze=False)
    for ax, runtime in zip(axes[0], runtimes):
        rows = [r for r in results if runtime_label(r) == runtime]
        models = list(dict.fromkeys(r["model"] for r in rows))
        width = 0.8 / max(1, len(configs))
        for j, config in enumerate(configs):
            xs, ys, lo, hi = [], [], [], []
            for i, model in enumerate(models):
                match = [r for r in rows if r["model"] == model and r["config"] == config]
                if match:
                    s = match[0]["stats"]
                    xs.append(i + (j - (len(configs) - 1) / 2) * width)
                    ys.append(s["median_ms"])
                    lo.append(s["median_ms"] - s["min_ms"])
                    hi.append(s["p90_ms"] - s["median_ms"])
            if xs:
                ax.bar(
                    xs, ys, width, yerr=[lo, hi], capsize=3, color=colours.get(config, None), label=f"config {config}" if config != "-" else "no patch config"
                )
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(models, rotation=30, ha="right", fontsize=8)
        ax.set_title(runtime)
        ax.set_ylabel("median latency, ms (whiskers: min..p90)")
        ax.legend(fontsize=8)
    fig.suptitle(f"batch 1, {doc['machine']['cpu']}, {doc['created_utc'][:10]}", fontsize=9)
    fig.tight_layout()
    try:
        return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=110))
    finally:
        plt.close(fig)
