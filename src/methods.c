/* methods.c - the unlearning loop's steps; see include/methods.h for the semantics of every method. */
#include "methods.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fisher.h"
#include "rng.h"

/* The reference's guard in the adaptive weight 1 / (l^lambda + eps) (Classification/unlearn/sfron.py). */
#define UNL_ADAPTIVE_EPS 1e-15

/* ---- knobs ------------------------------------------------------------------------------------------------- */

const char *unl_method_name(Method m) { return config_enum_name("unlearn.method", (int)m); }

UnlPlan unl_plan(const Config *cfg)
{
    UnlPlan p;
    memset(&p, 0, sizeof p);
    p.method = cfg->unlearn.method;
    p.forget_every = 1;
    p.forget_until = INT64_MAX;
    p.mask = MASK_NONE;
    switch (p.method) {
    case METHOD_SFRON:
        p.forget_loss = UNL_LOSS_CE;
        p.forget_every = cfg->unlearn.forget_freq;
        p.forget_train_bn = true;
        p.forget_adaptive = true;
        p.forget_scaled = true;
        p.mask = cfg->unlearn.mask;
        p.forget_masked = p.mask != MASK_NONE;
        p.retain_loss = UNL_LOSS_CE;
        break;
    case METHOD_FT: p.retain_loss = UNL_LOSS_CE; break;
    case METHOD_GA:
        p.forget_loss = UNL_LOSS_CE;
        p.forget_train_bn = false;
        p.forget_scaled = true;
        p.mask = cfg->unlearn.mask;
        p.forget_masked = p.mask != MASK_NONE;
        break;
    case METHOD_RL:
        p.retain_loss = UNL_LOSS_CE;
        p.retain_joint = true;
        break;
    case METHOD_SALUN:
        p.retain_loss = UNL_LOSS_CE;
        p.retain_joint = true;
        p.mask = MASK_TOPK;
        p.retain_masked = true;
        break;
    case METHOD_L1:
        p.retain_loss = UNL_LOSS_CE;
        p.l1 = true;
        break;
    case METHOD_SCRUB:
        p.forget_loss = UNL_LOSS_SCRUB_MAX;
        p.forget_every = cfg->unlearn.forget_freq;
        p.forget_train_bn = true;
        p.retain_loss = UNL_LOSS_SCRUB_MIN;
        p.needs_teacher = true;
        break;
    case METHOD_BT:
        p.retain_loss = UNL_LOSS_BAD_TEACHER;
        p.retain_joint = true;
        p.needs_teacher = true;
        p.needs_bad_teacher = true;
        break;
    default: UL_CHECK(0, "unknown unlearning method %d", (int)p.method);
    }
    return p;
}

static OptimConfig optim_config_of(const Config *cfg)
{
    OptimConfig oc = optim_config_default(cfg->unlearn.optimizer);
    oc.lr = cfg->unlearn.lr;
    oc.weight_decay = cfg->unlearn.weight_decay;
    if (oc.kind == OPTIM_SGD) {
        oc.momentum = cfg->unlearn.momentum;
    } else {
        oc.beta1 = cfg->unlearn.beta1;
        oc.beta2 = cfg->unlearn.beta2;
    }
    return oc;
}

bool unl_check_config(const Config *cfg, UlError *err)
{
    OptimConfig oc = optim_config_of(cfg);
    if (!optim_config_check(&oc, "unlearn.optimizer", err)) return false;
    if (cfg->unlearn.forget_freq < 1) {
        ul_error_set(err, "unlearn.forget_freq must be >= 1, got %d", cfg->unlearn.forget_freq);
        return false;
    }
    if (cfg->unlearn.iters < 1) {
        ul_error_set(err, "unlearn.iters must be >= 1, got %d", cfg->unlearn.iters);
        return false;
    }
    return true;
}

/* ---- setup ---------------------------------------------------------------------------------------------------- */

static Model *copy_model(const Model *src)
{
    UlError err = {0};
    Model *m = model_create(&src->spec, &err);
    UL_CHECK(m != NULL, "copying the model: %s", err.msg);
    memcpy(m->param, src->param, src->params.total * sizeof(float));
    memcpy(m->buf, src->buf, src->buffers.total * sizeof(float));
    return m;
}

void unl_init(Unlearner *u, const UnlSetup *s)
{
    const Config *cfg = s->cfg;
    memset(u, 0, sizeof *u);
    UL_CHECK(s->model && s->tape && s->batch_cap >= 1, "unl_init: model, tape and batch_cap >= 1 are required");
    UlError err = {0};
    UL_CHECK(unl_check_config(cfg, &err), "unl_init: %s (validate with unl_check_config first)", err.msg);
    u->plan = unl_plan(cfg);
    u->m = s->model;
    u->tape = s->tape;
    u->hooks = s->hooks;
    u->T = cfg->unlearn.iters;
    u->lr = cfg->unlearn.lr;
    u->schedule = cfg->unlearn.schedule;
    u->alpha = cfg->unlearn.alpha;
    u->alpha_schedule = cfg->unlearn.alpha_schedule;
    u->lambda = cfg->unlearn.lambda;
    u->loss_floor = cfg->unlearn.loss_floor;
    u->gamma = cfg->unlearn.gamma;
    u->mask_topk = cfg->unlearn.mask_topk;
    u->clip = cfg->unlearn.clip;
    u->clip_remain = cfg->unlearn.clip_remain;
    u->beta = cfg->unlearn.beta;
    u->remain_alpha = cfg->unlearn.remain_alpha;
    u->l1 = cfg->unlearn.l1;
    u->scrub_t = cfg->unlearn.scrub_kd_t;
    u->scrub_gamma = cfg->unlearn.scrub_gamma;
    u->scrub_alpha = cfg->unlearn.scrub_alpha;
    u->bt_t = cfg->unlearn.bt_temperature;
    if (u->plan.method == METHOD_SCRUB) {
        UL_CHECK(s->retain_epoch_iters >= 1, "unl_init: scrub needs retain_epoch_iters >= 1");
        int64_t ms = cfg->unlearn.scrub_msteps;
        u->plan.forget_until = ms > INT64_MAX / s->retain_epoch_iters ? INT64_MAX : ms * s->retain_epoch_iters;
    }

    const size_t P = u->m->params.total;
    if (!u->hooks.passive) {
        OptimConfig oc = optim_config_of(cfg);
        optim_init(&u->opt, &oc, P);
        u->slow = params_alloc(&u->m->params);
        memcpy(u->slow, u->m->param, P * sizeof(float));
        if (u->plan.mask != MASK_NONE) u->mask = params_alloc(&u->m->params);
    }
    u->mask_info.kind = u->plan.mask;
    u->mask_info.total = fisher_numel(&u->m->params);
    u->mask_info.finite = true;
    if (u->plan.needs_teacher) u->teacher = copy_model(u->m);
    if (u->plan.needs_bad_teacher) {
        u->bad_teacher = copy_model(u->m);
        model_init(u->bad_teacher, (uint64_t)cfg->seed ^ UNL_SEED_BAD_TEACHER);
    }
    u->cap = s->batch_cap;
    u->seed = UL_MALLOC(ul_mul_size((size_t)u->cap, sizeof(float)));
    u->seed2 = UL_MALLOC(ul_mul_size((size_t)u->cap, sizeof(float)));
    u->cw = UL_MALLOC(ul_mul_size((size_t)u->cap, sizeof(double)));
    if (u->plan.needs_teacher) {
        size_t nc = ul_mul_size((size_t)u->cap, (size_t)u->m->spec.num_classes);
        u->tlogp = UL_MALLOC(ul_mul_size(nc, sizeof(float)));
        u->tlogp2 = UL_MALLOC(ul_mul_size(nc, sizeof(float)));
    }
    u->last.forget_loss = u->last.retain_loss = NAN;
    u->last.forget_gnorm = u->last.retain_gnorm = NAN;
    u->last.alpha = u->last.lr = u->last.l1 = NAN;
}

void unl_free(Unlearner *u)
{
    if (!u->hooks.passive) optim_free(&u->opt);
    free(u->slow);
    free(u->mask);
    free(u->acc_f);
    free(u->acc_r);
    if (u->teacher) model_free(u->teacher);
    if (u->bad_teacher) model_free(u->bad_teacher);
    free(u->seed);
    free(u->seed2);
    free(u->cw);
    free(u->tlogp);
    free(u->tlogp2);
    memset(u, 0, sizeof *u);
}

/* ---- helpers -------------------------------------------------------------------------------------------------- */

static void timer_start(Unlearner *u, DistPhase p)
{
    if (u->hooks.timers) dist_timer_start(u->hooks.timers, p);
}

static void timer_stop(Unlearner *u, DistPhase p)
{
    if (u->hooks.timers) dist_timer_stop(u->hooks.timers, p);
}

/* COLLECTIVE when the tape has a cross-rank sum: v[0..n) := the sum over ranks. */
static void sum_global(Unlearner *u, double *v, size_t n)
{
    if (u->tape->allreduce_sum) u->tape->allreduce_sum(v, n);
}

/* Resets the tape and runs model m on x [n, C, H, W]; returns the logits [n, classes] (from the tape's arena). */
static Tensor *forward(Unlearner *u, Model *m, float *x, int64_t n, bool training, bool record)
{
    UL_CHECK(n >= 1 && n <= u->cap, "unlearning step: local batch of %lld samples outside [1, %lld]", (long long)n,
             (long long)u->cap);
    Tape *t = u->tape;
    tape_reset(t);
    t->training = training;
    t->record = record;
    const ModelSpec *s = &m->spec;
    Tensor *xt = tensor_wrap(t->arena, x, NULL, 4, (int[]){(int)n, s->in_channels, s->height, s->width});
    return model_forward(m, t, xt, NULL);
}

/* out [n, C] := log_softmax(teacher(x) / T), the teacher in eval mode (no tape nodes). Row-wise in double. */
static void teacher_logp(Unlearner *u, Model *teacher, const UnlBatch *b, double T, float *out)
{
    Tensor *z = forward(u, teacher, b->x, b->n, false, false);
    const int C = z->shape[1];
    for (int64_t i = 0; i < b->n; i++) {
        const float *zi = z->data + (size_t)i * (size_t)C;
        double mx = -INFINITY;
        for (int c = 0; c < C; c++) mx = fmax(mx, (double)zi[c] / T);
        double s = 0;
        for (int c = 0; c < C; c++) s += exp((double)zi[c] / T - mx);
        double lse = mx + log(s);
        for (int c = 0; c < C; c++) out[(size_t)i * (size_t)C + (size_t)c] = (float)((double)zi[c] / T - lse);
    }
}

/* Per-sample KL(p || q) [n] with p = the wrapped teacher log-probabilities tlogp [n, C] (no gradient) and
   q = log_softmax(z / T) of the student logits z [n, C] (on the tape). */
static Tensor *kl_to_teacher(Unlearner *u, Tensor *z, float *tlogp, double T)
{
    Tape *t = u->tape;
    Tensor *q = op_log_softmax(t, T == 1.0 ? z : op_scale(t, z, (float)(1.0 / T)));
    Tensor *p = tensor_wrap(t->arena, tlogp, NULL, 2, z->shape);
    return op_kl_div(t, p, q);
}

/* theta = (1 - beta) * theta_prev + beta * theta; theta_prev = theta. Applying ranks only. */
static void merge(Unlearner *u)
{
    const float a = (float)(1.0 - u->beta), b = (float)u->beta;
    float *p = u->m->param, *s = u->slow;
    const size_t n = u->m->params.total;
    for (size_t i = 0; i < n; i++) {
        p[i] = a * s[i] + b * p[i];
        s[i] = p[i];
    }
}

/* COLLECTIVE (hooks). Reduce the local gradients, then on applying ranks: l1 subgradient (retain steps of l1),
   mask, clip, optimizer step at lr_t and (last step of the iteration) the merge; then the broadcast.
   Returns the gradient norm before clipping (NAN on passive ranks). */
static double apply_update(Unlearner *u, bool forget, bool last)
{
    Model *m = u->m;
    const size_t P = m->params.total;
    if (u->hooks.reduce_grad) u->hooks.reduce_grad(u->hooks.ctx, m);
    double gnorm = NAN;
    if (!u->hooks.passive) {
        DistPhase ph = u->hooks.rank0_phase ? DIST_PHASE_RANK0 : DIST_PHASE_COMPUTE;
        timer_start(u, ph);
        float *g = m->grad;
        if (!forget && u->plan.l1) {
            const float c = (float)u->last.l1;
            const float *th = m->param;
            for (size_t i = 0; i < P; i++) g[i] += c * (float)((th[i] > 0.0f) - (th[i] < 0.0f));
        }
        if (forget ? u->plan.forget_masked : u->plan.retain_masked) grad_apply_mask(g, u->mask, P);
        const double clip = forget ? u->clip : u->clip_remain;
        gnorm = clip > 0 ? grad_clip_global(g, P, clip) : grad_global_norm(g, P);
        optim_step(&u->opt, m->param, g, u->last.lr);
        if (last) merge(u);
        timer_stop(u, ph);
    }
    if (u->hooks.bcast_model) u->hooks.bcast_model(u->hooks.ctx, m);
    return gnorm;
}

/* ---- the mask ------------------------------------------------------------------------------------------------- */

bool unl_mask_needs(const Unlearner *u, UnlPass pass)
{
    if (u->plan.mask == MASK_FISHER) return true;
    if (u->plan.mask == MASK_TOPK) return pass == UNL_PASS_FORGET;
    return false;
}

void unl_mask_batch(Unlearner *u, UnlPass pass, const UnlBatch *b)
{
    UL_CHECK(unl_mask_needs(u, pass), "unl_mask_batch: the %s mask takes no %s batches",
             config_enum_name("unlearn.mask", (int)u->plan.mask), pass == UNL_PASS_FORGET ? "forget" : "retain");
    Model *m = u->m;
    const size_t P = m->params.total;
    timer_start(u, DIST_PHASE_COMPUTE);
    memset(m->grad, 0, P * sizeof(float));
    if (b->n > 0) {
        Tensor *z = forward(u, m, b->x, b->n, false, true);
        Tensor *l = op_cross_entropy(u->tape, z, b->y);
        const float w = (float)(1.0 / (double)b->global_n);
        for (int64_t i = 0; i < b->n; i++) u->seed[i] = w;
        tape_backward(u->tape, l, u->seed);
    }
    timer_stop(u, DIST_PHASE_COMPUTE);
    if (u->hooks.reduce_grad) u->hooks.reduce_grad(u->hooks.ctx, m);
    if (pass == UNL_PASS_FORGET) {
        u->mask_info.forget_batches++;
        u->mask_info.forget_samples += b->global_n;
    } else {
        u->mask_info.retain_batches++;
        u->mask_info.retain_samples += b->global_n;
    }
    if (u->hooks.passive) return;
    DistPhase ph = u->hooks.rank0_phase ? DIST_PHASE_RANK0 : DIST_PHASE_COMPUTE;
    timer_start(u, ph);
    float **acc = pass == UNL_PASS_FORGET ? &u->acc_f : &u->acc_r;
    if (!*acc) *acc = params_alloc(&m->params);
    if (u->plan.mask == MASK_FISHER) fisher_accumulate_sq(*acc, m->grad, P);
    else fisher_accumulate(*acc, m->grad, P);
    timer_stop(u, ph);
}

void unl_mask_finish(Unlearner *u)
{
    UnlMaskInfo *mi = &u->mask_info;
    if (u->plan.mask == MASK_NONE || u->hooks.passive) return;
    const size_t P = u->m->params.total;
    DistPhase ph = u->hooks.rank0_phase ? DIST_PHASE_RANK0 : DIST_PHASE_COMPUTE;
    timer_start(u, ph);
    UL_CHECK(mi->forget_batches > 0 && (u->plan.mask != MASK_FISHER || mi->retain_batches > 0),
             "unl_mask_finish: the mask needs at least one forget%s batch", u->plan.mask == MASK_FISHER ? " and one retain" : "");
    if (u->plan.mask == MASK_FISHER) {
        fisher_divide(u->acc_f, P, (float)mi->forget_batches);
        fisher_divide(u->acc_r, P, (float)mi->retain_batches);
        mi->finite = fisher_all_finite(u->acc_f, P) && fisher_all_finite(u->acc_r, P);
        mi->kept = mi->finite ? fisher_ratio_mask(u->mask, u->acc_f, u->acc_r, &u->m->params, u->gamma) : 0;
    } else {
        mi->finite = fisher_all_finite(u->acc_f, P);
        mi->kept = mi->finite ? saliency_topk_mask(u->mask, u->acc_f, &u->m->params, u->mask_topk) : 0;
    }
    if (!mi->finite) memset(u->mask, 0, P * sizeof(float));
    free(u->acc_f);
    free(u->acc_r);
    u->acc_f = u->acc_r = NULL;
    timer_stop(u, ph);
}

double unl_adaptive_weight(double loss, double lambda, double floor)
{
    double l = floor > 0 ? fmax(loss, floor) : loss; /* the floor acts inside the weight only */
    return 1.0 / (pow(l, lambda) + UNL_ADAPTIVE_EPS);
}

/* ---- the loop --------------------------------------------------------------------------------------------------- */

bool unl_has_forget_step(const Unlearner *u, int64_t t)
{
    return u->plan.forget_loss != UNL_LOSS_NONE && t < u->plan.forget_until && t % u->plan.forget_every == 0;
}

bool unl_has_retain_step(const Unlearner *u) { return u->plan.retain_loss != UNL_LOSS_NONE; }

int64_t unl_forget_steps_before(const Unlearner *u, int64_t t)
{
    if (u->plan.forget_loss == UNL_LOSS_NONE || t <= 0) return 0;
    int64_t tt = t < u->plan.forget_until ? t : u->plan.forget_until;
    return (tt + u->plan.forget_every - 1) / u->plan.forget_every;
}

int64_t unl_optim_steps_before(const Unlearner *u, int64_t t)
{
    return unl_forget_steps_before(u, t) + (unl_has_retain_step(u) && t > 0 ? t : 0);
}

/* COLLECTIVE. The forget step of the current iteration (u->last holds its alpha_t and lr_t) on batch b (see methods.h). */
static void forget_step(Unlearner *u, const UnlBatch *b, bool last)
{
    const UnlPlan *p = &u->plan;
    Model *m = u->m;
    const double G = (double)b->global_n;
    const double alpha = p->forget_scaled ? u->last.alpha : 1.0;
    UL_CHECK(b->n > 0 || !p->forget_train_bn, "forget step: a rank holds no sample of a train-mode batch");
    timer_start(u, DIST_PHASE_COMPUTE);
    memset(m->grad, 0, m->params.total * sizeof(float));
    double sums[2] = {0, 0}; /* weights (or count), per-sample losses */
    if (p->forget_loss == UNL_LOSS_CE) {
        Tensor *l = NULL;
        if (b->n > 0) l = op_cross_entropy(u->tape, forward(u, m, b->x, b->n, p->forget_train_bn, true), b->y);
        for (int64_t i = 0; i < b->n; i++) {
            double li = l->data[i], c = 1.0;
            if (p->forget_adaptive) c = unl_adaptive_weight(li, u->lambda, u->loss_floor);
            u->cw[i] = c;
            sums[0] += c;
            sums[1] += li;
        }
        sum_global(u, sums, 2); /* the weights are normalised over the GLOBAL forget batch */
        for (int64_t i = 0; i < b->n; i++)
            u->seed[i] = (float)(p->forget_adaptive ? -alpha * u->cw[i] / sums[0] : -alpha / G);
        if (b->n > 0) tape_backward(u->tape, l, u->seed);
    } else {
        UL_CHECK(p->forget_loss == UNL_LOSS_SCRUB_MAX, "forget step: unexpected loss %d", (int)p->forget_loss);
        const double T = u->scrub_t, T2 = T * T;
        teacher_logp(u, u->teacher, b, T, u->tlogp);
        Tensor *kl = kl_to_teacher(u, forward(u, m, b->x, b->n, p->forget_train_bn, true), u->tlogp, T);
        for (int64_t i = 0; i < b->n; i++) {
            sums[1] += T2 * kl->data[i];
            u->seed[i] = (float)(-T2 / G);
        }
        sum_global(u, sums + 1, 1);
        tape_backward(u->tape, kl, u->seed);
    }
    timer_stop(u, DIST_PHASE_COMPUTE);
    u->last.forget_loss = sums[1] / G;
    u->last.did_forget = true;
    u->last.forget_gnorm = apply_update(u, true, last);
}

/* COLLECTIVE. The retain (or joint) step of the current iteration on batch b; always the last step of the iteration. */
static void retain_step(Unlearner *u, const UnlBatch *b)
{
    const UnlPlan *p = &u->plan;
    Model *m = u->m;
    Tape *tp = u->tape;
    const double G = (double)b->global_n;
    UL_CHECK(b->n > 0, "retain step: a rank holds no sample of a train-mode batch");
    timer_start(u, DIST_PHASE_COMPUTE);
    memset(m->grad, 0, m->params.total * sizeof(float));
    double sum = 0;
    switch (p->retain_loss) {
    case UNL_LOSS_CE: {
        Tensor *l = op_cross_entropy(tp, forward(u, m, b->x, b->n, true, true), b->y);
        const float w = (float)(u->remain_alpha / G);
        for (int64_t i = 0; i < b->n; i++) {
            sum += l->data[i];
            u->seed[i] = w;
        }
        tape_backward(tp, l, u->seed);
        break;
    }
    case UNL_LOSS_SCRUB_MIN: {
        const double T = u->scrub_t, T2 = T * T;
        teacher_logp(u, u->teacher, b, T, u->tlogp);
        Tensor *z = forward(u, m, b->x, b->n, true, true);
        Tensor *ce = op_cross_entropy(tp, z, b->y);
        Tensor *kl = kl_to_teacher(u, z, u->tlogp, T);
        for (int64_t i = 0; i < b->n; i++) {
            sum += u->scrub_gamma * ce->data[i] + u->scrub_alpha * T2 * kl->data[i];
            u->seed[i] = (float)(u->scrub_gamma / G);
            u->seed2[i] = (float)(u->scrub_alpha * T2 / G);
        }
        Tensor *loss = op_add(tp, op_weighted_sum(tp, ce, u->seed), op_weighted_sum(tp, kl, u->seed2));
        tape_backward(tp, loss, NULL);
        break;
    }
    case UNL_LOSS_BAD_TEACHER: {
        UL_CHECK(b->is_forget != NULL, "bad-teacher step: the joint batch carries no is_forget flags");
        const double T = u->bt_t;
        const size_t C = (size_t)m->spec.num_classes;
        teacher_logp(u, u->teacher, b, T, u->tlogp);
        teacher_logp(u, u->bad_teacher, b, T, u->tlogp2);
        for (int64_t i = 0; i < b->n; i++)
            if (b->is_forget[i]) memcpy(u->tlogp + (size_t)i * C, u->tlogp2 + (size_t)i * C, C * sizeof(float));
        Tensor *kl = kl_to_teacher(u, forward(u, m, b->x, b->n, true, true), u->tlogp, T);
        const float w = (float)(1.0 / (G * (double)C)); /* kl_div's 'mean': over all B x C elements */
        for (int64_t i = 0; i < b->n; i++) {
            sum += kl->data[i] / (double)C;
            u->seed[i] = w;
        }
        tape_backward(tp, kl, u->seed);
        break;
    }
    default: UL_CHECK(0, "retain step: unexpected loss %d", (int)p->retain_loss);
    }
    sum_global(u, &sum, 1);
    timer_stop(u, DIST_PHASE_COMPUTE);
    u->last.retain_loss = sum / G;
    u->last.did_retain = true;
    u->last.retain_gnorm = apply_update(u, false, true);
}

void unl_iteration(Unlearner *u, int64_t t, const UnlBatch *fb, const UnlBatch *rb)
{
    UL_CHECK(t >= 0 && t < u->T, "unl_iteration: iteration %lld outside [0, %lld)", (long long)t, (long long)u->T);
    const bool has_f = unl_has_forget_step(u, t), has_r = unl_has_retain_step(u);
    UnlStats *s = &u->last;
    s->did_forget = s->did_retain = false;
    s->forget_loss = s->retain_loss = s->forget_gnorm = s->retain_gnorm = NAN;
    s->lr = sched_value(u->schedule, u->lr, t, u->T);
    s->alpha = has_f && u->plan.forget_scaled ? sched_value(u->alpha_schedule, u->alpha, t, u->T) : NAN;
    s->l1 = u->plan.l1 ? sched_value(SCHED_LINEAR, u->l1, t, u->T) : NAN;
    if (has_f) {
        UL_CHECK(fb != NULL, "unl_iteration: iteration %lld needs a forget batch", (long long)t);
        forget_step(u, fb, !has_r);
    }
    if (has_r) {
        UL_CHECK(rb != NULL, "unl_iteration: iteration %lld needs a retain batch", (long long)t);
        retain_step(u, rb);
    }
}

void unl_restore(Unlearner *u, int64_t t)
{
    if (u->hooks.passive) return;
    u->opt.step = unl_optim_steps_before(u, t);
    if (u->mask) u->mask_info.kept = fisher_mask_count(u->mask, u->m->params.total);
}

int unl_random_label(uint64_t seed, int64_t index, int y, int classes)
{
    UL_CHECK(classes >= 2 && y >= 0 && y < classes, "unl_random_label: label %d of %d classes", y, classes);
    uint64_t r = rng_below(seed, UNL_STREAM_RELABEL, (uint64_t)index, (uint64_t)(classes - 1));
    return (int)(((uint64_t)y + 1 + r) % (uint64_t)classes);
}

/* ---- the knobs a run used (for the report) -------------------------------------------------------------------- */

/* out := knob `key`: the config's resolved value (the key must exist in config.h). */
static UnlKnob knob_of(const Config *cfg, const char *key)
{
    UnlKnob k = {.key = key, .kind = UNL_KNOB_NUM};
    const ConfigKey *ck = config_find_key(key);
    UL_CHECK(ck != NULL, "unl_knobs: no config key '%s'", key);
    const char *f = (const char *)cfg + ck->offset;
    switch (ck->kind) {
    case CFG_INT: {
        int v;
        memcpy(&v, f, sizeof v);
        k.kind = UNL_KNOB_INT;
        k.i = v;
        break;
    }
    case CFG_INT64: {
        int64_t v;
        memcpy(&v, f, sizeof v);
        k.kind = UNL_KNOB_INT;
        k.i = v;
        break;
    }
    case CFG_DOUBLE: memcpy(&k.num, f, sizeof k.num); break;
    case CFG_BOOL: {
        bool v;
        memcpy(&v, f, sizeof v);
        k.kind = UNL_KNOB_INT;
        k.i = v;
        break;
    }
    case CFG_ENUM: {
        int v;
        UL_CHECK(ck->size == sizeof v, "unl_knobs: enum key '%s' is not int-sized", key);
        memcpy(&v, f, sizeof v);
        k.kind = UNL_KNOB_TEXT;
        k.text = config_enum_name(key, v);
        break;
    }
    default: UL_CHECK(0, "unl_knobs: key '%s' has a kind the report does not take", key);
    }
    return k;
}

static void push_knob(UnlKnob *out, int *n, UnlKnob k)
{
    UL_CHECK(*n < UNL_MAX_KNOBS, "unl_knobs: more than %d knobs", UNL_MAX_KNOBS);
    out[(*n)++] = k;
}

int unl_knobs(const Unlearner *u, const Config *cfg, UnlKnob *out)
{
    const UnlPlan *p = &u->plan;
    int n = 0;
#define KNOB(key) push_knob(out, &n, knob_of(cfg, key))
    KNOB("seed");
    KNOB("unlearn.method");
    KNOB("unlearn.iters");
    KNOB("unlearn.optimizer");
    KNOB("unlearn.lr");
    KNOB("unlearn.schedule");
    KNOB("unlearn.weight_decay");
    if (cfg->unlearn.optimizer == OPTIM_SGD) {
        KNOB("unlearn.momentum");
    } else {
        KNOB("unlearn.beta1");
        KNOB("unlearn.beta2");
    }
    KNOB("unlearn.beta");
    if (p->forget_loss != UNL_LOSS_NONE) {
        KNOB("unlearn.forget_batch_size");
        KNOB("unlearn.clip");
        if (p->method != METHOD_GA) KNOB("unlearn.forget_freq");
        if (p->forget_scaled) {
            KNOB("unlearn.alpha");
            KNOB("unlearn.alpha_schedule");
        }
        if (p->forget_adaptive) {
            KNOB("unlearn.lambda");
            KNOB("unlearn.loss_floor");
        }
    }
    if (p->method == METHOD_SFRON || p->method == METHOD_GA) KNOB("unlearn.mask");
    if (p->mask == MASK_FISHER) KNOB("unlearn.gamma");
    if (p->mask == MASK_TOPK) KNOB("unlearn.mask_topk");
    if (p->mask != MASK_NONE) KNOB("unlearn.fisher_batches");
    if (p->retain_loss != UNL_LOSS_NONE) {
        KNOB("unlearn.batch_size");
        KNOB("unlearn.clip_remain");
    }
    if (p->retain_loss == UNL_LOSS_CE) KNOB("unlearn.remain_alpha");
    if (p->l1) KNOB("unlearn.l1");
    if (p->method == METHOD_SCRUB) {
        KNOB("unlearn.scrub_kd_t");
        KNOB("unlearn.scrub_msteps");
        KNOB("unlearn.scrub_gamma");
        KNOB("unlearn.scrub_alpha");
    }
    if (p->method == METHOD_BT) KNOB("unlearn.bt_temperature");
#undef KNOB
    return n;
}
