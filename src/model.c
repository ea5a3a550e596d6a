/* model.c - the architectures of include/model.h: build (named tables), init and forward (ops only). */
#include "model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5io.h"
#include "rng.h"

/* ------------------------------------------------------------------------------------------------------------ */
/* Private state: how each table entry is initialised, and lookup hints for the forward pass.                   */

typedef enum InitKind {
    INIT_ZERO,        /* 0 */
    INIT_ONE,         /* 1 (norm weights, running_var) */
    INIT_UNIFORM,     /* U(-a, a) */
    INIT_NORMAL,      /* N(0, a^2) */
    INIT_POS_EMBED    /* DiT's fixed 2-D sin-cos table */
} InitKind;

typedef struct InitRule {
    InitKind kind;
    double a;
} InitRule;

typedef struct ArchInfo {
    const char *name;
    bool (*resolve)(ModelSpec *s, UlError *err);   /* fills defaults and validates */
    void (*build)(Model *m);                       /* adds every parameter and buffer */
    Tensor *(*forward)(Model *m, Tape *t, Tensor *x, const ModelCond *cond);
} ArchInfo;

typedef struct ModelPriv {
    const ArchInfo *arch;
    InitRule *pinit, *binit;  /* [params.count], [buffers.count] */
    int pcap, bcap;
    int pcursor, bcursor;     /* index after the last lookup: the forward pass asks in build order */
} ModelPriv;

/* ------------------------------------------------------------------------------------------------------------ */
/* Building the tables                                                                                          */

static InitRule rule(InitKind kind, double a)
{
    InitRule r = {kind, a};
    return r;
}

/* PyTorch's default for Linear/Conv weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
static InitRule rule_fan_in(int fan_in) { return rule(INIT_UNIFORM, 1.0 / sqrt((double)fan_in)); }

static void vname(char *dst, const char *fmt, va_list ap)
{
    int n = vsnprintf(dst, PARAM_NAME_MAX, fmt, ap);
    UL_CHECK(n > 0 && n < PARAM_NAME_MAX, "parameter name too long (format %s)", fmt);
}

/* snprintf into a PARAM_NAME_MAX buffer; returns buf. Fatal on truncation. */
static const char *__attribute__((format(printf, 2, 3))) nm(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vname(buf, fmt, ap);
    va_end(ap);
    return buf;
}

static void __attribute__((format(printf, 5, 6)))
add_entry(Model *m, bool is_param, InitRule r, const int *shape_nd, const char *fmt, ...)
{
    /* shape_nd: {ndim, d0, d1, ...} */
    char name[PARAM_NAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    vname(name, fmt, ap);
    va_end(ap);
    ParamTable *pt = is_param ? &m->params : &m->buffers;
    int i = params_add(pt, name, shape_nd[0], shape_nd + 1);
    InitRule **rules = is_param ? &m->priv->pinit : &m->priv->binit;
    int *cap = is_param ? &m->priv->pcap : &m->priv->bcap;
    if (i >= *cap) {
        *cap = *cap ? 2 * *cap : 64;
        *rules = UL_REALLOC(*rules, ul_mul_size((size_t)*cap, sizeof **rules));
    }
    (*rules)[i] = r;
}

static void add_linear(Model *m, const char *pre, int in, int out, bool bias)
{
    add_entry(m, true, rule_fan_in(in), (int[]){2, out, in}, "%s.weight", pre);
    if (bias) add_entry(m, true, rule_fan_in(in), (int[]){1, out}, "%s.bias", pre);
}

static void add_conv(Model *m, const char *pre, int cin, int cout, int k, bool bias)
{
    add_entry(m, true, rule_fan_in(cin * k * k), (int[]){4, cout, cin, k, k}, "%s.weight", pre);
    if (bias) add_entry(m, true, rule_fan_in(cin * k * k), (int[]){1, cout}, "%s.bias", pre);
}

/* GroupNorm / BatchNorm affine parameters. */
static void add_norm(Model *m, const char *pre, int c)
{
    add_entry(m, true, rule(INIT_ONE, 0), (int[]){1, c}, "%s.weight", pre);
    add_entry(m, true, rule(INIT_ZERO, 0), (int[]){1, c}, "%s.bias", pre);
}

static void add_bn(Model *m, const char *pre, int c)
{
    add_norm(m, pre, c);
    add_entry(m, false, rule(INIT_ZERO, 0), (int[]){1, c}, "%s.running_mean", pre);
    add_entry(m, false, rule(INIT_ONE, 0), (int[]){1, c}, "%s.running_var", pre);
}

/* Overrides the init rule of an existing parameter (DiT's initialize_weights). */
static void set_rule(Model *m, InitRule r, const char *name)
{
    int i = params_find(&m->params, name);
    UL_CHECK(i >= 0, "set_rule: no parameter %s", name);
    m->priv->pinit[i] = r;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Forward-pass helpers: named parameter tensors from the tape's arena, and small layers made of ops.          */

static int lookup(const ParamTable *pt, int *cursor, const char *name)
{
    int i = *cursor;
    if (!(i < pt->count && strcmp(pt->views[i].name, name) == 0)) i = params_find(pt, name);
    UL_CHECK(i >= 0, "model: no entry named %s", name);
    *cursor = i + 1;
    return i;
}

static Tensor *__attribute__((format(printf, 3, 4))) P(Model *m, Tape *t, const char *fmt, ...)
{
    char name[PARAM_NAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    vname(name, fmt, ap);
    va_end(ap);
    int i = lookup(&m->params, &m->priv->pcursor, name);
    Tensor *p = arena_alloc(t->arena, sizeof *p);
    *p = params_view(&m->params, i, m->param, m->grad);
    return p;
}

static Tensor *__attribute__((format(printf, 3, 4))) BUF(Model *m, Tape *t, const char *fmt, ...)
{
    char name[PARAM_NAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    vname(name, fmt, ap);
    va_end(ap);
    int i = lookup(&m->buffers, &m->priv->bcursor, name);
    Tensor *p = arena_alloc(t->arena, sizeof *p);
    *p = params_view(&m->buffers, i, m->buf, NULL);
    return p;
}

static Tensor *linear(Model *m, Tape *t, Tensor *x, const char *pre, bool bias)
{
    Tensor *w = P(m, t, "%s.weight", pre);
    return op_linear(t, x, w, bias ? P(m, t, "%s.bias", pre) : NULL);
}

static Tensor *conv(Model *m, Tape *t, Tensor *x, const char *pre, bool bias, int stride, int pad)
{
    Tensor *w = P(m, t, "%s.weight", pre);
    return op_conv2d(t, x, w, bias ? P(m, t, "%s.bias", pre) : NULL, stride, pad);
}

/* BatchNorm2d(eps 1e-5, momentum 0.1), PyTorch's defaults. */
static Tensor *batchnorm(Model *m, Tape *t, Tensor *x, const char *pre)
{
    Tensor *g = P(m, t, "%s.weight", pre), *b = P(m, t, "%s.bias", pre);
    Tensor *rm = BUF(m, t, "%s.running_mean", pre), *rv = BUF(m, t, "%s.running_var", pre);
    return op_batchnorm2d(t, x, g, b, rm->data, rv->data, 0.1f, 1e-5f);
}

static Tensor *groupnorm(Model *m, Tape *t, Tensor *x, const char *pre, int groups, float eps)
{
    Tensor *g = P(m, t, "%s.weight", pre);
    return op_groupnorm(t, x, g, P(m, t, "%s.bias", pre), groups, eps);
}

static Tensor *reshape2(Tape *t, Tensor *x, int d0, int d1) { return op_reshape(t, x, 2, (int[]){d0, d1}); }
static Tensor *reshape3(Tape *t, Tensor *x, int d0, int d1, int d2)
{
    return op_reshape(t, x, 3, (int[]){d0, d1, d2});
}
static Tensor *reshape4(Tape *t, Tensor *x, int d0, int d1, int d2, int d3)
{
    return op_reshape(t, x, 4, (int[]){d0, d1, d2, d3});
}

static void check_image_input(const Model *m, const Tensor *x)
{
    const ModelSpec *s = &m->spec;
    char buf[64];
    UL_CHECK(x->ndim == 4 && x->shape[1] == s->in_channels && x->shape[2] == s->height && x->shape[3] == s->width,
             "model %s: input %s, expected [B, %d, %d, %d]", s->arch, tensor_shape_str(x, buf, sizeof buf),
             s->in_channels, s->height, s->width);
}

static bool check_positive(const ModelSpec *s, UlError *err)
{
    if (s->in_channels <= 0 || s->height <= 0 || s->width <= 0) {
        ul_error_set(err, "model %s: in_channels, height and width must be positive (got %d, %d, %d)", s->arch,
                     s->in_channels, s->height, s->width);
        return false;
    }
    if (s->num_classes <= 0) {
        ul_error_set(err, "model %s: num_classes must be positive (got %d)", s->arch, s->num_classes);
        return false;
    }
    return true;
}

static int default_int(int v, int d) { return v ? v : d; }

/* ------------------------------------------------------------------------------------------------------------ */
/* mlp                                                                                                          */

static bool mlp_resolve(ModelSpec *s, UlError *err)
{
    if (!check_positive(s, err)) return false;
    if (s->nhidden < 0 || s->nhidden > MODEL_MAX_HIDDEN) {
        ul_error_set(err, "model mlp: nhidden %d outside [0, %d]", s->nhidden, MODEL_MAX_HIDDEN);
        return false;
    }
    for (int i = 0; i < s->nhidden; i++)
        if (s->hidden[i] <= 0) {
            ul_error_set(err, "model mlp: hidden[%d] = %d must be positive", i, s->hidden[i]);
            return false;
        }
    return true;
}

static void mlp_build(Model *m)
{
    const ModelSpec *s = &m->spec;
    int in = s->in_channels * s->height * s->width;
    char pre[PARAM_NAME_MAX];
    for (int i = 0; i <= s->nhidden; i++) {
        int out = i < s->nhidden ? s->hidden[i] : s->num_classes;
        add_linear(m, nm(pre, "fc%d", i + 1), in, out, true);
        in = out;
    }
}

static Tensor *mlp_forward(Model *m, Tape *t, Tensor *x, const ModelCond *cond)
{
    (void)cond;
    const ModelSpec *s = &m->spec;
    int D = s->in_channels * s->height * s->width, B = x->shape[0];
    char buf[64];
    UL_CHECK(x->n == (size_t)B * (size_t)D, "model mlp: input %s does not flatten to [B, %d]",
             tensor_shape_str(x, buf, sizeof buf), D);
    Tensor *h = reshape2(t, x, B, D);  /* [B, C*H*W] */
    char pre[PARAM_NAME_MAX];
    for (int i = 0; i <= s->nhidden; i++) {
        h = linear(m, t, h, nm(pre, "fc%d", i + 1), true);  /* [B, hidden[i]] or [B, classes] */
        if (i < s->nhidden) h = op_relu(t, h);
    }
    return h;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* fmnist-cnn                                                                                                   */

static bool cnn_resolve(ModelSpec *s, UlError *err)
{
    if (!check_positive(s, err)) return false;
    if (s->height < 4 || s->width < 4) {
        ul_error_set(err, "model fmnist-cnn: input %dx%d is smaller than 4x4 (two 2x2 max-pools)", s->height,
                     s->width);
        return false;
    }
    return true;
}

static void cnn_build(Model *m)
{
    const ModelSpec *s = &m->spec;
    const int cin[4] = {s->in_channels, 32, 32, 64}, cout[4] = {32, 32, 64, 64};
    char pre[PARAM_NAME_MAX];
    for (int i = 0; i < 4; i++) {
        add_conv(m, nm(pre, "conv%d", i + 1), cin[i], cout[i], 3, false);
        add_bn(m, nm(pre, "bn%d", i + 1), cout[i]);
    }
    add_linear(m, "fc1", 64 * (s->height / 4) * (s->width / 4), 128, true);
    add_linear(m, "fc2", 128, s->num_classes, true);
}

static Tensor *cnn_forward(Model *m, Tape *t, Tensor *x, const ModelCond *cond)
{
    (void)cond;
    check_image_input(m, x);
    char pre[PARAM_NAME_MAX];
    Tensor *h = x;  /* [B, C, H, W] */
    for (int i = 0; i < 4; i++) {
        h = conv(m, t, h, nm(pre, "conv%d", i + 1), false, 1, 1);
        h = op_relu(t, batchnorm(m, t, h, nm(pre, "bn%d", i + 1)));
        if (i == 1 || i == 3) h = op_maxpool2d(t, h, 2, 2);  /* [B, 32, H/2, W/2], then [B, 64, H/4, W/4] */
    }
    h = reshape2(t, h, h->shape[0], (int)(h->n / (size_t)h->shape[0]));  /* [B, 64*(H/4)*(W/4)] */
    h = op_relu(t, linear(m, t, h, "fc1", true));                       /* [B, 128] */
    return linear(m, t, h, "fc2", true);                                /* [B, classes] */
}

/* ------------------------------------------------------------------------------------------------------------ */
/* resnet18-cifar                                                                                               */

static const int resnet_planes[4] = {64, 128, 256, 512}, resnet_strides[4] = {1, 2, 2, 2};

static bool resnet_resolve(ModelSpec *s, UlError *err) { return check_positive(s, err); }

static void resnet_build(Model *m)
{
    add_conv(m, "conv1", m->spec.in_channels, 64, 3, false);
    add_bn(m, "bn1", 64);
    int in = 64;
    char pre[PARAM_NAME_MAX], sub[PARAM_NAME_MAX];
    for (int l = 0; l < 4; l++)
        for (int b = 0; b < 2; b++) {
            int planes = resnet_planes[l], stride = b == 0 ? resnet_strides[l] : 1;
            nm(pre, "layer%d.%d", l + 1, b);
            add_conv(m, nm(sub, "%s.conv1", pre), in, planes, 3, false);
            add_bn(m, nm(sub, "%s.bn1", pre), planes);
            add_conv(m, nm(sub, "%s.conv2", pre), planes, planes, 3, false);
            add_bn(m, nm(sub, "%s.bn2", pre), planes);
            if (stride != 1 || in != planes) {
                add_conv(m, nm(sub, "%s.shortcut.0", pre), in, planes, 1, false);
                add_bn(m, nm(sub, "%s.shortcut.1", pre), planes);
            }
            in = planes;
        }
    add_linear(m, "linear", 512, m->spec.num_classes, true);
}

static Tensor *resnet_forward(Model *m, Tape *t, Tensor *x, const ModelCond *cond)
{
    (void)cond;
    check_image_input(m, x);
    Tensor *h = op_relu(t, batchnorm(m, t, conv(m, t, x, "conv1", false, 1, 1), "bn1"));  /* [B, 64, H, W] */
    int in = 64;
    char pre[PARAM_NAME_MAX], sub[PARAM_NAME_MAX];
    for (int l = 0; l < 4; l++)
        for (int b = 0; b < 2; b++) {
            int planes = resnet_planes[l], stride = b == 0 ? resnet_strides[l] : 1;
            nm(pre, "layer%d.%d", l + 1, b);
            Tensor *o = conv(m, t, h, nm(sub, "%s.conv1", pre), false, stride, 1);  /* [B, planes, H/s, W/s] */
            o = op_relu(t, batchnorm(m, t, o, nm(sub, "%s.bn1", pre)));
            o = conv(m, t, o, nm(sub, "%s.conv2", pre), false, 1, 1);
            o = batchnorm(m, t, o, nm(sub, "%s.bn2", pre));
            Tensor *sc = h;
            if (stride != 1 || in != planes) {
                sc = conv(m, t, h, nm(sub, "%s.shortcut.0", pre), false, stride, 0);
                sc = batchnorm(m, t, sc, nm(sub, "%s.shortcut.1", pre));
            }
            h = op_relu(t, op_add(t, o, sc));
            in = planes;
        }
    h = op_global_avgpool(t, h);                /* [B, 512] */
    return linear(m, t, h, "linear", true);     /* [B, classes] */
}

/* ------------------------------------------------------------------------------------------------------------ */
/* dit, dit-block                                                                                               */

#define DIT_FREQ_DIM 256  /* TimestepEmbedder.frequency_embedding_size */

static bool dit_resolve_common(ModelSpec *s, UlError *err)
{
    if (!check_positive(s, err)) return false;
    if (s->out_channels <= 0) s->out_channels = 2 * s->in_channels;  /* learn_sigma */
    if (s->width_ch <= 0 || s->depth <= 0 || s->heads <= 0 || s->patch <= 0) {
        ul_error_set(err, "model %s: width_ch, depth, heads and patch must be positive", s->arch);
        return false;
    }
    if (s->width_ch % s->heads) {
        ul_error_set(err, "model %s: width_ch %d is not divisible by heads %d", s->arch, s->width_ch, s->heads);
        return false;
    }
    if (s->width_ch % 4) {
        ul_error_set(err, "model %s: width_ch %d must be a multiple of 4 (2-D sin-cos position embedding)",
                     s->arch, s->width_ch);
        return false;
    }
    if (s->height % s->patch || s->width % s->patch) {
        ul_error_set(err, "model %s: patch %d does not divide the input %dx%d", s->arch, s->patch, s->height,
                     s->width);
        return false;
    }
    return true;
}

static bool dit_resolve(ModelSpec *s, UlError *err)
{
    /* DiT-XL/2 on the 4x32x32 Stable Diffusion latent of a 256x256 ImageNet image. */
    s->in_channels = default_int(s->in_channels, 4);
    s->height = default_int(s->height, 32);
    s->width = default_int(s->width, 32);
    s->num_classes = default_int(s->num_classes, 1000);
    s->width_ch = default_int(s->width_ch, 1152);
    s->depth = default_int(s->depth, 28);
    s->heads = default_int(s->heads, 16);
    s->patch = default_int(s->patch, 2);
    return dit_resolve_common(s, err);
}

static bool dit_block_resolve(ModelSpec *s, UlError *err)
{
    s->width_ch = default_int(s->width_ch, 48);
    s->depth = default_int(s->depth, 1);
    s->heads = default_int(s->heads, 4);
    s->patch = default_int(s->patch, 2);
    return dit_resolve_common(s, err);
}

static void dit_build(Model *m)
{
    const ModelSpec *s = &m->spec;
    int D = s->width_ch, p = s->patch, T = (s->height / p) * (s->width / p);
    int fan_pe = s->in_channels * p * p;
    add_conv(m, "x_embedder.proj", s->in_channels, D, p, true);
    add_linear(m, "t_embedder.mlp.0", DIT_FREQ_DIM, D, true);
    add_linear(m, "t_embedder.mlp.2", D, D, true);
    add_entry(m, true, rule(INIT_NORMAL, 0.02), (int[]){2, s->num_classes + 1, D},
              "y_embedder.embedding_table.weight");
    char pre[PARAM_NAME_MAX], sub[PARAM_NAME_MAX];
    for (int i = 0; i < s->depth; i++) {
        nm(pre, "blocks.%d", i);
        add_linear(m, nm(sub, "%s.attn.qkv", pre), D, 3 * D, true);
        add_linear(m, nm(sub, "%s.attn.proj", pre), D, D, true);
        add_linear(m, nm(sub, "%s.mlp.fc1", pre), D, 4 * D, true);
        add_linear(m, nm(sub, "%s.mlp.fc2", pre), 4 * D, D, true);
        add_linear(m, nm(sub, "%s.adaLN_modulation.1", pre), D, 6 * D, true);
    }
    add_linear(m, "final_layer.linear", D, p * p * s->out_channels, true);
    add_linear(m, "final_layer.adaLN_modulation.1", D, 2 * D, true);
    add_entry(m, false, rule(INIT_POS_EMBED, 0), (int[]){3, 1, T, D}, "pos_embed");

    /* DiT.initialize_weights: xavier-uniform Linear weights, zero Linear biases ... */
    for (int i = 0; i < m->params.count; i++) {
        const ParamView *v = &m->params.views[i];
        const char *dot = strrchr(v->name, '.');
        if (strncmp(v->name, "x_embedder", 10) == 0 || strncmp(v->name, "y_embedder", 10) == 0) continue;
        if (strcmp(dot, ".weight") == 0)
            m->priv->pinit[i] = rule(INIT_UNIFORM, sqrt(6.0 / (double)(v->shape[0] + v->shape[1])));
        else
            m->priv->pinit[i] = rule(INIT_ZERO, 0);
    }
    /* ... the patch embedding like a Linear over its [D, C*p*p] view (its bias keeps Conv2d's default) ... */
    set_rule(m, rule(INIT_UNIFORM, sqrt(6.0 / (double)(D + fan_pe))), "x_embedder.proj.weight");
    /* ... N(0, 0.02) timestep MLP weights, zero adaLN modulation and output layer. */
    set_rule(m, rule(INIT_NORMAL, 0.02), "t_embedder.mlp.0.weight");
    set_rule(m, rule(INIT_NORMAL, 0.02), "t_embedder.mlp.2.weight");
    for (int i = 0; i < s->depth; i++) {
        set_rule(m, rule(INIT_ZERO, 0), nm(sub, "blocks.%d.adaLN_modulation.1.weight", i));
        set_rule(m, rule(INIT_ZERO, 0), nm(sub, "blocks.%d.adaLN_modulation.1.bias", i));
    }
    set_rule(m, rule(INIT_ZERO, 0), "final_layer.adaLN_modulation.1.weight");
    set_rule(m, rule(INIT_ZERO, 0), "final_layer.adaLN_modulation.1.bias");
    set_rule(m, rule(INIT_ZERO, 0), "final_layer.linear.weight");
    set_rule(m, rule(INIT_ZERO, 0), "final_layer.linear.bias");
}

/* Class labels with -1 (null label) mapped to `null_row`, copied into the arena; fatal when out of range. */
static int *map_labels(const Model *m, Tape *t, const ModelCond *cond, int B, int null_row)
{
    UL_CHECK(cond && cond->labels, "model %s: the forward pass needs ModelCond.labels", m->spec.arch);
    int *idx = arena_alloc(t->arena, ul_mul_size((size_t)B, sizeof(int)));
    for (int i = 0; i < B; i++) {
        int y = cond->labels[i];
        UL_CHECK(y >= -1 && y < m->spec.num_classes, "model %s: label %d of sample %d outside [-1, %d)",
                 m->spec.arch, y, i, m->spec.num_classes);
        idx[i] = y < 0 ? null_row : y;
    }
    return idx;
}

static Tensor *dit_forward(Model *m, Tape *t, Tensor *x, const ModelCond *cond)
{
    const ModelSpec *s = &m->spec;
    check_image_input(m, x);
    UL_CHECK(cond && cond->timesteps, "model %s: the forward pass needs ModelCond.timesteps", s->arch);
    int B = x->shape[0], D = s->width_ch, p = s->patch, gh = s->height / p, gw = s->width / p, T = gh * gw;

    /* x_embedder + pos_embed */
    Tensor *h = conv(m, t, x, "x_embedder.proj", true, p, 0);             /* [B, D, gh, gw] */
    h = op_transpose(t, reshape3(t, h, B, D, T), 1, 2);                   /* [B, T, D] */
    h = op_add_bcast(t, h, BUF(m, t, "pos_embed"));                        /* + [1, T, D] */

    /* c = t_embedder(t) + y_embedder(y) */
    Tensor *te = op_timestep_emb(t, cond->timesteps, B, DIT_FREQ_DIM, 10000.0f, 0, true);  /* [B, 256] */
    te = linear(m, t, op_silu(t, linear(m, t, te, "t_embedder.mlp.0", true)), "t_embedder.mlp.2", true);
    int *idx = map_labels(m, t, cond, B, s->num_classes);
    Tensor *ye = op_embedding(t, P(m, t, "y_embedder.embedding_table.weight"), idx, B);   /* [B, D] */
    Tensor *c = op_add(t, te, ye);                                                          /* [B, D] */
    Tensor *sc = op_silu(t, c);

    char pre[PARAM_NAME_MAX], sub[PARAM_NAME_MAX];
    for (int i = 0; i < s->depth; i++) {
        nm(pre, "blocks.%d", i);
        Tensor *mod[6];  /* shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp: [B, D] each */
        op_chunk(t, linear(m, t, sc, nm(sub, "%s.adaLN_modulation.1", pre), true), 1, 6, mod);
        /* x = x + gate_msa * attn(modulate(norm1(x), shift_msa, scale_msa)) */
        Tensor *a = op_modulate(t, op_layernorm(t, h, NULL, NULL, 1e-6f), mod[0], mod[1]);  /* [B, T, D] */
        Tensor *qkv[3];
        op_chunk(t, linear(m, t, a, nm(sub, "%s.attn.qkv", pre), true), 2, 3, qkv);          /* 3 x [B, T, D] */
        a = op_attention(t, qkv[0], qkv[1], qkv[2], s->heads);
        a = linear(m, t, a, nm(sub, "%s.attn.proj", pre), true);
        h = op_add(t, h, op_mul_bcast(t, a, reshape3(t, mod[2], B, 1, D)));
        /* x = x + gate_mlp * mlp(modulate(norm2(x), shift_mlp, scale_mlp)) */
        Tensor *f = op_modulate(t, op_layernorm(t, h, NULL, NULL, 1e-6f), mod[3], mod[4]);
        f = op_gelu_tanh(t, linear(m, t, f, nm(sub, "%s.mlp.fc1", pre), true));              /* [B, T, 4D] */
        f = linear(m, t, f, nm(sub, "%s.mlp.fc2", pre), true);                                /* [B, T, D] */
        h = op_add(t, h, op_mul_bcast(t, f, reshape3(t, mod[5], B, 1, D)));
    }

    /* FinalLayer: modulate(norm_final(x), shift, scale) -> linear; then unpatchify */
    Tensor *fm[2];
    op_chunk(t, linear(m, t, sc, "final_layer.adaLN_modulation.1", true), 1, 2, fm);
    h = op_modulate(t, op_layernorm(t, h, NULL, NULL, 1e-6f), fm[0], fm[1]);
    h = linear(m, t, h, "final_layer.linear", true);                       /* [B, T, p*p*out] */
    return op_unpatchify(t, h, p, s->out_channels, gh, gw);               /* [B, out, H, W] */
}

/* DiT's get_2d_sincos_pos_embed generalised to a gh x gw grid: token (i, j) = [sin(j w), cos(j w), sin(i w),
   cos(i w)] with w_k = 10000^(-k/(D/4)), k < D/4 (numpy computes it in float64). */
static void dit_pos_embed(float *dst, int gh, int gw, int D)
{
    int q = D / 4;
    for (int i = 0; i < gh; i++)
        for (int j = 0; j < gw; j++) {
            float *row = dst + ((size_t)i * (size_t)gw + (size_t)j) * (size_t)D;
            for (int k = 0; k < q; k++) {
                double omega = 1.0 / pow(10000.0, (double)k / (double)q);
                row[k] = (float)sin(j * omega);
                row[q + k] = (float)cos(j * omega);
                row[2 * q + k] = (float)sin(i * omega);
                row[3 * q + k] = (float)cos(i * omega);
            }
        }
}

/* ------------------------------------------------------------------------------------------------------------ */
/* ddpm-unet, unet-stage                                                                                        */

static bool unet_resolve_common(ModelSpec *s, UlError *err)
{
    if (!check_positive(s, err)) return false;
    if (s->dropout < 0) s->dropout = 0;
    if (s->out_channels <= 0) s->out_channels = s->in_channels;
    if (s->n_levels < 1 || s->n_levels > MODEL_MAX_LEVELS) {
        ul_error_set(err, "model %s: n_levels %d outside [1, %d]", s->arch, s->n_levels, MODEL_MAX_LEVELS);
        return false;
    }
    if (s->width_ch <= 0 || s->num_res_blocks <= 0 || s->groups <= 0 || s->dropout >= 1) {
        ul_error_set(err, "model %s: width_ch, num_res_blocks and groups must be positive and dropout < 1",
                     s->arch);
        return false;
    }
    if (s->width_ch % 2) {
        ul_error_set(err, "model %s: width_ch %d must be even (sinusoidal timestep embedding)", s->arch,
                     s->width_ch);
        return false;
    }
    int cs[1 + MODEL_MAX_LEVELS];
    cs[0] = s->width_ch;
    for (int i = 0; i < s->n_levels; i++) {
        if (s->ch_mult[i] <= 0) {
            ul_error_set(err, "model %s: ch_mult[%d] = %d must be positive", s->arch, i, s->ch_mult[i]);
            return false;
        }
        cs[1 + i] = s->width_ch * s->ch_mult[i];
    }
    for (int i = 0; i <= s->n_levels; i++)
        if (cs[i] % s->groups) {
            ul_error_set(err, "model %s: channel count %d is not divisible by groups %d", s->arch, cs[i], s->groups);
            return false;
        }
    int f = 1 << (s->n_levels - 1);
    if (s->height % f || s->width % f) {
        ul_error_set(err, "model %s: input %dx%d must be divisible by 2^(n_levels-1) = %d", s->arch, s->height,
                     s->width, f);
        return false;
    }
    return true;
}

static bool ddpm_unet_resolve(ModelSpec *s, UlError *err)
{
    /* The CIFAR-10 model of sfr-on.md §5.3. */
    s->in_channels = default_int(s->in_channels, 3);
    s->height = default_int(s->height, 32);
    s->width = default_int(s->width, 32);
    s->num_classes = default_int(s->num_classes, 10);
    s->width_ch = default_int(s->width_ch, 128);
    if (s->n_levels == 0) {
        s->n_levels = 4;
        for (int i = 0; i < 4; i++) s->ch_mult[i] = i ? 2 : 1;
    }
    s->num_res_blocks = default_int(s->num_res_blocks, 2);
    s->attn_res = default_int(s->attn_res, 16);
    s->groups = default_int(s->groups, 32);
    if (s->dropout == 0) s->dropout = 0.1f;
    return unet_resolve_common(s, err);
}

static bool unet_stage_resolve(ModelSpec *s, UlError *err)
{
    s->width_ch = default_int(s->width_ch, 16);
    if (s->n_levels == 0) {
        s->n_levels = 2;
        s->ch_mult[0] = 2;
        s->ch_mult[1] = 3;
    }
    s->num_res_blocks = default_int(s->num_res_blocks, 1);
    s->attn_res = default_int(s->attn_res, s->height);
    s->groups = default_int(s->groups, 8);
    return unet_resolve_common(s, err);
}

static void unet_add_resblock(Model *m, const char *pre, int cin, int cout)
{
    int emb = 8 * m->spec.width_ch;  /* [temb; cemb], 4*ch each */
    char sub[PARAM_NAME_MAX];
    add_norm(m, nm(sub, "%s.norm1", pre), cin);
    add_conv(m, nm(sub, "%s.conv1", pre), cin, cout, 3, true);
    add_linear(m, nm(sub, "%s.temb_cemb_proj", pre), emb, cout, true);
    add_norm(m, nm(sub, "%s.norm2", pre), cout);
    add_conv(m, nm(sub, "%s.conv2", pre), cout, cout, 3, true);
    if (cin != cout) add_conv(m, nm(sub, "%s.nin_shortcut", pre), cin, cout, 1, true);
}

static void unet_add_attn(Model *m, const char *pre, int c)
{
    char sub[PARAM_NAME_MAX];
    add_norm(m, nm(sub, "%s.norm", pre), c);
    add_conv(m, nm(sub, "%s.q", pre), c, c, 1, true);
    add_conv(m, nm(sub, "%s.k", pre), c, c, 1, true);
    add_conv(m, nm(sub, "%s.v", pre), c, c, 1, true);
    add_conv(m, nm(sub, "%s.proj_out", pre), c, c, 1, true);
}

static void unet_build(Model *m)
{
    const ModelSpec *s = &m->spec;
    int ch = s->width_ch, nl = s->n_levels, nrb = s->num_res_blocks;
    int in_mult[1 + MODEL_MAX_LEVELS] = {1};
    for (int i = 0; i < nl; i++) in_mult[i + 1] = s->ch_mult[i];
    add_entry(m, true, rule(INIT_NORMAL, 1.0), (int[]){1, ch}, "null_classes_emb");
    add_linear(m, "temb.dense.0", ch, 4 * ch, true);
    add_linear(m, "temb.dense.1", 4 * ch, 4 * ch, true);
    add_entry(m, true, rule(INIT_NORMAL, 1.0), (int[]){2, s->num_classes, ch}, "classes_emb.weight");
    add_linear(m, "cemb.dense.0", ch, 4 * ch, true);
    add_linear(m, "cemb.dense.1", 4 * ch, 4 * ch, true);
    add_conv(m, "conv_in", s->in_channels, ch, 3, true);
    char pre[PARAM_NAME_MAX];
    int res = s->height, block_in = ch;
    for (int l = 0; l < nl; l++) {
        int block_out = ch * s->ch_mult[l];
        block_in = ch * in_mult[l];
        for (int b = 0; b < nrb; b++) {
            unet_add_resblock(m, nm(pre, "down.%d.block.%d", l, b), block_in, block_out);
            block_in = block_out;
            if (res == s->attn_res) unet_add_attn(m, nm(pre, "down.%d.attn.%d", l, b), block_in);
        }
        if (l != nl - 1) {
            add_conv(m, nm(pre, "down.%d.downsample.conv", l), block_in, block_in, 3, true);
            res /= 2;
        }
    }
    unet_add_resblock(m, "mid.block_1", block_in, block_in);
    unet_add_attn(m, "mid.attn_1", block_in);
    unet_add_resblock(m, "mid.block_2", block_in, block_in);
    for (int l = nl - 1; l >= 0; l--) {
        int block_out = ch * s->ch_mult[l], skip_in = ch * s->ch_mult[l];
        for (int b = 0; b <= nrb; b++) {
            if (b == nrb) skip_in = ch * in_mult[l];
            unet_add_resblock(m, nm(pre, "up.%d.block.%d", l, b), block_in + skip_in, block_out);
            block_in = block_out;
            if (res == s->attn_res) unet_add_attn(m, nm(pre, "up.%d.attn.%d", l, b), block_in);
        }
        if (l != 0) {
            add_conv(m, nm(pre, "up.%d.upsample.conv", l), block_in, block_in, 3, true);
            res *= 2;
        }
    }
    add_norm(m, "norm_out", block_in);
    add_conv(m, "conv_out", block_in, s->out_channels, 3, true);
}

typedef struct UnetCtx {
    Tensor *emb;          /* SiLU([temb; cemb]) [B, 8*ch], shared by every ResnetBlock */
    const ModelCond *cond;
    int site;             /* dropout site counter */
} UnetCtx;

static Tensor *unet_resblock(Model *m, Tape *t, UnetCtx *u, Tensor *x, const char *pre)
{
    const ModelSpec *s = &m->spec;
    const float eps = 1e-6f;
    int G = s->groups;
    char sub[PARAM_NAME_MAX];
    Tensor *h = op_silu(t, groupnorm(m, t, x, nm(sub, "%s.norm1", pre), G, eps));  /* [B, Cin, H, W] */
    h = conv(m, t, h, nm(sub, "%s.conv1", pre), true, 1, 1);                       /* [B, Cout, H, W] */
    int B = h->shape[0], Cout = h->shape[1];
    Tensor *e = linear(m, t, u->emb, nm(sub, "%s.temb_cemb_proj", pre), true);     /* [B, Cout] */
    h = op_add_bcast(t, h, reshape4(t, e, B, Cout, 1, 1));
    h = op_silu(t, groupnorm(m, t, h, nm(sub, "%s.norm2", pre), G, eps));
    if (s->dropout > 0) {
        uint64_t seed = rng_u64(u->cond->seed, 0x64726f706f7574ULL /* "dropout" */, (uint64_t)u->site);
        h = op_dropout(t, h, s->dropout, seed, u->cond->sample_keys);
    }
    u->site++;
    h = conv(m, t, h, nm(sub, "%s.conv2", pre), true, 1, 1);
    if (x->shape[1] != Cout) x = conv(m, t, x, nm(sub, "%s.nin_shortcut", pre), true, 1, 0);
    return op_add(t, x, h);
}

static Tensor *unet_attn(Model *m, Tape *t, Tensor *x, const char *pre)
{
    int B = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3], N = H * W;
    char sub[PARAM_NAME_MAX];
    Tensor *h = groupnorm(m, t, x, nm(sub, "%s.norm", pre), m->spec.groups, 1e-6f);
    Tensor *qkv[3];
    static const char *const names[3] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++) {
        Tensor *c = conv(m, t, h, nm(sub, "%s.%s", pre, names[i]), true, 1, 0);  /* [B, C, H, W] */
        qkv[i] = op_transpose(t, reshape3(t, c, B, C, N), 1, 2);               /* [B, N, C] */
    }
    Tensor *a = op_attention(t, qkv[0], qkv[1], qkv[2], 1);               /* softmax(q k^T / sqrt(C)) v */
    a = reshape4(t, op_transpose(t, a, 1, 2), B, C, H, W);                /* [B, C, H, W] */
    return op_add(t, x, conv(m, t, a, nm(sub, "%s.proj_out", pre), true, 1, 0));
}

static Tensor *unet_forward(Model *m, Tape *t, Tensor *x, const ModelCond *cond)
{
    const ModelSpec *s = &m->spec;
    check_image_input(m, x);
    UL_CHECK(cond && cond->timesteps, "model %s: the forward pass needs ModelCond.timesteps", s->arch);
    int B = x->shape[0], ch = s->width_ch, nl = s->n_levels, nrb = s->num_res_blocks;

    /* temb = dense1(SiLU(dense0(sinusoid(t)))); cemb likewise from the class (or null) embedding */
    Tensor *te = op_timestep_emb(t, cond->timesteps, B, ch, 10000.0f, 1, false);   /* [B, ch] */
    te = linear(m, t, op_silu(t, linear(m, t, te, "temb.dense.0", true)), "temb.dense.1", true);  /* [B, 4ch] */
    Tensor *nul = reshape2(t, P(m, t, "null_classes_emb"), 1, ch);
    Tensor *table = op_concat(t, P(m, t, "classes_emb.weight"), nul, 0);           /* [classes + 1, ch] */
    int *idx = map_labels(m, t, cond, B, s->num_classes);
    Tensor *ce = op_embedding(t, table, idx, B);                                    /* [B, ch] */
    ce = linear(m, t, op_silu(t, linear(m, t, ce, "cemb.dense.0", true)), "cemb.dense.1", true);  /* [B, 4ch] */
    UnetCtx u = {op_silu(t, op_concat(t, te, ce, 1)), cond, 0};                   /* [B, 8ch] */

    Tensor **hs = arena_alloc(t->arena, ul_mul_size((size_t)(1 + nl * (nrb + 1)), sizeof *hs));  /* skips */
    int nhs = 0, res = s->height;
    hs[nhs++] = conv(m, t, x, "conv_in", true, 1, 1);                              /* [B, ch, H, W] */
    char pre[PARAM_NAME_MAX];
    for (int l = 0; l < nl; l++) {
        for (int b = 0; b < nrb; b++) {
            Tensor *h = unet_resblock(m, t, &u, hs[nhs - 1], nm(pre, "down.%d.block.%d", l, b));
            if (res == s->attn_res) h = unet_attn(m, t, h, nm(pre, "down.%d.attn.%d", l, b));
            hs[nhs++] = h;
        }
        if (l != nl - 1) {
            Tensor *padded = op_pad2d(t, hs[nhs - 1], 0, 1, 0, 1);                /* [B, C, H+1, W+1] */
            hs[nhs] = conv(m, t, padded, nm(pre, "down.%d.downsample.conv", l), true, 2, 0);  /* [B, C, H/2, W/2] */
            nhs++;
            res /= 2;
        }
    }
    Tensor *h = unet_resblock(m, t, &u, hs[nhs - 1], "mid.block_1");
    h = unet_attn(m, t, h, "mid.attn_1");
    h = unet_resblock(m, t, &u, h, "mid.block_2");
    for (int l = nl - 1; l >= 0; l--) {
        for (int b = 0; b <= nrb; b++) {
            Tensor *cat = op_concat(t, h, hs[--nhs], 1);                           /* [h; skip] on channels */
            h = unet_resblock(m, t, &u, cat, nm(pre, "up.%d.block.%d", l, b));
            if (res == s->attn_res) h = unet_attn(m, t, h, nm(pre, "up.%d.attn.%d", l, b));
        }
        if (l != 0) {
            h = conv(m, t, op_upsample2x(t, h), nm(pre, "up.%d.upsample.conv", l), true, 1, 1);
            res *= 2;
        }
    }
    UL_CHECK(nhs == 0, "model %s: %d skip tensors left over", s->arch, nhs);
    h = op_silu(t, groupnorm(m, t, h, "norm_out", s->groups, 1e-6f));
    return conv(m, t, h, "conv_out", true, 1, 1);                                  /* [B, out, H, W] */
}

/* ------------------------------------------------------------------------------------------------------------ */
/* The arch table and the public API                                                                            */

static const ArchInfo arch_table[] = {
    {"mlp", mlp_resolve, mlp_build, mlp_forward},
    {"fmnist-cnn", cnn_resolve, cnn_build, cnn_forward},
    {"resnet18-cifar", resnet_resolve, resnet_build, resnet_forward},
    {"dit", dit_resolve, dit_build, dit_forward},
    {"dit-block", dit_block_resolve, dit_build, dit_forward},
    {"ddpm-unet", ddpm_unet_resolve, unet_build, unet_forward},
    {"unet-stage", unet_stage_resolve, unet_build, unet_forward},
};
#define ARCH_COUNT ((int)(sizeof arch_table / sizeof arch_table[0]))

const char *model_arch_list(void)
{
    return "mlp, fmnist-cnn, resnet18-cifar, dit, dit-block, ddpm-unet, unet-stage";
}

static const ArchInfo *arch_find(const char *name)
{
    for (int i = 0; i < ARCH_COUNT; i++)
        if (strcmp(arch_table[i].name, name) == 0) return &arch_table[i];
    return NULL;
}

Model *model_create(const ModelSpec *spec, UlError *err)
{
    ModelSpec s = *spec;
    s.arch[MODEL_ARCH_MAX - 1] = '\0';
    const ArchInfo *a = arch_find(s.arch);
    if (!a) {
        ul_error_set(err, "unknown model arch '%s' (valid: %s)", s.arch, model_arch_list());
        return NULL;
    }
    if (!a->resolve(&s, err)) return NULL;
    Model *m = UL_CALLOC(1, sizeof *m);
    m->spec = s;
    m->priv = UL_CALLOC(1, sizeof *m->priv);
    m->priv->arch = a;
    params_init(&m->params);
    params_init(&m->buffers);
    a->build(m);
    m->param = params_alloc(&m->params);
    m->grad = params_alloc(&m->params);
    m->buf = params_alloc(&m->buffers);
    return m;
}

/* FNV-1a of a name: the RNG stream of a table entry, so that its init does not depend on the table order. */
static uint64_t name_stream(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    return h;
}

static void init_entry(const Model *m, const ParamView *v, InitRule r, float *dst, uint64_t seed)
{
    uint64_t stream = name_stream(v->name);
    switch (r.kind) {
    case INIT_ZERO:
        memset(dst, 0, v->n * sizeof(float));
        break;
    case INIT_ONE:
        for (size_t k = 0; k < v->n; k++) dst[k] = 1.0f;
        break;
    case INIT_UNIFORM:
        for (size_t k = 0; k < v->n; k++)
            dst[k] = (float)(r.a * (2.0 * (double)rng_uniform(seed, stream, k) - 1.0));
        break;
    case INIT_NORMAL:
        for (size_t k = 0; k < v->n; k++) dst[k] = (float)(r.a * (double)rng_normal(seed, stream, k));
        break;
    case INIT_POS_EMBED:
        dit_pos_embed(dst, m->spec.height / m->spec.patch, m->spec.width / m->spec.patch, m->spec.width_ch);
        break;
    }
}

void model_init(Model *m, uint64_t seed)
{
    for (int i = 0; i < m->params.count; i++) {
        const ParamView *v = &m->params.views[i];
        init_entry(m, v, m->priv->pinit[i], m->param + v->offset, seed);
    }
    for (int i = 0; i < m->buffers.count; i++) {
        const ParamView *v = &m->buffers.views[i];
        init_entry(m, v, m->priv->binit[i], m->buf + v->offset, seed);
    }
    memset(m->grad, 0, m->params.total * sizeof(float));
}

Tensor *model_forward(Model *m, Tape *t, Tensor *x, const ModelCond *cond)
{
    m->priv->pcursor = m->priv->bcursor = 0;
    return m->priv->arch->forward(m, t, x, cond);
}

Tensor model_param(const Model *m, const char *name)
{
    int i = params_find(&m->params, name);
    UL_CHECK(i >= 0, "model %s has no parameter named %s", m->spec.arch, name);
    return params_view(&m->params, i, m->param, m->grad);
}

Tensor model_buffer(const Model *m, const char *name)
{
    int i = params_find(&m->buffers, name);
    UL_CHECK(i >= 0, "model %s has no buffer named %s", m->spec.arch, name);
    return params_view(&m->buffers, i, m->buf, NULL);
}

static bool load_table(const ParamTable *pt, float *flat, const char *path, const char *group, UlError *err)
{
    for (int i = 0; i < pt->count; i++) {
        const ParamView *v = &pt->views[i];
        char dset[PARAM_NAME_MAX + 256];
        if (group && group[0])
            snprintf(dset, sizeof dset, "%s/%s", group, v->name);
        else
            snprintf(dset, sizeof dset, "%s", v->name);
        int nd = 0;
        int64_t shape[TENSOR_MAX_DIMS + 4];
        float *data = h5_read_floats(path, dset, TENSOR_MAX_DIMS + 4, &nd, shape, err);
        if (!data) return false;
        bool same = nd == v->ndim;
        for (int d = 0; same && d < nd; d++) same = shape[d] == v->shape[d];
        if (!same) {
            char got[128] = "[", want[128] = "[";
            for (int d = 0; d < nd; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), d ? ", %lld" : "%lld", (long long)shape[d]);
            for (int d = 0; d < v->ndim; d++)
                snprintf(want + strlen(want), sizeof want - strlen(want), d ? ", %d" : "%d", v->shape[d]);
            ul_error_set(err, "%s: dataset '%s' has shape %s], the model expects %s]", path, dset, got, want);
            free(data);
            return false;
        }
        memcpy(flat + v->offset, data, v->n * sizeof(float));
        free(data);
    }
    return true;
}

bool model_load_h5(Model *m, const char *path, const char *group, UlError *err)
{
    return load_table(&m->params, m->param, path, group, err) && load_table(&m->buffers, m->buf, path, group, err);
}

void model_free(Model *m)
{
    if (!m) return;
    free(m->param);
    free(m->grad);
    free(m->buf);
    params_free(&m->params);
    params_free(&m->buffers);
    free(m->priv->pinit);
    free(m->priv->binit);
    free(m->priv);
    free(m);
}
