#!/usr/bin/python3
"""PyTorch 1.13 twins of the C models (src/model.c) for tests/test_models.c: writes OUT/model_<arch>.h5.

Each twin is written from the reference code's structure, with the reference's module names, so that its
state_dict names are the names the C model uses:
  mlp             fc1..fc{n+1}
  fmnist-cnn      conv1..conv4 (no bias), bn1..bn4, fc1, fc2
  resnet18-cifar  the kuangliu-style CIFAR ResNet-18 of the SFR-on reference (Classification/models/resnet.py)
  dit-block       facebookresearch/DiT models.py (DiT with DiTBlocks and FinalLayer; timm's Attention and Mlp
                  written out with timm's names qkv/proj and fc1/fc2), 2 blocks, hidden 48, 4 heads, patch 2
  unet-stage      SFR-on/SalUn DDPM/models/diffusion.py Conditional_Model (ch 16, ch_mult (2, 3), 1 res block,
                  attention at the top resolution, GroupNorm(8 groups, eps 1e-6))
Deviations from the reference code, all mirrored in the C model and documented in include/model.h:
  - inputs may be rectangular (H != W), so that a transposed spatial index cannot pass by accident; DiT's
    unpatchify and 2-D sin-cos table and the UNet's resolution check are generalised accordingly;
  - the UNet's temb_cemb_proj reads temb (4ch) + cemb (4ch); the reference hard-codes cemb_channels=512 (= 4ch
    only for ch = 128);
  - class-conditional dropout is explicit: label -1 means "null label" (DiT's last table row, the UNet's
    null_classes_emb) instead of a random mask, so both sides see the same samples dropped;
  - dropout p = 0 (the C dropout keys its mask on a counter RNG, PyTorch on its own generator).
Parameters are NOT initialised like the references (DiT zero-initialises its adaLN and output layers, which would
make most gradients vanish): every weight keeps PyTorch's default init, norm affines and BN running statistics are
randomised around their defaults so that a gamma/beta or mean/var mix-up cannot pass.

Datasets of model_<arch>.h5 (float32 unless noted):
  state/<name>        every state_dict entry except num_batches_tracked, BEFORE the forward pass
  input               [B, C, H, W]
  targets (int64)     [B] classification labels              (classifiers)
  timesteps, labels   [B] float32 timesteps, int64 labels (-1 = null)   (diffusion models)
  output              model output in train mode (BN uses batch statistics)
  loss                [1] classifiers: mean cross-entropy; diffusion: sum(output * R)
  R                   diffusion: the fixed random projection defining the loss (= the seed of tape_backward)
  grad/<name>         d loss / d parameter, every parameter
  after/<name>        BN running_mean / running_var after the train-mode forward
  output_eval         BN models: output in eval mode after the train-mode forward (uses the updated statistics)
  num_params, num_buffers (int64 scalars)   how many state_dict entries of each kind (excl. num_batches_tracked)
The sizes here are repeated in tests/test_models.c (CASES there); keep them in step.
"""
import argparse
import math
import os

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------------------------------------------------------
# classifiers

class MLP(nn.Module):
    def __init__(self, d_in, hidden, classes):
        super().__init__()
        dims = [d_in] + list(hidden) + [classes]
        for i in range(len(dims) - 1):
            setattr(self, f"fc{i + 1}", nn.Linear(dims[i], dims[i + 1]))
        self.n = len(dims) - 1

    def forward(self, x):
        h = x.flatten(1)
        for i in range(self.n):
            h = getattr(self, f"fc{i + 1}")(h)
            if i < self.n - 1:
                h = F.relu(h)
        return h


class FmnistCNN(nn.Module):
    def __init__(self, cin, h, w, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, 32, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(64)
        self.conv4 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn4 = nn.BatchNorm2d(64)
        self.fc1 = nn.Linear(64 * (h // 4) * (w // 4), 128)
        self.fc2 = nn.Linear(128, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = F.relu(self.bn3(self.conv3(x)))
        x = F.max_pool2d(F.relu(self.bn4(self.conv4(x))), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, cin, classes):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(cin, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._make_layer(64, 2, 1)
        self.layer2 = self._make_layer(128, 2, 2)
        self.layer3 = self._make_layer(256, 2, 2)
        self.layer4 = self._make_layer(512, 2, 2)
        self.linear = nn.Linear(512, classes)

    def _make_layer(self, planes, n, stride):
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)  # = the reference's avg_pool2d(out, 4) at 32x32
        return self.linear(out)


# ---------------------------------------------------------------------------------------------------------------
# DiT (facebookresearch/DiT models.py)

def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden_size, frequency_embedding_size=256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(frequency_embedding_size, hidden_size), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size))
        self.frequency_embedding_size = frequency_embedding_size

    @staticmethod
    def timestep_embedding(t, dim, max_period=10000):
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32) / half)
        args = t[:, None].float() * freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    def forward(self, t):
        return self.mlp(self.timestep_embedding(t, self.frequency_embedding_size))


class LabelEmbedder(nn.Module):
    def __init__(self, num_classes, hidden_size):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, hidden_size)  # + the null (CFG) row
        self.num_classes = num_classes

    def forward(self, labels):
        return self.embedding_table(torch.where(labels < 0, self.num_classes, labels))


class Attention(nn.Module):  # timm.models.vision_transformer.Attention, qkv_bias=True, no q/k norm
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):  # timm Mlp with tanh GELU, drop 0
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class DiTBlock(nn.Module):
    def __init__(self, hidden_size, num_heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size, bias=True))

    def forward(self, x, c):
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


class FinalLayer(nn.Module):
    def __init__(self, hidden_size, patch_size, out_channels):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels, bias=True)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size, bias=True))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class PatchEmbed(nn.Module):  # timm PatchEmbed: conv p x p stride p, flatten(2).transpose(1, 2)
    def __init__(self, patch, cin, dim):
        super().__init__()
        self.proj = nn.Conv2d(cin, dim, kernel_size=patch, stride=patch, bias=True)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


def get_1d_sincos_pos_embed_from_grid(embed_dim, pos):
    omega = np.arange(embed_dim // 2, dtype=np.float64)
    omega /= embed_dim / 2.
    omega = 1. / 10000 ** omega
    out = np.einsum('m,d->md', pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def get_2d_sincos_pos_embed(embed_dim, gh, gw):
    """DiT's table for a gh x gw grid (DiT: gh == gw); tokens row-major, first half encodes the column."""
    grid = np.meshgrid(np.arange(gw, dtype=np.float32), np.arange(gh, dtype=np.float32))  # w goes first
    grid = np.stack(grid, axis=0).reshape([2, 1, gh, gw])
    emb_h = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[0])
    emb_w = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[1])
    return np.concatenate([emb_h, emb_w], axis=1)


class DiT(nn.Module):
    def __init__(self, in_channels, height, width, patch, hidden, depth, heads, num_classes):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = in_channels * 2  # learn_sigma
        self.patch_size = patch
        self.gh, self.gw = height // patch, width // patch
        self.x_embedder = PatchEmbed(patch, in_channels, hidden)
        self.t_embedder = TimestepEmbedder(hidden)
        self.y_embedder = LabelEmbedder(num_classes, hidden)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.gh * self.gw, hidden), requires_grad=False)
        self.blocks = nn.ModuleList([DiTBlock(hidden, heads) for _ in range(depth)])
        self.final_layer = FinalLayer(hidden, patch, self.out_channels)
        pos = get_2d_sincos_pos_embed(hidden, self.gh, self.gw)
        self.pos_embed.data.copy_(torch.from_numpy(pos).float().unsqueeze(0))

    def unpatchify(self, x):
        c, p, h, w = self.out_channels, self.patch_size, self.gh, self.gw
        x = x.reshape(shape=(x.shape[0], h, w, p, p, c))
        x = torch.einsum('nhwpqc->nchpwq', x)
        return x.reshape(shape=(x.shape[0], c, h * p, w * p))

    def forward(self, x, t, y):
        x = self.x_embedder(x) + self.pos_embed
        c = self.t_embedder(t) + self.y_embedder(y)
        for block in self.blocks:
            x = block(x, c)
        return self.unpatchify(self.final_layer(x, c))


# ---------------------------------------------------------------------------------------------------------------
# DDPM conditional UNet (DDPM/models/diffusion.py)

def get_timestep_embedding(timesteps, embedding_dim):
    half_dim = embedding_dim // 2
    emb = math.log(10000) / (half_dim - 1)
    emb = torch.exp(torch.arange(half_dim, dtype=torch.float32) * -emb)
    emb = timesteps.float()[:, None] * emb[None, :]
    return torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)


def nonlinearity(x):
    return x * torch.sigmoid(x)


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0))


class ResnetBlock(nn.Module):
    def __init__(self, in_channels, out_channels, temb_channels, cemb_channels, groups, dropout):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=1e-6)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.temb_cemb_proj = nn.Linear(temb_channels + cemb_channels, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=1e-6)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1, 1, 0)

    def forward(self, x, temb, cemb):
        h = self.conv1(nonlinearity(self.norm1(x)))
        h = h + self.temb_cemb_proj(nonlinearity(torch.cat([temb, cemb], dim=-1)))[:, :, None, None]
        h = self.conv2(self.dropout(nonlinearity(self.norm2(h))))
        if self.in_channels != self.out_channels:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        h_ = self.norm(x)
        q, k, v = self.q(h_), self.k(h_), self.v(h_)
        b, c, h, w = q.shape
        q = q.reshape(b, c, h * w).permute(0, 2, 1)
        k = k.reshape(b, c, h * w)
        w_ = torch.bmm(q, k) * (int(c) ** (-0.5))
        w_ = F.softmax(w_, dim=2)
        v = v.reshape(b, c, h * w)
        h_ = torch.bmm(v, w_.permute(0, 2, 1)).reshape(b, c, h, w)
        return x + self.proj_out(h_)


class ConditionalUNet(nn.Module):
    def __init__(self, in_channels, height, ch, ch_mult, num_res_blocks, attn_res, groups, num_classes, out_ch):
        super().__init__()
        self.ch = ch
        self.temb_ch = self.cemb_ch = ch * 4
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.null_classes_emb = nn.Parameter(torch.randn(ch))
        self.temb = nn.Module()
        self.temb.dense = nn.ModuleList([nn.Linear(ch, self.temb_ch), nn.Linear(self.temb_ch, self.temb_ch)])
        self.classes_emb = nn.Embedding(num_classes, ch)
        self.cemb = nn.Module()
        self.cemb.dense = nn.ModuleList([nn.Linear(ch, self.cemb_ch), nn.Linear(self.cemb_ch, self.cemb_ch)])
        self.conv_in = nn.Conv2d(in_channels, ch, 3, 1, 1)

        def rb(i, o):
            return ResnetBlock(i, o, self.temb_ch, self.cemb_ch, groups, 0.0)

        curr_res = height
        in_ch_mult = (1,) + tuple(ch_mult)
        self.down = nn.ModuleList()
        block_in = None
        for i_level in range(self.num_resolutions):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_in = ch * in_ch_mult[i_level]
            block_out = ch * ch_mult[i_level]
            for _ in range(num_res_blocks):
                block.append(rb(block_in, block_out))
                block_in = block_out
                if curr_res == attn_res:
                    attn.append(AttnBlock(block_in, groups))
            down = nn.Module()
            down.block, down.attn = block, attn
            if i_level != self.num_resolutions - 1:
                down.downsample = Downsample(block_in)
                curr_res = curr_res // 2
            self.down.append(down)
        self.mid = nn.Module()
        self.mid.block_1 = rb(block_in, block_in)
        self.mid.attn_1 = AttnBlock(block_in, groups)
        self.mid.block_2 = rb(block_in, block_in)
        self.up = nn.ModuleList()
        for i_level in reversed(range(self.num_resolutions)):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_out = ch * ch_mult[i_level]
            skip_in = ch * ch_mult[i_level]
            for i_block in range(num_res_blocks + 1):
                if i_block == num_res_blocks:
                    skip_in = ch * in_ch_mult[i_level]
                block.append(rb(block_in + skip_in, block_out))
                block_in = block_out
                if curr_res == attn_res:
                    attn.append(AttnBlock(block_in, groups))
            up = nn.Module()
            up.block, up.attn = block, attn
            if i_level != 0:
                up.upsample = Upsample(block_in)
                curr_res = curr_res * 2
            self.up.insert(0, up)
        self.norm_out = nn.GroupNorm(groups, block_in, eps=1e-6)
        self.conv_out = nn.Conv2d(block_in, out_ch, 3, 1, 1)

    def forward(self, x, t, c):
        temb = self.temb.dense[1](nonlinearity(self.temb.dense[0](get_timestep_embedding(t, self.ch))))
        keep = c >= 0
        cemb = self.classes_emb(torch.where(keep, c, 0))
        cemb = torch.where(keep[:, None], cemb, self.null_classes_emb[None, :].expand(x.shape[0], -1))
        cemb = self.cemb.dense[1](nonlinearity(self.cemb.dense[0](cemb)))
        hs = [self.conv_in(x)]
        for i_level in range(self.num_resolutions):
            for i_block in range(self.num_res_blocks):
                h = self.down[i_level].block[i_block](hs[-1], temb, cemb)
                if len(self.down[i_level].attn) > 0:
                    h = self.down[i_level].attn[i_block](h)
                hs.append(h)
            if i_level != self.num_resolutions - 1:
                hs.append(self.down[i_level].downsample(hs[-1]))
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(hs[-1], temb, cemb)), temb, cemb)
        for i_level in reversed(range(self.num_resolutions)):
            for i_block in range(self.num_res_blocks + 1):
                h = self.up[i_level].block[i_block](torch.cat([h, hs.pop()], dim=1), temb, cemb)
                if len(self.up[i_level].attn) > 0:
                    h = self.up[i_level].attn[i_block](h)
            if i_level != 0:
                h = self.up[i_level].upsample(h)
        return self.conv_out(nonlinearity(self.norm_out(h)))


# ---------------------------------------------------------------------------------------------------------------

def randomise_norms(model, g):
    """Norm affines ~ 1 + 0.2 N(0,1) and 0.2 N(0,1); BN running_mean ~ 0.1 N, running_var ~ U(0.5, 1.5)."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)) and mod.weight is not None:
                mod.weight.copy_(1 + 0.2 * torch.randn(mod.weight.shape, generator=g))
                mod.bias.copy_(0.2 * torch.randn(mod.bias.shape, generator=g))
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.copy_(0.1 * torch.randn(mod.running_mean.shape, generator=g))
                mod.running_var.copy_(0.5 + torch.rand(mod.running_var.shape, generator=g))


def state_entries(model):
    params = dict(model.named_parameters())
    out = {}
    for name, v in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        out[name] = v.detach().clone()
    return params, out


def write(path, model, state, inputs, extra):
    """state: the state_dict entries captured before the forward pass."""
    params = dict(model.named_parameters())
    with h5py.File(path + ".tmp", "w") as f:
        for name, v in state.items():
            f[f"state/{name}"] = v.numpy().astype(np.float32)
        for k, v in inputs.items():
            f[k] = v
        for k, v in extra.items():
            f[k] = v
        for name, p in params.items():
            if p.requires_grad:
                f[f"grad/{name}"] = p.grad.numpy().astype(np.float32)
        for name, b in model.named_buffers():
            if not name.endswith("num_batches_tracked"):
                f[f"after/{name}"] = b.numpy().astype(np.float32)
        trained = [n for n, p in params.items() if p.requires_grad]
        f["num_params"] = np.int64(len(trained))
        f["num_buffers"] = np.int64(len(state) - len(trained))
    os.replace(path + ".tmp", path)


def classifier_case(out, name, model, x, y, bn):
    g = torch.Generator().manual_seed(99)
    if bn:
        randomise_norms(model, g)
    _, state0 = state_entries(model)
    model.train()
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    extra = {"output": logits.detach().numpy(), "loss": np.array([loss.item()], np.float32)}
    if bn:
        model.eval()
        with torch.no_grad():
            extra["output_eval"] = model(x).numpy()
    write(os.path.join(out, f"model_{name}.h5"), model, state0,
          {"input": x.numpy(), "targets": y.numpy().astype(np.int64)}, extra)


def generative_case(out, name, model, x, t, y):
    g = torch.Generator().manual_seed(98)
    randomise_norms(model, g)
    _, state0 = state_entries(model)
    model.train()
    o = model(x, t, y)
    R = torch.empty_like(o).uniform_(-1, 1, generator=g)
    loss = (o * R).sum()
    loss.backward()
    write(os.path.join(out, f"model_{name}.h5"), model, state0,
          {"input": x.numpy(), "timesteps": t.numpy().astype(np.float32), "labels": y.numpy().astype(np.int64)},
          {"output": o.detach().numpy(), "R": R.numpy(), "loss": np.array([loss.item()], np.float32)})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)

    # mlp: x [5, 1, 6, 7] -> 42 -> 31 -> 17 -> 9
    torch.manual_seed(1)
    classifier_case(args.out, "mlp", MLP(42, [31, 17], 9), torch.randn(5, 1, 6, 7),
                    torch.tensor([0, 8, 3, 3, 5]), bn=False)
    # fmnist-cnn: x [5, 1, 28, 20], 10 classes
    torch.manual_seed(2)
    classifier_case(args.out, "fmnist-cnn", FmnistCNN(1, 28, 20, 10), torch.randn(5, 1, 28, 20),
                    torch.tensor([9, 0, 4, 4, 7]), bn=True)
    # resnet18-cifar: x [3, 3, 8, 12], 7 classes
    torch.manual_seed(3)
    classifier_case(args.out, "resnet18-cifar", ResNet18(3, 7), torch.randn(3, 3, 8, 12),
                    torch.tensor([6, 1, 2]), bn=True)
    # dit-block: x [3, 4, 8, 12], patch 2 (4 x 6 = 24 tokens), hidden 48, 4 heads, depth 2, 5 classes
    torch.manual_seed(4)
    generative_case(args.out, "dit-block", DiT(4, 8, 12, 2, 48, 2, 4, 5), torch.randn(3, 4, 8, 12),
                    torch.tensor([3.0, 517.0, 999.0]), torch.tensor([2, -1, 4]))
    # unet-stage: x [2, 3, 16, 12], ch 16, ch_mult (2, 3), 1 res block, attention at 16, 8 groups, 10 classes
    torch.manual_seed(5)
    generative_case(args.out, "unet-stage", ConditionalUNet(3, 16, 16, (2, 3), 1, 16, 8, 10, 3),
                    torch.randn(2, 3, 16, 12), torch.tensor([10.0, 731.0]), torch.tensor([3, -1]))


if __name__ == "__main__":
    main()
