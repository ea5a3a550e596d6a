#!/usr/bin/python3
"""PyTorch side of issue 2's core benchmarks: the cases of bench/bench_core.c with the same shapes and the same
timing rule (warmup runs, then the median of the timed runs, wall clock). bench/run_bench.sh runs both programs
and joins their lines; see docs/benchmarks.md.

    /usr/bin/python3 bench/bench_torch.py [--threads N] [--group all|linear|conv|fmnist|dit] [--reps R]
                                          [--warmup W] [--step-reps R] [--profile]

Output, one line per case (case names end in _t<threads>, as bench_core's):
    torch <case> ms=<median>
--profile adds torch.autograd.profiler's top operators of the two training steps ("tprof ..." lines).

The thread count is set with torch.set_num_threads; run it with OMP_NUM_THREADS=N OMP_WAIT_POLICY=PASSIVE in the
environment (run_bench.sh does), as ../shared/reference/machines.md prescribes. The models are the PyTorch twins
of tests/test_models.c (data_tools/fixtures_models.py), so both sides run the same architecture.
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data_tools"))
from fixtures_models import DiT, FmnistCNN  # noqa: E402

# (name, M, K, N): nn.Linear(K, N) with bias on x [M, K]; x requires grad. Keep in step with bench_core.c.
LINEAR_CASES = [
    ("linear_b256_784x1024", 256, 784, 1024),
    ("linear_b256_1024x1024", 256, 1024, 1024),
    ("linear_b256_3136x128", 256, 3136, 128),
    ("linear_dit_qkv_2048x384x1152", 2048, 384, 1152),
    ("linear_dit_fc2_2048x1536x384", 2048, 1536, 384),
]
# (name, B, Cin, Cout, H, W, bias, x_grad): nn.Conv2d(Cin, Cout, 3, padding=1).
CONV_CASES = [
    ("conv_fmnist1_b128_1x32_28", 128, 1, 32, 28, 28, False, False),
    ("conv_fmnist2_b128_32x32_28", 128, 32, 32, 28, 28, False, True),
    ("conv_fmnist3_b128_32x64_14", 128, 32, 64, 14, 14, False, True),
    ("conv_fmnist4_b128_64x64_14", 128, 64, 64, 14, 14, False, True),
    ("conv_unet_b8_128x128_32", 8, 128, 128, 32, 32, True, True),
    ("conv_unet_b8_256x256_16", 8, 256, 256, 16, 16, True, True),
]


def time_median_ms(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def emit(args, name, ms):
    print(f"torch {name}_t{args.threads} ms={ms:.3f}", flush=True)


def bench_layer(args, name, layer, x):
    """forward + backward with dy = 1 (gradients accumulate, as in the C case)."""
    def run():
        y = layer(x)
        y.backward(torch.ones_like(y))
    emit(args, name, time_median_ms(run, args.warmup, args.reps))


def step_profile(args, name, run):
    with torch.autograd.profiler.profile() as prof:
        run()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    print(f"tprof {name}_t{args.threads} self_cpu_ms={total / 1e3:.1f} (profiled step, top operators by self time)")
    for e in events[:12]:
        print(f"tprof {name}_t{args.threads} op={e.key:<34} n={e.count:<5} self_ms={e.self_cpu_time_total / 1e3:8.2f} "
              f"share={100.0 * e.self_cpu_time_total / total:5.1f}%")


def bench_step(args, name, model, opt, forward_loss):
    def run():
        opt.zero_grad()
        loss = forward_loss()
        loss.backward()
        opt.step()
    emit(args, name, time_median_ms(run, 1, args.step_reps))
    if args.profile:
        step_profile(args, name, run)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--group", default="all", choices=["all", "linear", "conv", "fmnist", "dit"])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--step-reps", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    on = lambda g: args.group in ("all", g)  # noqa: E731

    if on("linear"):
        for name, M, K, N in LINEAR_CASES:
            bench_layer(args, name, nn.Linear(K, N), torch.randn(M, K, requires_grad=True))
    if on("conv"):
        for name, B, cin, cout, H, W, bias, x_grad in CONV_CASES:
            bench_layer(args, name, nn.Conv2d(cin, cout, 3, padding=1, bias=bias),
                        torch.randn(B, cin, H, W, requires_grad=x_grad))
    if on("fmnist"):
        model = FmnistCNN(1, 28, 28, 10).train()
        x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        bench_step(args, "fmnist_step_b128", model, opt, lambda: F.cross_entropy(model(x), y))
        model.eval()  # fmnist_eval_b512: forward only, BatchNorm on running statistics, no autograd
        xe = torch.randn(512, 1, 28, 28)
        with torch.no_grad():
            emit(args, "fmnist_eval_b512", time_median_ms(lambda: model(xe), 1, args.step_reps))
    if on("dit"):
        model = DiT(4, 32, 32, 2, 384, 12, 6, 1000).train()
        B = 8
        x, t = torch.randn(B, 4, 32, 32), torch.randint(0, 1000, (B,)).float()
        y, target = torch.randint(0, 1000, (B,)), torch.randn(B, 8, 32, 32)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
        bench_step(args, "dit_s2_step_b8", model, opt, lambda: F.mse_loss(model(x, t, y), target))


if __name__ == "__main__":
    main()
