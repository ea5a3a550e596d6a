#!/usr/bin/python3
"""PyTorch 1.13 twins of the unlearning methods (src/methods.c) for tests/test_methods.c: writes OUT/methods.h5.

A tiny fmnist-cnn (data_tools/fixtures_models.py's FmnistCNN with BatchNorm, 1x8x8 inputs, 4 classes) runs T = 5
iterations of every method from the same initial weights on fixed batches, written exactly as the C code sees them.
Each twin is written from shared/reference/sfr-on.md (§1.3-1.6, §1.11, §2.1) and include/methods.h:

  mask passes (eval mode): per batch g_b = grad of the batch's mean CE;
      fisher: F = (sum_b g_b^2) / nb per pass, mask = ((F_f + 1e-15) / (F_r + 1e-15)) >= gamma
      topk:   S = sum_b g_b over the forget batches, keep the int(n * frac) largest |S| (stable sort of -|S|)
  iteration t (lr_t, alpha_t closed-form schedules over T, set on the optimizer before each step):
      forget step when t % K == 0 (and t < forget_until): loss on the forget batch, backward, mask, clip, step
          sfron: -alpha_t * sum_i p_i l_i, p_i = c_i / sum c, c_i = 1 / (l_i^lambda + 1e-15), train mode
          ga:    -alpha_t * mean CE, eval mode
          scrub: -T^2 * KL(softmax(teacher/T) || softmax(student/T)) summed over classes / B, train mode
      retain step (every iteration; rl/salun/bt on joint batches): loss, backward, [l1 term], [mask], [clip], step
          CE methods: remain_alpha * mean CE (+ l1_t * ||theta||_1 for l1, l1_t = l1 * (1 - t / T))
          scrub: scrub_gamma * mean CE + scrub_alpha * T^2 * KL summed / B
          bt:    kl_div(log_softmax(student/T), teacher mix probabilities) with 'mean' reduction (over B x C)
      merge: theta = (1 - beta) * theta_prev + beta * theta, theta_prev = theta
  ONE optimizer for both kinds of step (its state is shared).

The thresholds are chosen here, from the data, at a wide gap (gamma for the fisher ratio, the top-k fraction for
SalUn) and checked to be far from every value compared with it, so that float32 summation-order differences
between PyTorch and C cannot flip a mask entry; the same for the clip thresholds against the gradient norms.

Datasets of methods.h5 (float32 unless noted; <name> = every state_dict entry except num_batches_tracked):
  init/<name>                           the initial parameters and buffers (every case starts here)
  {fisher_forget,fisher_retain,forget,retain,joint}/x   [N, 1, 8, 8] inputs, batches one after another
  {...}/y (int64) [N]                   labels (joint: forget labels already replaced by a random other class)
  {...}/sizes (int64) [nb]              batch sizes; joint/is_forget (uint8) [N]
  <case>/job (attribute)                the job file (YAML) of the case: every knob it uses
  <case>/params/<name>, <case>/buffers/<name>   [T, ...] after each iteration
  <case>/forget_loss, <case>/retain_loss        [T] float64 (NaN where no step of that kind ran)
  <case>/fisher_f/<name>, fisher_r/<name>       F of each pass (fisher mask)
  <case>/saliency/<name>                        S (topk mask)
  <case>/mask/<name>                            the 0/1 mask
  bt/bad_teacher/<name>                 the incompetent teacher's weights (the C test installs them: its own are
                                        drawn from the C counter RNG)
The geometry and batch sizes are repeated in tests/test_methods.c (FIX_*); keep them in step.
"""
import argparse
import copy
import math
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures_models import FmnistCNN, randomise_norms  # noqa: E402

C_IN, H, W, CLASSES = 1, 8, 8, 4
T = 5
FISHER_FORGET_SIZES = [6, 6, 3]          # last batch partial: the mean is over batches, each a batch mean
FISHER_RETAIN_SIZES = [8, 8, 8, 5]
FORGET_B, RETAIN_B, JOINT_B = 6, 8, 10
RETAIN_EPOCH_ITERS = 2                   # scrub's max-step window: scrub_msteps * this many iterations

# The knobs of each case (keys of include/config.h's unlearn section). gamma / mask_topk / clip are filled in by
# choose_* below when given as None.
CASES = {
    "sfron": dict(method="sfron", optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="cosine",
                  alpha=3.0, alpha_schedule="cosine", **{"lambda": 0.5}, forget_freq=2, clip=None, clip_remain=0.0,
                  beta=0.8, mask="fisher", gamma=None, remain_alpha=1.0),
    "sfron_adam": dict(method="sfron", optimizer="adam", lr=2e-3, weight_decay=1e-3, schedule="linear",
                       alpha=5.0, alpha_schedule="constant", **{"lambda": 0.7}, loss_floor=0.5, forget_freq=1,
                       clip=None, clip_remain=None, beta=1.0, mask="topk", mask_topk=None, remain_alpha=0.7),
    "ga": dict(method="ga", optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="constant", alpha=2.0,
               alpha_schedule="linear", clip=None, mask="none", beta=1.0),
    "salun": dict(method="salun", optimizer="sgd", lr=0.02, momentum=0.9, weight_decay=5e-4, schedule="cosine",
                  mask_topk=None, clip_remain=0.0, remain_alpha=1.0, beta=1.0),
    "rl": dict(method="rl", optimizer="sgd", lr=0.02, momentum=0.5, weight_decay=0.0, schedule="constant",
               clip_remain=0.0, remain_alpha=1.0, beta=1.0),
    "ft": dict(method="ft", optimizer="adamw", lr=3e-3, weight_decay=0.05, schedule="cosine", clip_remain=0.0,
               remain_alpha=1.3, beta=1.0),
    "l1": dict(method="l1", optimizer="sgd", lr=0.03, momentum=0.9, weight_decay=5e-4, schedule="cosine",
               l1=2e-3, clip_remain=0.0, remain_alpha=1.0, beta=1.0),
    "scrub": dict(method="scrub", optimizer="adamw", lr=2e-3, weight_decay=0.05, schedule="constant",
                  forget_freq=1, scrub_kd_t=4.0, scrub_msteps=1, clip=None, clip_remain=0.0, beta=1.0),
    "bt": dict(method="bt", optimizer="sgd", lr=0.04, momentum=0.0, weight_decay=0.0, schedule="constant",
               bt_temperature=2.0, clip_remain=0.0, beta=1.0),
}
# scrub's CE and KL weights: not yet keys of config.h (methods.c reads them by name with these fallbacks)
SCRUB_GAMMA, SCRUB_ALPHA = 0.99, 0.001


def sched(kind, v0, t, total):
    if kind == "constant":
        return v0
    if kind == "linear":
        return v0 * (1.0 - t / total)
    return v0 * (1.0 + math.cos(math.pi * t / total)) / 2.0


def make_optim(k, params):
    if k["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=k["lr"], momentum=k.get("momentum", 0.0), weight_decay=k["weight_decay"])
    cls = torch.optim.Adam if k["optimizer"] == "adam" else torch.optim.AdamW
    return cls(params, lr=k["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=k["weight_decay"])


def flat(ts):
    return torch.cat([t.detach().flatten() for t in ts])


def batches(x, y, sizes):
    o = 0
    for s in sizes:
        yield x[o:o + s], y[o:o + s]
        o += s


def batch_grads(model, x, y, sizes, dtype):
    """Per batch, the gradient of the batch's mean CE in eval mode (flat, in `dtype`)."""
    m = copy.deepcopy(model).to(dtype)
    m.eval()
    out = []
    for xb, yb in batches(x, y, sizes):
        m.zero_grad()
        F.cross_entropy(m(xb.to(dtype)), yb).backward()
        out.append(flat(p.grad for p in m.parameters()))
    return out


def fisher_stats(model, data, dtype):
    res = {}
    for key in ("fisher_forget", "fisher_retain"):
        gs = batch_grads(model, *data[key], dtype)
        acc = torch.zeros_like(gs[0])
        for g in gs:
            acc += g * g
        res[key] = acc / len(gs)
    return res


def saliency_stats(model, data, dtype):
    gs = batch_grads(model, *data["fisher_forget"], dtype)
    acc = torch.zeros_like(gs[0])
    for g in gs:
        acc += g
    return acc


def widest_gap(v32, v64, lo_q, hi_q):
    """The sorted float32 values in the quantile window [lo_q, hi_q): the position of the widest relative gap
    whose two neighbours' float32-vs-float64 errors are tiny against it. Returns (lower, upper) values."""
    order = np.argsort(v32, kind="stable")
    s = v32[order]
    err = np.abs(v32 - v64) / np.maximum(np.abs(v64), 1e-30)
    lo, hi = int(lo_q * len(s)), int(hi_q * len(s))
    best = None
    for j in range(lo, hi - 1):
        if s[j] <= 0:
            continue
        gap = s[j + 1] / s[j] - 1.0
        e = max(err[order[j]], err[order[j + 1]])
        if gap > 2e-4 and gap > 50 * e and (best is None or gap > best[0]):
            best = (gap, j)
    assert best is not None, "no safe threshold gap found"
    return s[best[1]], s[best[1] + 1], len(s) - 1 - best[1]


def choose_gamma(model, data):
    f32, f64 = fisher_stats(model, data, torch.float32), fisher_stats(model, data, torch.float64)
    r32 = ((f32["fisher_forget"] + 1e-15) / (f32["fisher_retain"] + 1e-15)).double().numpy()
    r64 = ((f64["fisher_forget"] + 1e-15) / (f64["fisher_retain"] + 1e-15)).numpy()
    a, b, _ = widest_gap(r32, r64, 0.85, 0.95)
    return float(np.sqrt(a * b))       # float32(gamma) stays strictly inside the gap (>= 2e-4 relative)


def choose_topk(model, data):
    s32 = saliency_stats(model, data, torch.float32).abs().double().numpy()
    s64 = saliency_stats(model, data, torch.float64).abs().numpy()
    _, _, k = widest_gap(s32, s64, 0.5, 0.8)
    return (k + 0.5) / len(s32)        # int(n * frac) == k


def topk_mask(s, frac):
    n = s.numel()
    k = int(n * frac)
    order = np.argsort(-s.abs().numpy(), kind="stable")
    m = np.zeros(n, np.float32)
    m[order[:k]] = 1.0
    return torch.from_numpy(m)


def unflatten(v, like):
    out, o = [], 0
    for p in like:
        out.append(v[o:o + p.numel()].view_as(p).clone())
        o += p.numel()
    return out


def kl_sum(student_logits, teacher_probs, temp):
    return F.kl_div(F.log_softmax(student_logits / temp, dim=1), teacher_probs, reduction="sum")


def run_case(name, k, model0, data, bad_teacher):
    """T iterations of one method; returns the per-iteration records and the mask statistics."""
    model = copy.deepcopy(model0)
    params = list(model.parameters())
    teacher = copy.deepcopy(model0).eval()
    opt = make_optim(k, params)
    method = k["method"]
    rec = {"params": [], "buffers": [], "forget_loss": [], "retain_loss": [], "norms": []}

    mask, extra = None, {}
    mask_kind = {"salun": "topk", "sfron": k.get("mask"), "ga": k.get("mask")}.get(method, "none")
    if mask_kind == "fisher":
        st = fisher_stats(model, data, torch.float32)
        mask = (((st["fisher_forget"] + 1e-15) / (st["fisher_retain"] + 1e-15)) >= k["gamma"]).float()
        extra = {"fisher_f": st["fisher_forget"], "fisher_r": st["fisher_retain"]}
    elif mask_kind == "topk":
        s = saliency_stats(model, data, torch.float32)
        mask = topk_mask(s, k["mask_topk"])
        extra = {"saliency": s}
    masks = unflatten(mask, params) if mask is not None else None

    K = k.get("forget_freq", 1)
    until = k.get("scrub_msteps", 0) * RETAIN_EPOCH_ITERS if method == "scrub" else T
    has_forget = method in ("sfron", "ga", "scrub")
    has_retain = method != "ga"
    joint = method in ("rl", "salun", "bt")
    slow = [p.detach().clone() for p in params]
    fx, fy = data["forget"]
    rx, ry = data["joint"] if joint else data["retain"]
    is_forget = data["joint_is_forget"]
    nf = 0

    def step(kind, loss, masked, clip):
        opt.zero_grad()
        loss.backward()
        if masked:
            for p, mk in zip(params, masks):
                p.grad.mul_(mk)
        norm = float(torch.nn.utils.clip_grad_norm_(params, clip if clip else float("inf")))
        rec["norms"].append((kind, norm, clip))
        opt.step()

    for t in range(T):
        lr = sched(k["schedule"], k["lr"], t, T)
        for g in opt.param_groups:
            g["lr"] = lr
        fl, rl_ = float("nan"), float("nan")
        if has_forget and t % K == 0 and t < until:
            xb, yb = fx[nf * FORGET_B:(nf + 1) * FORGET_B], fy[nf * FORGET_B:(nf + 1) * FORGET_B]
            nf += 1
            if method == "scrub":
                model.train()
                tmp = k["scrub_kd_t"]
                with torch.no_grad():
                    pt = F.softmax(teacher(xb) / tmp, dim=1)
                kl = kl_sum(model(xb), pt, tmp) * tmp ** 2 / xb.shape[0]
                loss, fl = -kl, kl.item()
            else:
                model.train() if method == "sfron" else model.eval()
                alpha = sched(k["alpha_schedule"], k["alpha"], t, T)
                l = F.cross_entropy(model(xb), yb, reduction="none")
                if method == "sfron":
                    lw = l.detach().clamp(min=k["loss_floor"]) if k.get("loss_floor", 0) > 0 else l.detach()
                    c = 1.0 / (lw ** k["lambda"] + 1e-15)
                    loss = -alpha * ((c / c.sum()) * l).sum()
                else:
                    loss = -alpha * l.mean()
                fl = l.mean().item()
            step("forget", loss, mask is not None and method != "salun", k.get("clip"))
        if has_retain:
            xb, yb = rx[t * (JOINT_B if joint else RETAIN_B):(t + 1) * (JOINT_B if joint else RETAIN_B)], \
                ry[t * (JOINT_B if joint else RETAIN_B):(t + 1) * (JOINT_B if joint else RETAIN_B)]
            model.train()
            if method == "scrub":
                tmp = k["scrub_kd_t"]
                with torch.no_grad():
                    pt = F.softmax(teacher(xb) / tmp, dim=1)
                z = model(xb)
                loss = SCRUB_GAMMA * F.cross_entropy(z, yb) + SCRUB_ALPHA * kl_sum(z, pt, tmp) * tmp ** 2 / xb.shape[0]
                rl_ = loss.item()
            elif method == "bt":
                tmp = k["bt_temperature"]
                fb = is_forget[t * JOINT_B:(t + 1) * JOINT_B].float().unsqueeze(1)
                with torch.no_grad():
                    full = F.softmax(teacher(xb) / tmp, dim=1)
                    bad = F.softmax(bad_teacher(xb) / tmp, dim=1)
                # kl_div's default 'mean' reduction (the reference), written as sum / (B * C)
                loss = kl_sum(model(xb), fb * bad + (1 - fb) * full, tmp) / (xb.shape[0] * CLASSES)
                rl_ = loss.item()
            else:
                ce = F.cross_entropy(model(xb), yb)
                loss = k.get("remain_alpha", 1.0) * ce
                if method == "l1":
                    loss = loss + k["l1"] * (1.0 - t / T) * sum(p.abs().sum() for p in params)
                rl_ = ce.item()
            step("retain", loss, method == "salun", k.get("clip_remain"))
        with torch.no_grad():     # merge (beta = 1: theta unchanged)
            b = k.get("beta", 1.0)
            for p, s in zip(params, slow):
                p.copy_((1 - b) * s + b * p)
                s.copy_(p)
        rec["forget_loss"].append(fl)
        rec["retain_loss"].append(rl_)
        sd = model.state_dict()
        rec["params"].append({n: p.detach().clone() for n, p in model.named_parameters()})
        rec["buffers"].append({n: sd[n].clone() for n, _ in model.named_buffers() if not n.endswith("num_batches_tracked")})
    return rec, mask, extra


def clip_ok(rec, kind):
    """The clip of `kind` steps triggers on some and not all of them, and no pre-clip norm comes within 2% of it
    (so float summation order cannot flip a clip decision)."""
    norms = [(n, c) for kd, n, c in rec["norms"] if kd == kind]
    return all(abs(n - c) > 0.02 * c for n, c in norms) and 0 < sum(n > c for n, c in norms) < len(norms)


def choose_clip(name, k, kind, model0, data, bad_teacher):
    """A clip threshold for the `kind` steps: candidates between consecutive norms of an unclipped probe run,
    nearest the median first; the first one whose clipped run passes clip_ok."""
    key = "clip" if kind == "forget" else "clip_remain"
    probe = dict(k)
    for kk in ("clip", "clip_remain"):
        if kk in probe and probe[kk] is None:
            probe[kk] = 0.0
    rec, _, _ = run_case(name, probe, model0, data, bad_teacher)
    norms = sorted(n for kd, n, _ in rec["norms"] if kd == kind)
    cands = [math.sqrt(a * b) for a, b in zip(norms, norms[1:])]
    med = cands[len(cands) // 2]
    cands.sort(key=lambda c: abs(c - med))
    for c in cands:
        probe[key] = c
        rec, _, _ = run_case(name, probe, model0, data, bad_teacher)
        if clip_ok(rec, kind):
            return c
    raise AssertionError(f"{name}: no safe {key} threshold among {cands}")


def job_yaml(name, k):
    lines = [f"name: fixture-{name}", "data: {path: unused.h5}", "model: {arch: fmnist-cnn}", "unlearn:",
             f"  iters: {T}"]
    for key, v in k.items():
        lines.append(f"  {key}: {v}")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(7)
    model0 = FmnistCNN(C_IN, H, W, CLASSES)
    randomise_norms(model0, torch.Generator().manual_seed(5))
    with torch.no_grad():
        model0.fc2.weight.mul_(4.0)   # spread the logits: per-sample losses (and adaptive weights) differ
    torch.manual_seed(8)
    bad_teacher = FmnistCNN(C_IN, H, W, CLASSES).eval()

    g = torch.Generator().manual_seed(11)

    def pool(n):
        return torch.randn(n, C_IN, H, W, generator=g), torch.randint(0, CLASSES, (n,), generator=g)

    data = {"fisher_forget": (*pool(sum(FISHER_FORGET_SIZES)), FISHER_FORGET_SIZES),
            "fisher_retain": (*pool(sum(FISHER_RETAIN_SIZES)), FISHER_RETAIN_SIZES)}
    data["forget"] = pool(T * FORGET_B)
    data["retain"] = pool(T * RETAIN_B)
    jx, jy = pool(T * JOINT_B)
    is_forget = (torch.rand(T * JOINT_B, generator=g) < 0.4).to(torch.uint8)
    shift = torch.randint(1, CLASSES, (T * JOINT_B,), generator=g)
    jy = torch.where(is_forget.bool(), (jy + shift) % CLASSES, jy)   # forget labels: a random other class
    data["joint"] = (jx, jy)
    data["joint_is_forget"] = is_forget

    for name, k in CASES.items():
        if k.get("gamma", 0) is None:
            k["gamma"] = choose_gamma(model0, data)
        if k.get("mask_topk", 0) is None:
            k["mask_topk"] = choose_topk(model0, data)
        if k.get("clip", 0) is None:
            k["clip"] = choose_clip(name, k, "forget", model0, data, bad_teacher)
        if k.get("clip_remain", 0) is None:
            k["clip_remain"] = choose_clip(name, k, "retain", model0, data, bad_teacher)

    path = os.path.join(args.out, "methods.h5")
    with h5py.File(path + ".tmp", "w") as f:
        for n, v in model0.state_dict().items():
            if not n.endswith("num_batches_tracked"):
                f[f"init/{n}"] = v.numpy().astype(np.float32)
        for key in ("fisher_forget", "fisher_retain"):
            x, y, sizes = data[key]
            f[f"{key}/x"], f[f"{key}/y"], f[f"{key}/sizes"] = x.numpy(), y.numpy().astype(np.int64), np.array(sizes)
        for key, b in (("forget", FORGET_B), ("retain", RETAIN_B), ("joint", JOINT_B)):
            x, y = data[key]
            f[f"{key}/x"], f[f"{key}/y"] = x.numpy(), y.numpy().astype(np.int64)
            f[f"{key}/sizes"] = np.full(T, b, np.int64)
        f["joint/is_forget"] = is_forget.numpy().astype(np.uint8)
        for n, v in bad_teacher.state_dict().items():
            if not n.endswith("num_batches_tracked"):
                f[f"bt/bad_teacher/{n}"] = v.numpy().astype(np.float32)
        for name, k in CASES.items():
            rec, mask, extra = run_case(name, k, model0, data, bad_teacher)
            for kind, key in (("forget", "clip"), ("retain", "clip_remain")):
                assert not k.get(key) or clip_ok(rec, kind), (name, key, rec["norms"])
            grp = f.require_group(name)
            grp.attrs["job"] = job_yaml(name, k)
            for n in rec["params"][0]:
                grp[f"params/{n}"] = torch.stack([r[n] for r in rec["params"]]).numpy().astype(np.float32)
            for n in rec["buffers"][0]:
                grp[f"buffers/{n}"] = torch.stack([r[n] for r in rec["buffers"]]).numpy().astype(np.float32)
            grp["forget_loss"] = np.array(rec["forget_loss"], np.float64)
            grp["retain_loss"] = np.array(rec["retain_loss"], np.float64)
            like = list(model0.parameters())
            names = [n for n, _ in model0.named_parameters()]
            if mask is not None:
                for n, v in zip(names, unflatten(mask, like)):
                    grp[f"mask/{n}"] = v.numpy()
            for key, vec in extra.items():
                for n, v in zip(names, unflatten(vec, like)):
                    grp[f"{key}/{n}"] = v.numpy().astype(np.float32)
            print(f"{name}: mask kept {int(mask.sum()) if mask is not None else '-'}; "
                  f"knobs {', '.join(f'{a}={b}' for a, b in k.items())}")
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
