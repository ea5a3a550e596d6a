#!/usr/bin/python3
"""plot_run.py - draw a run's curves from RUN_DIR/metrics.jsonl (docs/report.md) into RUN_DIR/curves.png.

    /usr/bin/python3 data_tools/plot_run.py runs/fmnist-train            # -> runs/fmnist-train/curves.png
    /usr/bin/python3 data_tools/plot_run.py runs/x --out /tmp/x.png

One panel per quantity the run logged, against `step` (train) or `iter` (forget) of the per-step lines
(event "step" or "iter"): losses (every `loss*` member), learning rate `lr`, forget scale `alpha`, gradient norms
(every `grad_norm*` member, log scale), mask sparsity `mask_sparsity`; train's per-epoch mean loss is overlaid on
the loss panel, and the final evaluation (event "eval") is written into the title. Quantities a run does not log
are skipped. Exit status 2 (with one message) when the file is missing, unreadable or has no per-step lines.
"""
import argparse
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = [  # (title, member predicate, log scale)
    ("loss", lambda k: k.startswith("loss"), False),
    ("learning rate", lambda k: k == "lr", False),
    ("alpha (forget scale)", lambda k: k == "alpha", False),
    ("gradient norm", lambda k: k.startswith("grad_norm"), True),
    ("mask sparsity", lambda k: k == "mask_sparsity", False),
]


def fail(msg):
    print(f"plot_run: error: {msg}", file=sys.stderr)
    sys.exit(2)


def number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_lines(path):
    rows = []
    try:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    fail(f"{path}:{n}: not JSON ({e})")
    except OSError as e:
        fail(f"{path}: {e.strerror}")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--out", help="output PNG (default RUN_DIR/curves.png)")
    args = ap.parse_args()
    path = os.path.join(args.run_dir, "metrics.jsonl")
    rows = read_lines(path)
    steps = [r for r in rows if r.get("event") in ("step", "iter")]
    if not steps:
        fail(f"{path}: no per-step lines (event \"step\" or \"iter\")")
    xkey = "step" if steps[0].get("event") == "step" else "iter"
    epochs = [r for r in rows if r.get("event") == "epoch"]
    evals = [r for r in rows if r.get("event") == "eval"]

    panels = []
    for title, pred, log in PANELS:
        keys = sorted({k for r in steps for k, v in r.items() if pred(k) and number(v)})
        if keys:
            panels.append((title, keys, log))
    if not panels:
        fail(f"{path}: the per-step lines carry none of loss*, lr, alpha, grad_norm*, mask_sparsity")

    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.4 * len(panels)), sharex=True, squeeze=False)
    for ax, (title, keys, log) in zip(axes[:, 0], panels):
        for k in keys:
            pts = [(r[xkey], r[k]) for r in steps if number(r.get(k)) and number(r.get(xkey))]
            if log:
                pts = [(x, y) for x, y in pts if y > 0]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1, label=k)
        if title == "loss" and epochs:
            pts = [(r["step"], r["loss"]) for r in epochs if number(r.get("loss")) and number(r.get("step"))]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=3, lw=1.5, label="epoch mean loss")
        if log:
            ax.set_yscale("log")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        if len(ax.get_lines()) > 1:
            ax.legend(fontsize=8)
    axes[-1, 0].set_xlabel(xkey)
    title = os.path.basename(os.path.normpath(args.run_dir))
    if evals:
        e = evals[-1]
        parts = [f"{n} {e[k]:.2f}" for n, k in (("FA", "forget_acc"), ("RA", "retain_acc"), ("TA", "test_acc"),
                                                 ("MIA", "mia"), ("Avg.Gap", "avg_gap")) if number(e.get(k))]
        if parts:
            title += "\n" + ", ".join(parts)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = args.out or os.path.join(args.run_dir, "curves.png")
    try:
        fig.savefig(out, dpi=110)
    except OSError as e:
        fail(f"{out}: {e.strerror}")
    print(f"wrote {out} ({len(panels)} panels, {len(steps)} {xkey}s)")


if __name__ == "__main__":
    main()
