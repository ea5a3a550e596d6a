/*
 * model.h - the networks: named parameters in one flat buffer, non-trained state in another, and a forward pass
 * built from the ops of include/ops.h only (so every backward is the tape's).
 *
 * A Model owns two ParamTables (tensor.h):
 *   params  : every trained tensor, named EXACTLY as the equivalent PyTorch module's state_dict names it
 *             ("layer1.0.conv1.weight", "blocks.0.attn.qkv.bias", "down.0.block.0.temb_cemb_proj.weight"), with flat
 *             buffers `param` and `grad` of params.total floats each;
 *   buffers : every other state_dict entry ("bn1.running_mean", "bn1.running_var", DiT's frozen "pos_embed"),
 *             with one flat buffer `buf`. BatchNorm's num_batches_tracked is not kept (momentum is fixed).
 * The union of both tables is the PyTorch state_dict minus num_batches_tracked, so checkpoints convert 1:1 by name
 * (model_load_h5). The tables are fixed at model_create; params_find/params_view give named access.
 *
 * Example (one classification training step; see tape.h for the arena and tape):
 *     UlError err = {0};
 *     ModelSpec spec = {.arch = "fmnist-cnn", .in_channels = 1, .height = 28, .width = 28, .num_classes = 10};
 *     Model *m = model_create(&spec, &err);                  // NULL + err.msg on a bad arch or bad sizes
 *     model_init(m, 1234);                                    // PyTorch's default initialisation
 *     tape_reset(&tape);
 *     Tensor *x = tensor_wrap(tape.arena, images, NULL, 4, (int[]){B, 1, 28, 28});
 *     Tensor *logits = model_forward(m, &tape, x, NULL);      // [B, 10]; BN uses batch stats when tape.training
 *     Tensor *loss = op_cross_entropy(&tape, logits, labels);
 *     memset(m->grad, 0, m->params.total * sizeof(float));
 *     tape_backward(&tape, loss, weights);                    // dL/dtheta accumulates into m->grad
 *
 * Architectures (spec.arch; a field left 0 takes the arch's default shown in brackets):
 *   "mlp"            flatten -> [Linear -> ReLU] per hidden width -> Linear(num_classes).
 *                    Names fc1, fc2, ..., fc{nhidden+1}. Needs nhidden >= 0 widths in hidden[].
 *   "fmnist-cnn"     conv3x3(C->32) BN ReLU, conv3x3(32->32) BN ReLU, maxpool2, conv3x3(32->64) BN ReLU,
 *                    conv3x3(64->64) BN ReLU, maxpool2, flatten, Linear(64*(H/4)*(W/4) -> 128) ReLU,
 *                    Linear(128 -> classes). Convs pad 1, no bias; BN eps 1e-5, momentum 0.1.
 *                    Names conv1..conv4, bn1..bn4, fc1, fc2.
 *   "resnet18-cifar" the CIFAR ResNet-18 (sfr-on.md §5.1): conv1/bn1 stem (3x3, 64, stride 1, no max-pool),
 *                    layer1..layer4 of two BasicBlocks (64/128/256/512, strides 1/2/2/2; shortcut.0 = 1x1 conv,
 *                    shortcut.1 = BN when the shape changes), global average pool, `linear`. No conv biases.
 *                    (The reference's 4x4 average pool equals the global one at 32x32 input.)
 *   "dit"            DiT (facebookresearch/DiT models.py, sfr-on.md §5.4): x_embedder.proj (p x p conv, stride p) +
 *                    frozen 2-D sin-cos pos_embed (a buffer), t_embedder.mlp.{0,2} on 256 [cos, sin] frequencies,
 *                    y_embedder.embedding_table [num_classes + 1, hidden] (last row = null label), c = t + y,
 *                    `depth` DiTBlocks with adaLN-Zero (blocks.i.{adaLN_modulation.1, attn.qkv, attn.proj, mlp.fc1,
 *                    mlp.fc2}; LayerNorm eps 1e-6 without affine; tanh-GELU MLP of 4*hidden), final_layer
 *                    {adaLN_modulation.1, linear}, unpatchify -> [B, out_channels, H, W].
 *                    Defaults: DiT-XL/2 on the 4x32x32 SD latent: hidden 1152, depth 28, heads 16, patch 2,
 *                    out_channels 2*in (learn_sigma), num_classes 1000.
 *   "dit-block"      the same network, small defaults for tests: depth 1, hidden 48, heads 4, patch 2,
 *                    out_channels 2*in; pick in_channels/height/width (e.g. 4x8x8 -> 16 tokens of head dim 12).
 *   "ddpm-unet"      the conditional DDPM UNet (SFR-on/SalUn DDPM/models/diffusion.py Conditional_Model,
 *                    sfr-on.md §5.3): temb.dense.{0,1} on the [sin, cos] timestep embedding of width ch,
 *                    classes_emb [num_classes, ch] + null_classes_emb [ch] then cemb.dense.{0,1}; conv_in;
 *                    down.i.{block.j, attn.j, downsample.conv}; mid.{block_1, attn_1, block_2};
 *                    up.i.{block.j, attn.j, upsample.conv}; norm_out; conv_out. ResnetBlock = norm1 SiLU conv1
 *                    + temb_cemb_proj(SiLU([temb; cemb])) norm2 SiLU dropout conv2 (+ nin_shortcut 1x1 when the
 *                    channel counts differ); AttnBlock = norm, 1x1 q/k/v, single head, scale c^-1/2, proj_out,
 *                    residual; Downsample = pad right/bottom 1 + conv3 stride 2; Upsample = nearest x2 + conv3.
 *                    GroupNorm eps 1e-6 with `groups` groups. temb and cemb are 4*ch wide each; the projection
 *                    reads both (8*ch; the reference hard-codes cemb_channels=512, i.e. ch = 128).
 *                    Defaults: the CIFAR-10 model, ch 128, ch_mult {1,2,2,2}, num_res_blocks 2, attention at
 *                    resolution 16, groups 32, dropout 0.1, out_channels = in_channels.
 *   "unet-stage"     the same network, small defaults for tests: ch 16, ch_mult {2,3} (channels 16 -> 32 -> 48),
 *                    num_res_blocks 1, attention at resolution height (the top level), groups 8, dropout 0;
 *                    e.g. 3x16x16 input. It exercises every block kind once: ResBlocks with and without
 *                    nin_shortcut, attention, downsampling, upsampling and the skip concatenations.
 *
 * Conditioning: the diffusion models read ModelCond.timesteps and .labels (label -1 = the null label of
 * classifier-free guidance: DiT's last table row, the UNet's null_classes_emb; the caller decides which samples to
 * drop, so the model stays a pure function of its inputs). Dropout (ddpm-unet, when spec.dropout > 0 and
 * tape.training) draws its keep decisions from (cond.seed, site, cond.sample_keys[i], element), so the result
 * does not depend on how the batch is split across ranks.
 *
 * Errors: model_create and model_load_h5 report bad user input through UlError (unknown arch with the valid list;
 * inconsistent sizes with the field at fault; a checkpoint entry missing or of the wrong shape, named). Internal
 * misuse (a forward input of the wrong shape, a missing cond) is fatal through UL_CHECK with the arch and shape.
 */
#ifndef UL_MODEL_H
#define UL_MODEL_H

#include "ops.h"

#define MODEL_ARCH_MAX 32
#define MODEL_MAX_HIDDEN 4
#define MODEL_MAX_LEVELS 4

typedef struct ModelSpec {
    char arch[MODEL_ARCH_MAX];           /* see the list above */
    int in_channels, height, width;      /* input image [C, H, W]; mlp flattens it */
    int num_classes;                     /* classifier outputs; class-conditional label count (dit, unet) */
    int hidden[MODEL_MAX_HIDDEN];        /* mlp: hidden widths */
    int nhidden;                         /* mlp: how many of hidden[] are used (0..MODEL_MAX_HIDDEN) */
    /* diffusion models; 0 = the arch's default */
    int width_ch;                        /* dit: hidden size; unet: base channels ch */
    int depth;                           /* dit: number of blocks */
    int heads;                           /* dit: attention heads (divides width_ch) */
    int patch;                           /* dit: patch size (divides height and width) */
    int out_channels;                    /* dit and unet output channels */
    int ch_mult[MODEL_MAX_LEVELS];       /* unet: channel multiplier per resolution level */
    int n_levels;                        /* unet: how many of ch_mult[] are used */
    int num_res_blocks;                  /* unet: ResnetBlocks per down level (up levels have one more) */
    int attn_res;                        /* unet: the resolution (height) at which AttnBlocks are added */
    int groups;                          /* unet: GroupNorm groups (divides every channel count) */
    float dropout;                       /* unet: ResnetBlock dropout probability in [0, 1); default 0.1 for
                                            ddpm-unet and 0 for unet-stage (a negative value means 0) */
} ModelSpec;

/* Per-batch conditioning. Classifiers ignore it (NULL is fine); diffusion models need timesteps and labels. */
typedef struct ModelCond {
    const float *timesteps;              /* [B] diffusion timesteps (may be fractional), or NULL */
    const int *labels;                   /* [B] class labels in [0, num_classes) or -1 for the null label */
    const int64_t *sample_keys;          /* [B] global sample indices keying dropout, or NULL (row index) */
    uint64_t seed;                       /* dropout seed of this step (vary it per step) */
} ModelCond;

typedef struct Model {
    ModelSpec spec;                      /* resolved: every default filled in */
    ParamTable params;                   /* trained tensors, PyTorch names */
    float *param, *grad;                 /* [params.total] each, owned; grad accumulates (caller zeroes) */
    ParamTable buffers;                  /* non-trained state, PyTorch names */
    float *buf;                          /* [buffers.total], owned */
    struct ModelPriv *priv;              /* init rules and lookup hints (internal to model.c) */
} Model;

/* The valid arch names, comma-separated, for messages. */
const char *model_arch_list(void);

/* Validates spec, fills in defaults and builds the tables; parameters and buffers start zeroed (call model_init
   or model_load_h5). Returns NULL and fills err on an unknown arch or inconsistent sizes. */
Model *model_create(const ModelSpec *spec, UlError *err);

/* PyTorch's default initialisation from the counter RNG (rng.h), a pure function of seed:
   Linear/Conv weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a = sqrt(5));
   Embedding and the UNet's null_classes_emb ~ N(0, 1); BatchNorm/GroupNorm weight 1, bias 0;
   running_mean 0, running_var 1. The DiT archs use DiT's initialize_weights instead: xavier-uniform Linear
   weights (the patch embedding over its flattened [hidden, C*p*p] view) with zero biases, N(0, 0.02) label
   table and timestep-MLP weights, zero adaLN_modulation and final linear; pos_embed = the 2-D sin-cos table.
   Gradients are zeroed. */
void model_init(Model *m, uint64_t seed);

/*
 * The forward pass on tape t (records nodes when t->record; BatchNorm in train mode and dropout follow
 * t->training). x: [B, in_channels, height, width] (mlp also accepts [B, C*H*W]). Returns (from t's arena):
 *   classifiers [B, num_classes] logits; dit, unet [B, out_channels, height, width].
 * Parameter tensors alias m->param / m->grad; BatchNorm running statistics in m->buf are updated in place
 * when t->training. cond may be NULL for classifiers. One forward at a time per Model (it keeps a lookup hint);
 * tape capacity: unet-stage records 144 nodes, ddpm-unet 337, a 28-block DiT 688.
 */
Tensor *model_forward(Model *m, Tape *t, Tensor *x, const ModelCond *cond);

/* A Tensor (by value) aliasing the named parameter in m->param/m->grad. Fatal when the name is unknown. */
Tensor model_param(const Model *m, const char *name);
/* The named buffer in m->buf (grad NULL). Fatal when the name is unknown. */
Tensor model_buffer(const Model *m, const char *name);

/*
 * Loads every parameter and buffer from HDF5 datasets "<group>/<name>" (group "" or NULL: "<name>" at the root),
 * float32 or convertible, named and shaped exactly as the tables (a PyTorch state_dict written by name).
 * Returns false and fills err naming the first missing or mis-shaped entry; the model may then be partly loaded.
 */
bool model_load_h5(Model *m, const char *path, const char *group, UlError *err);

void model_free(Model *m);

#endif
