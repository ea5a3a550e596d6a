#!/usr/bin/python3
"""summarize_runs.py - one table of unlearning metrics from several runs' report.json files (docs/report.md).

    /usr/bin/python3 data_tools/summarize_runs.py [--rt RT] [--cost-ref LABEL] [--markdown] [--json OUT]
                                                  [LABEL=]REPORT[+COST_REPORT] ...

REPORT is a report.json (or a run directory holding one) of `unlearn eval`, `unlearn forget` or `unlearn train`;
its `metrics` give the row's FA, RA, TA, TA on the remaining classes, MIA (and the remaining-class MIA), Avg.Gap and
KL to RT; REPORT#rt takes the RT model's metrics of a run evaluated against RT (its rt_metrics) instead, so that one
`unlearn eval` of the original model with eval.rt_checkpoint gives both rows. COST_REPORT (optional) is the report whose run produced the model, when REPORT only evaluated it (e.g. the
original model: its `unlearn train` report); the row's times come from it (default: REPORT itself).

Columns (percent unless said; "-" where a value does not apply or was not computed; a column without any value
is left out):
  FA, RA, TA       accuracy on the forget set, the retain set, the whole test set
  TA-rem           accuracy on the test samples of the classes not forgotten (= TA for non-class splits)
  MIA, MIA-rem     the entropy MIA (members = retain set; non-members = the whole test set / its remaining classes)
  Avg.Gap          mean |metric - RT metric| over FA, RA, TA, MIA: the report's own value (a run evaluated with
                   eval.rt_checkpoint); otherwise computed here against --rt's metrics; 0 for the --rt run itself
  KL               mean over the forget set of KL(p_RT || p_model), nats (runs evaluated with an RT checkpoint)
  batches          forward+backward passes over a batch that produced the model (COST_REPORT's training steps, or
                   its unlearning optimizer steps plus mask-pass batches): a cost measure independent of machine load
  cost s           seconds that produced the model: wall_seconds - eval_seconds of COST_REPORT (the run without its
                   final evaluation: train = data, loop, checkpoints; forget = mask passes, loop, checkpoints)
  wall s           wall_seconds of COST_REPORT (everything, final evaluation included)
  x cost-ref       cost of --cost-ref's row divided by this row's cost (how many times cheaper than, e.g., RT); the
                   JSON has batch_ratio too (the same with batches)

--rt RT: the RT model's evaluation report (or a LABEL of a row); used for Avg.Gap where a report has none and to
check that runs evaluated against RT saw the same RT metrics (a warning on stderr otherwise).
--json OUT writes the rows as a JSON list as well. Exit status 0; 1 on a missing or malformed report (one line).
Standard library only.
"""
import argparse
import json
import math
import os
import sys

PROG = "summarize_runs"
GAP_KEYS = ("forget_acc", "retain_acc", "test_acc", "mia")


class InputError(Exception):
    pass


def load_report(path):
    """The report.json at path (or path/report.json), checked to be an unlearn report of format version 1. A path
    ending in "#rt" gives the report with its rt_metrics as its metrics (the RT model of a run evaluated against
    it)."""
    as_rt = path.endswith("#rt")
    if as_rt:
        path = path[:-3]
    if os.path.isdir(path):
        path = os.path.join(path, "report.json")
    try:
        with open(path) as f:
            r = json.load(f)
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not JSON ({e})") from None
    if not isinstance(r, dict) or r.get("format") != "unlearn-report":
        raise InputError(f"{path}: not an unlearn report (format {r.get('format') if isinstance(r, dict) else None!r})")
    if r.get("format_version") != 1:
        raise InputError(f"{path}: report format_version {r.get('format_version')!r}, this tool reads 1")
    if not isinstance(r.get("metrics"), dict):
        raise InputError(f"{path}: no metrics object")
    r["_path"] = path
    if as_rt:
        if not isinstance(r.get("rt_metrics"), dict):
            raise InputError(f"{path}#rt: the run was not evaluated against an RT model (rt_metrics is null)")
        r = dict(r, metrics=r["rt_metrics"], rt_metrics=None, method=None, _path=path + "#rt")
        r["metrics"].update(avg_gap=None, kl_to_rt=None)
    return r


def num(v):
    """v as a float, or None for null / missing / non-finite."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def cost_seconds(r):
    w, e = num(r.get("wall_seconds")), num(r.get("eval_seconds"))
    if w is None:
        return None
    return w - (e or 0.0)


def batch_passes(r):
    """Forward+backward passes over a batch that produced the model (a load-independent cost): train: its steps;
    forget: optimizer steps plus the mask passes' batches. None for other reports."""
    if r.get("command") == "train":
        return r.get("iterations")
    if r.get("command") == "forget":
        f, k = r.get("forget") or {}, r.get("mask") or {}
        steps = f.get("optimizer_steps")
        if not isinstance(steps, int):
            return None
        return steps + sum(v for v in (k.get("fisher_batches_forget"), k.get("fisher_batches_retain"))
                           if isinstance(v, int))
    return None


def parse_entry(text):
    label, _, rest = text.partition("=") if "=" in text else ("", "", text)
    report, _, cost = rest.partition("+")
    return label, report, cost


def make_row(label, rep, cost):
    m = rep["metrics"]
    method = rep.get("method") or {}
    row = {
        "label": label or (method.get("name") if isinstance(method, dict) else None) or rep.get("name"),
        "report": rep["_path"],
        "command": rep.get("command"),
        "forget_acc": num(m.get("forget_acc")),
        "retain_acc": num(m.get("retain_acc")),
        "test_acc": num(m.get("test_acc")),
        "test_acc_remaining": num(m.get("test_acc_remaining")),
        "mia": num(m.get("mia")),
        "mia_remaining": num(m.get("mia_remaining")),
        "avg_gap": num(m.get("avg_gap")),
        "avg_gap_source": "report" if num(m.get("avg_gap")) is not None else None,
        "kl_to_rt": num(m.get("kl_to_rt")),
        "cost_seconds": cost_seconds(cost),
        "wall_seconds": num(cost.get("wall_seconds")),
        "cost_report": cost["_path"],
        "iterations": rep.get("iterations") if cost is rep else cost.get("iterations"),
        "batches": batch_passes(cost),
        "train_acc": num(m.get("train_acc")) if num(m.get("train_acc")) is not None else
        num((cost.get("metrics") or {}).get("train_acc")),
        "rt_metrics": rep.get("rt_metrics"),
    }
    return row


def fill_gaps(rows, rt_row):
    """Avg.Gap against rt_row where a report has none; warns when a run's own RT metrics differ from rt_row's."""
    rt = {k: rt_row[k] for k in GAP_KEYS}
    for row in rows:
        own = row.pop("rt_metrics")
        if isinstance(own, dict):
            for k in GAP_KEYS:
                a, b = num(own.get(k)), rt[k]
                if a is not None and b is not None and abs(a - b) > 1e-6:
                    print(f"{PROG}: warning: {row['report']} was evaluated against an RT with {k} {a:.4f}, "
                          f"--rt has {b:.4f}", file=sys.stderr)
        if row is rt_row:
            row["avg_gap"], row["avg_gap_source"] = 0.0, "is RT"
            continue
        if row["avg_gap"] is None and all(row[k] is not None and rt[k] is not None for k in GAP_KEYS):
            row["avg_gap"] = sum(abs(row[k] - rt[k]) for k in GAP_KEYS) / len(GAP_KEYS)
            row["avg_gap_source"] = "computed vs --rt"


COLUMNS = [  # (header, key, format)
    ("FA", "forget_acc", "{:.2f}"),
    ("RA", "retain_acc", "{:.2f}"),
    ("TA", "test_acc", "{:.2f}"),
    ("TA-rem", "test_acc_remaining", "{:.2f}"),
    ("MIA", "mia", "{:.2f}"),
    ("MIA-rem", "mia_remaining", "{:.2f}"),
    ("Avg.Gap", "avg_gap", "{:.2f}"),
    ("KL", "kl_to_rt", "{:.4f}"),
    ("batches", "batches", "{:d}"),
    ("cost s", "cost_seconds", "{:.1f}"),
    ("wall s", "wall_seconds", "{:.1f}"),
]


def render(rows, cost_ref, markdown):
    cols = list(COLUMNS)
    if cost_ref is not None:
        cols.append((f"x {cost_ref['label']}", "speedup", "{:.1f}"))
        ref = cost_ref["cost_seconds"]
        for row in rows:
            c = row["cost_seconds"]
            row["speedup"] = ref / c if ref is not None and c else None
            b, rb = row["batches"], cost_ref["batches"]
            row["batch_ratio"] = rb / b if isinstance(b, int) and isinstance(rb, int) and b > 0 else None
    cols = [c for c in cols if any(row.get(c[1]) is not None for row in rows)]  # a column nobody has: left out
    head = ["method"] + [c[0] for c in cols]
    body = [[str(row["label"])] + [("-" if row.get(k) is None else f.format(row[k])) for _, k, f in cols]
            for row in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * len(cols)) + "|"]
        lines += ["| " + " | ".join(b) + " |" for b in body]
        return "\n".join(lines)
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    fmt = lambda cells: "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells))
    return "\n".join([fmt(head), "  ".join("-" * w for w in widths)] + [fmt(b) for b in body])


def main():
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0].split(" - ", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("entries", nargs="+", metavar="[LABEL=]REPORT[+COST_REPORT]")
    p.add_argument("--rt", metavar="RT", help="the RT evaluation (a report/run dir, or the LABEL of an entry)")
    p.add_argument("--cost-ref", metavar="LABEL", help="add a column: this row's cost / each row's cost")
    p.add_argument("--markdown", action="store_true", help="a Markdown table instead of aligned text")
    p.add_argument("--json", metavar="OUT", help="also write the rows as JSON to OUT")
    a = p.parse_args()

    rows = []
    for e in a.entries:
        label, rpath, cpath = parse_entry(e)
        rep = load_report(rpath)
        rows.append(make_row(label, rep, load_report(cpath) if cpath else rep))
    by_label = {r["label"]: r for r in rows}
    if len(by_label) != len(rows):
        raise InputError("two entries have the same label; name them LABEL=REPORT")
    if a.rt:
        rt_row = by_label.get(a.rt) or make_row("RT", load_report(a.rt), load_report(a.rt))
        fill_gaps(rows, rt_row)
    else:
        for r in rows:
            r.pop("rt_metrics")
    cost_ref = None
    if a.cost_ref:
        if a.cost_ref not in by_label:
            raise InputError(f"--cost-ref {a.cost_ref}: no entry has that label ({', '.join(by_label)})")
        cost_ref = by_label[a.cost_ref]
    print(render(rows, cost_ref, a.markdown))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    try:
        main()
    except InputError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        sys.exit(1)
