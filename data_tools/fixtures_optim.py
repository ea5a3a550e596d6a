#!/usr/bin/python3
"""PyTorch 1.13 reference trajectories for tests/test_optim.c: writes OUT/optim.h5.

Three parameter tensors of distinct shapes, a fixed sequence of NSTEPS random gradients (with per-step scales, so
the global-norm clip triggers on some steps and not on others), a 0/1 gradient mask, and NSTEPS steps of each run:

  every step of the runs sgd, sgd_nesterov, adam, adamw:
      p.grad = grads[k]; p.grad *= mask; clip_grad_norm_(max_norm); opt.step(); sched.step()   (cosine over NSTEPS)
  run sfron_adamw (the SFR-on loop shape, sfr-on.md 1.5/1.11): NSTEPS/2 iterations t, each a forget step
      (grads[2t], masked, clipped) then a retain step (grads[2t+1], unmasked, unclipped), ONE optimizer shared by
      both, both steps at lr_t (cosine over NSTEPS/2 iterations).

Datasets (names in PARAMS order; the C test scatters them into a ParamTable's flat buffers):
  init/<name>                   initial parameters
  grads/<name>      [NSTEPS,...] raw gradients, before mask and clip
  mask/<name>                   0/1 mask
  norms             [NSTEPS]    pre-clip global L2 norm of mask*grads[k] (clip_grad_norm_'s return value)
  <run>/lr          [NSTEPS]    learning rate used by each optimizer step (float64)
  <run>/params/<name> [NSTEPS,...] parameters after each optimizer step
The hyperparameters below are repeated in tests/test_optim.c (RUNS there); keep them in step.
"""
import argparse
import os

import h5py
import numpy as np
import torch

PARAMS = [("a.weight", (7, 5)), ("a.bias", (13,)), ("b.weight", (3, 4, 2))]
NSTEPS = 10
MAX_NORM = 4.0
SCALES = [0.4, 2.0, 0.3, 1.5, 0.8, 3.0, 0.35, 1.0, 2.5, 0.45]

RUNS = {
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4),
    "sgd_nesterov": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True),
    "adam": lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    "sfron_adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(1234)
    torch.set_num_threads(1)

    init = [torch.randn(*shape) for _, shape in PARAMS]
    grads = [torch.stack([s * torch.randn(*shape) for s in SCALES]) for _, shape in PARAMS]
    masks = [(torch.rand(*shape) < 0.6).float() for _, shape in PARAMS]

    norms = []
    for k in range(NSTEPS):
        ps = [torch.zeros(shape, requires_grad=True) for _, shape in PARAMS]
        for p, g, m in zip(ps, grads, masks):
            p.grad = g[k].clone() * m
        norms.append(float(torch.nn.utils.clip_grad_norm_(ps, MAX_NORM)))
    clipped = [MAX_NORM / (n + 1e-6) < 1 for n in norms]
    assert any(clipped) and not all(clipped), f"clip must trigger on some steps only: {norms}"
    # No norm near the threshold, so float (PyTorch) vs double (C) norm arithmetic cannot flip a clip decision.
    assert all(abs(n - MAX_NORM) > 0.01 * MAX_NORM for n in norms), norms

    with h5py.File(os.path.join(args.out, "optim.h5"), "w") as f:
        for (name, _), p0, g, m in zip(PARAMS, init, grads, masks):
            f[f"init/{name}"] = p0.numpy()
            f[f"grads/{name}"] = g.numpy()
            f[f"mask/{name}"] = m.numpy()
        f["norms"] = np.array(norms, dtype=np.float64)

        for run, make in RUNS.items():
            ps = [p0.clone().requires_grad_(True) for p0 in init]
            opt = make(ps)
            sfron = run.startswith("sfron")
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=NSTEPS // 2 if sfron else NSTEPS)
            lrs, traj = [], [[] for _ in PARAMS]
            for k in range(NSTEPS):
                forget = not sfron or k % 2 == 0
                for p, g, m in zip(ps, grads, masks):
                    p.grad = g[k].clone()
                    if forget:
                        p.grad.mul_(m)
                if forget:
                    n = float(torch.nn.utils.clip_grad_norm_(ps, MAX_NORM))
                    assert n == norms[k]
                lrs.append(opt.param_groups[0]["lr"])
                opt.step()
                for i, p in enumerate(ps):
                    traj[i].append(p.detach().clone())
                if not sfron or k % 2 == 1:
                    sched.step()
            f[f"{run}/lr"] = np.array(lrs, dtype=np.float64)
            for (name, _), t in zip(PARAMS, traj):
                f[f"{run}/params/{name}"] = torch.stack(t).numpy()
    print(f"wrote {os.path.join(args.out, 'optim.h5')}: norms {['%.3f' % n for n in norms]}")


if __name__ == "__main__":
    main()
