#!/usr/bin/python3
"""PyTorch 1.13 references for every op of UL_OP_LIST (include/ops.h), for tests/test_ops_torch.c: writes OUT/ops.h5.

One group per case, small shapes with all-distinct dimensions (a transposed index cannot pass by accident):
  <case>/in0, in1, ...   float32 inputs, in the order the C constructor takes its tensors
  <case>/idx             int64 integer input (cross_entropy labels, embedding indices), when the op has one
  <case>/ts              float32 timesteps (timestep_emb) / <case>/w float32 weights (weighted_sum)
  <case>/out             the op's output
  <case>/R               a fixed random seed gradient d loss/d out (uniform [-1, 1))
  <case>/grad<i>         d sum(out * R) / d in<i>, for every differentiable input
  <case>/rm, rv          batchnorm: running mean / var before; rm_after, rv_after after the call
The op attributes (strides, dims, flags) are written next to each case below and repeated in the CASES table of
tests/test_ops_torch.c; keep them in step. Every reference is PyTorch's own function where one exists
(F.conv2d, F.batch_norm, F.group_norm, F.kl_div, ...), written out only where PyTorch has none (modulate,
unpatchify and the timestep embeddings, copied from the DiT and DDPM reference code).
"""
import argparse
import math
import os

import h5py
import numpy as np
import torch
import torch.nn.functional as F

CASES = {}


def case(name):
    def deco(fn):
        CASES[name] = fn
        return fn
    return deco


def rnd(*shape, lo=-1.0, hi=1.0):
    return (torch.rand(*shape, dtype=torch.float32) * (hi - lo) + lo).requires_grad_(True)


def away_from_zero(*shape):
    """Values in [-1, -0.1] u [0.1, 1]: relu and max-pool decisions that a rounding difference cannot flip."""
    x = torch.rand(*shape) * 0.9 + 0.1
    sign = torch.where(torch.rand(*shape) < 0.5, -1.0, 1.0)
    return (x * sign).requires_grad_(True)


# ---- ops_dense ----
@case("linear")
def _():
    x, w, b = rnd(2, 3, 5), rnd(4, 5), rnd(4)
    return [x, w, b], F.linear(x, w, b), {}


@case("linear_nobias")
def _():
    x, w = rnd(3, 5), rnd(4, 5)
    return [x, w], F.linear(x, w), {}


@case("matmul_nn")          # a [2, 3, 4] @ b [2, 4, 5]
def _():
    a, b = rnd(2, 3, 4), rnd(2, 4, 5)
    return [a, b], a @ b, {}


@case("matmul_tn")          # trans_a: a [2, 4, 3] -> a^T [2, 3, 4]
def _():
    a, b = rnd(2, 4, 3), rnd(2, 4, 5)
    return [a, b], a.transpose(-1, -2) @ b, {}


@case("matmul_nt_2d")       # trans_b, no leading dims: a [3, 4], b [5, 4]
def _():
    a, b = rnd(3, 4), rnd(5, 4)
    return [a, b], a @ b.t(), {}


@case("matmul_tt_4d")       # both transposed, two leading dims: a [2, 3, 4, 5] (K=4, M=5), b [2, 3, 6, 4] (N=6)
def _():
    a, b = rnd(2, 3, 4, 5), rnd(2, 3, 6, 4)
    return [a, b], a.transpose(-1, -2) @ b.transpose(-1, -2), {}


@case("conv2d_s2p1")        # stride 2, pad 1
def _():
    x, w, b = rnd(2, 3, 7, 6), rnd(4, 3, 3, 3), rnd(4)
    return [x, w, b], F.conv2d(x, w, b, stride=2, padding=1), {}


@case("conv2d_k3x2_s1p1_nobias")   # rectangular kernel, stride 1, pad 1, no bias
def _():
    x, w = rnd(2, 3, 5, 4), rnd(4, 3, 3, 2)
    return [x, w], F.conv2d(x, w, None, stride=1, padding=1), {}


@case("conv2d_1x1")         # 1x1, stride 1, pad 0
def _():
    x, w, b = rnd(2, 3, 5, 4), rnd(6, 3, 1, 1), rnd(6)
    return [x, w, b], F.conv2d(x, w, b), {}


@case("conv2d_k2s2")        # patch embedding: kernel 2, stride 2, pad 0
def _():
    x, w, b = rnd(3, 4, 6, 8), rnd(5, 4, 2, 2), rnd(5)
    return [x, w, b], F.conv2d(x, w, b, stride=2), {}


@case("pad2d")              # top 1, bottom 2, left 0, right 3
def _():
    x = rnd(2, 3, 4, 5)
    return [x], F.pad(x, (0, 3, 1, 2)), {}


@case("upsample2x")
def _():
    x = rnd(2, 3, 4, 5)
    return [x], F.interpolate(x, scale_factor=2.0, mode="nearest"), {}


@case("avgpool2d_k2s2")
def _():
    x = rnd(2, 3, 7, 6)
    return [x], F.avg_pool2d(x, 2, 2), {}


@case("avgpool2d_k3s2")
def _():
    x = rnd(2, 3, 7, 6)
    return [x], F.avg_pool2d(x, 3, 2), {}


@case("maxpool2d_k2s2")
def _():
    x = rnd(2, 3, 7, 6)
    return [x], F.max_pool2d(x, 2, 2), {}


@case("maxpool2d_k3s2")     # overlapping windows: one input can be the max of two outputs
def _():
    x = rnd(2, 3, 7, 6)
    return [x], F.max_pool2d(x, 3, 2), {}


@case("global_avgpool")
def _():
    x = rnd(2, 3, 4, 5)
    return [x], x.mean(dim=(2, 3)), {}


# ---- ops_elem ----
@case("add")
def _():
    x, y = rnd(3, 4, 5), rnd(3, 4, 5)
    return [x, y], x + y, {}


@case("sub")
def _():
    x, y = rnd(3, 4, 5), rnd(3, 4, 5)
    return [x, y], x - y, {}


@case("mul")
def _():
    x, y = rnd(3, 4, 5), rnd(3, 4, 5)
    return [x, y], x * y, {}


@case("scale")              # c = -1.7
def _():
    x = rnd(3, 4, 5)
    return [x], x * -1.7, {}


@case("add_bcast_1c1w")     # y [1, 3, 1, 5]
def _():
    x, y = rnd(2, 3, 4, 5), rnd(1, 3, 1, 5)
    return [x, y], x + y, {}


@case("add_bcast_bc11")     # y [2, 3, 1, 1] (the UNet's time embedding)
def _():
    x, y = rnd(2, 3, 4, 5), rnd(2, 3, 1, 1)
    return [x, y], x + y, {}


@case("mul_bcast_b1c")      # x [2, 5, 6], y [2, 1, 6] (DiT's gates)
def _():
    x, y = rnd(2, 5, 6), rnd(2, 1, 6)
    return [x, y], x * y, {}


@case("mul_bcast_1c1w")
def _():
    x, y = rnd(2, 3, 4, 5), rnd(1, 3, 1, 5)
    return [x, y], x * y, {}


@case("relu")
def _():
    x = away_from_zero(3, 4, 5)
    return [x], F.relu(x), {}


@case("silu")
def _():
    x = rnd(3, 4, 5, lo=-4, hi=4)
    return [x], F.silu(x), {}


@case("gelu_tanh")
def _():
    x = rnd(3, 4, 5, lo=-4, hi=4)
    return [x], F.gelu(x, approximate="tanh"), {}


@case("dropout_eval")       # p 0.3, eval mode: identity
def _():
    x = rnd(3, 4, 5)
    return [x], F.dropout(x, 0.3, training=False), {}


@case("dropout_p0")         # p 0, train mode: identity
def _():
    x = rnd(3, 4, 5)
    return [x], F.dropout(x, 0.0, training=True), {}


@case("weighted_sum")
def _():
    x = rnd(5)
    w = torch.tensor([0.2, -1.0, 0.7, 0.0, 2.5])
    return [x], (x * w).sum().reshape(1), {"w": w}


# ---- ops_norm ----
def bn_case(training):
    x, g, b = rnd(3, 4, 5, 6, lo=-2, hi=3), rnd(4, lo=0.5, hi=1.5), rnd(4)
    rm, rv = torch.rand(4) * 0.2 - 0.1, torch.rand(4) + 0.5
    rm0, rv0 = rm.clone(), rv.clone()
    out = F.batch_norm(x, rm, rv, g, b, training=training, momentum=0.1, eps=1e-5)
    return [x, g, b], out, {"rm": rm0, "rv": rv0, "rm_after": rm, "rv_after": rv}


@case("batchnorm2d_train")
def _():
    return bn_case(True)


@case("batchnorm2d_eval")
def _():
    return bn_case(False)


@case("groupnorm_4d")       # x [2, 6, 4, 5], 3 groups, eps 1e-6
def _():
    x, g, b = rnd(2, 6, 4, 5, lo=-2, hi=3), rnd(6, lo=0.5, hi=1.5), rnd(6)
    return [x, g, b], F.group_norm(x, 3, g, b, eps=1e-6), {}


@case("groupnorm_3d")       # x [2, 6, 7], 2 groups, eps 1e-5
def _():
    x, g, b = rnd(2, 6, 7, lo=-2, hi=3), rnd(6, lo=0.5, hi=1.5), rnd(6)
    return [x, g, b], F.group_norm(x, 2, g, b, eps=1e-5), {}


@case("layernorm_affine")   # x [2, 3, 7], eps 1e-5
def _():
    x, g, b = rnd(2, 3, 7, lo=-2, hi=3), rnd(7, lo=0.5, hi=1.5), rnd(7)
    return [x, g, b], F.layer_norm(x, (7,), g, b, eps=1e-5), {}


@case("layernorm_noaffine")  # x [2, 3, 7], eps 1e-6 (DiT)
def _():
    x = rnd(2, 3, 7, lo=-2, hi=3)
    return [x], F.layer_norm(x, (7,), None, None, eps=1e-6), {}


@case("softmax")
def _():
    x = rnd(2, 3, 7, lo=-3, hi=3)
    return [x], F.softmax(x, dim=-1), {}


@case("log_softmax")
def _():
    x = rnd(2, 3, 7, lo=-3, hi=3)
    return [x], F.log_softmax(x, dim=-1), {}


@case("cross_entropy")      # logits [5, 7] -> per-sample [5]
def _():
    x = rnd(5, 7, lo=-3, hi=3)
    y = torch.tensor([3, 0, 6, 3, 2])
    return [x], F.cross_entropy(x, y, reduction="none"), {"idx": y}


@case("mse_mean")           # [3, 4, 5] -> [3], mean over each sample
def _():
    p, q = rnd(3, 4, 5), rnd(3, 4, 5)
    return [p, q], F.mse_loss(p, q, reduction="none").flatten(1).mean(1), {}


@case("mse_sum")
def _():
    p, q = rnd(3, 4, 5), rnd(3, 4, 5)
    return [p, q], F.mse_loss(p, q, reduction="none").flatten(1).sum(1), {}


@case("kl_div")             # KL(p || q) per row; torch: kl_div(input=log q, target=log p, log_target=True)
def _():
    logp = F.log_softmax(torch.rand(4, 6) * 4 - 2, -1).detach().requires_grad_(True)
    logq = F.log_softmax(torch.rand(4, 6) * 4 - 2, -1).detach().requires_grad_(True)
    return [logp, logq], F.kl_div(logq, logp, reduction="none", log_target=True).sum(1), {}


# ---- ops_shape ----
@case("attention")          # q, k, v [2, 5, 12], 3 heads of 4
def _():
    q, k, v = rnd(2, 5, 12, lo=-2, hi=2), rnd(2, 5, 12, lo=-2, hi=2), rnd(2, 5, 12)
    B, T, C, H = 2, 5, 12, 3

    def heads(t):
        return t.reshape(B, T, H, C // H).transpose(1, 2)
    a = torch.softmax(heads(q) @ heads(k).transpose(-1, -2) / math.sqrt(C // H), dim=-1)
    return [q, k, v], (a @ heads(v)).transpose(1, 2).reshape(B, T, C), {}


@case("attention_1head")    # q, k, v [2, 6, 8], 1 head (the UNet's AttnBlock)
def _():
    q, k, v = rnd(2, 6, 8, lo=-2, hi=2), rnd(2, 6, 8, lo=-2, hi=2), rnd(2, 6, 8)
    a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1)
    return [q, k, v], a @ v, {}


@case("permute_0231")
def _():
    x = rnd(2, 3, 4, 5)
    return [x], x.permute(0, 2, 3, 1), {}


@case("permute_3102")
def _():
    x = rnd(2, 3, 4, 5)
    return [x], x.permute(3, 1, 0, 2), {}


@case("slice_dim1")         # [3, 7, 4], dim 1, start 2, len 3
def _():
    x = rnd(3, 7, 4)
    return [x], x[:, 2:5, :], {}


@case("slice_dim2")         # dim 2, start 1, len 2
def _():
    x = rnd(3, 7, 4)
    return [x], x[:, :, 1:3], {}


@case("concat_dim0")        # [2, 3, 4] + [5, 3, 4]
def _():
    a, b = rnd(2, 3, 4), rnd(5, 3, 4)
    return [a, b], torch.cat([a, b], 0), {}


@case("concat_dim1")        # [2, 3, 4] + [2, 5, 4]
def _():
    a, b = rnd(2, 3, 4), rnd(2, 5, 4)
    return [a, b], torch.cat([a, b], 1), {}


@case("concat_dim3")        # [2, 3, 4, 5] + [2, 3, 4, 6]
def _():
    a, b = rnd(2, 3, 4, 5), rnd(2, 3, 4, 6)
    return [a, b], torch.cat([a, b], 3), {}


@case("embedding")          # table [7, 5], idx [6] with repeats
def _():
    t = rnd(7, 5)
    idx = torch.tensor([3, 0, 6, 3, 2, 3])
    return [t], F.embedding(idx, t), {"idx": idx}


def ddpm_timestep_embedding(timesteps, embedding_dim):  # DDPM/models/diffusion.py
    half_dim = embedding_dim // 2
    emb = math.log(10000) / (half_dim - 1)
    emb = torch.exp(torch.arange(half_dim, dtype=torch.float32) * -emb)
    emb = timesteps.float()[:, None] * emb[None, :]
    return torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)


def dit_timestep_embedding(t, dim, max_period=10000):  # DiT models.py TimestepEmbedder.timestep_embedding
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


TS = torch.tensor([0.0, 1.0, 17.5, 999.0, 500.0])


@case("timestep_emb_ddpm")  # dim 16, max_period 10000, shift 1, [sin, cos]
def _():
    return [], ddpm_timestep_embedding(TS, 16), {"ts": TS}


@case("timestep_emb_dit")   # dim 20, max_period 10000, shift 0, [cos, sin]
def _():
    return [], dit_timestep_embedding(TS, 20), {"ts": TS}


@case("modulate")           # x [2, 5, 6], shift, scale [2, 6]
def _():
    x, shift, scale = rnd(2, 5, 6), rnd(2, 6), rnd(2, 6)
    return [x, shift, scale], x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1), {}


@case("unpatchify")         # x [2, h*w = 6, p*p*C = 12], p 2, C 3, h 2, w 3 -> [2, 3, 4, 6]
def _():
    x = rnd(2, 6, 12)
    p, c, h, w = 2, 3, 2, 3
    y = torch.einsum('nhwpqc->nchpwq', x.reshape(2, h, w, p, p, c)).reshape(2, c, h * p, w * p)
    return [x], y, {}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    path = os.path.join(args.out, "ops.h5")
    with h5py.File(path + ".tmp", "w") as f:
        for i, (name, fn) in enumerate(CASES.items()):
            torch.manual_seed(1000 + i)
            ins, out, extra = fn()
            g = f.create_group(name)
            for k, t in enumerate(ins):
                g[f"in{k}"] = t.detach().numpy().astype(np.float32)
            for k, v in extra.items():
                v = v.detach().numpy()
                g[k] = v.astype(np.int64) if v.dtype.kind in "iu" else v.astype(np.float32)
            g["out"] = out.detach().numpy().astype(np.float32)
            if out.requires_grad:
                R = torch.rand(out.shape) * 2 - 1
                out.backward(R)
                g["R"] = R.numpy()
                for k, t in enumerate(ins):
                    if t.grad is not None:
                        g[f"grad{k}"] = t.grad.numpy().astype(np.float32)
    os.replace(path + ".tmp", path)
    print(f"{path}: {len(CASES)} cases")


if __name__ == "__main__":
    main()
