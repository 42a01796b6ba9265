/* Optimizers (SGD with momentum/Nesterov, AdamW) and learning-rate schedules (constant, step,
 * cosine, each with optional linear warmup). Semantics follow torch.optim so recipes transfer. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/train.h"

void kd_optim_config_default(kd_optim_config *c) {
    *c = (kd_optim_config){.type = KD_OPT_SGD, .lr = 0.05f, .momentum = 0.9f, .nesterov = 1, /* SGD */
                           .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,                /* AdamW */
                           .weight_decay = 5e-4f, .sched = KD_SCHED_COSINE, .step_epochs = 5, .step_gamma = 0.1f};
}

/* One range per numeric setting, used by the command line (its options' bounds) and by every
 * configuration read from a checkpoint (kd_optim_config_check), so the two cannot disagree. */
static const struct {
    kd_optim_range r;
    size_t off;
} ranges[] = {
    {{"lr", "--lr", 1e-9, 100}, offsetof(kd_optim_config, lr)},
    {{"momentum", "--momentum", 0, 0.999}, offsetof(kd_optim_config, momentum)},
    {{"weight_decay", "--weight-decay", 0, 1}, offsetof(kd_optim_config, weight_decay)},
    {{"warmup_epochs", "--warmup", 0, 1000}, offsetof(kd_optim_config, warmup_epochs)},
    {{"step_epochs", "--step-epochs", 1, 100000}, offsetof(kd_optim_config, step_epochs)},
    {{"step_gamma", "--step-gamma", 0, 1}, offsetof(kd_optim_config, step_gamma)},
    {{"beta1", NULL, 0, 0.9999999}, offsetof(kd_optim_config, beta1)},
    {{"beta2", NULL, 0, 0.9999999}, offsetof(kd_optim_config, beta2)},
    {{"eps", NULL, 1e-30, 1}, offsetof(kd_optim_config, eps)},
    {{"min_lr", NULL, 0, 100}, offsetof(kd_optim_config, min_lr)},
};
#define N_RANGES (sizeof ranges / sizeof *ranges)

static double field_value(const kd_optim_config *c, size_t k) {
    const char *p = (const char *)c + ranges[k].off;
    if (ranges[k].off == offsetof(kd_optim_config, step_epochs)) return *(const int *)(const void *)p;
    return *(const float *)(const void *)p;
}

const kd_optim_range *kd_optim_range_find(const char *field) {
    for (size_t k = 0; k < N_RANGES; k++)
        if (!strcmp(ranges[k].r.field, field)) return &ranges[k].r;
    return NULL;
}

kd_status kd_optim_config_check(const kd_optim_config *c, kd_error *err) {
    if (c->type != KD_OPT_SGD && c->type != KD_OPT_ADAMW) return kd_error_set(err, KD_STATUS_BAD_ARG, "unknown optimizer");
    if (c->sched != KD_SCHED_CONST && c->sched != KD_SCHED_STEP && c->sched != KD_SCHED_COSINE)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "unknown schedule");
    for (size_t k = 0; k < N_RANGES; k++) {
        const kd_optim_range *r = &ranges[k].r;
        double v = field_value(c, k);
        if (!(v >= r->lo && v <= r->hi))
            return kd_error_set(err, KD_STATUS_BAD_ARG, "%s is %g, outside [%g, %g]%s%s%s", r->field, v, r->lo, r->hi,
                                r->option ? " (as " : "", r->option ? r->option : "", r->option ? ")" : "");
    }
    return KD_STATUS_OK;
}

/* The shortest decimal that reads back as the same float (as checkpoints store them). */
static const char *float_str(char *buf, size_t n, double v) {
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if ((float)strtod(buf, NULL) == (float)v) break;
    }
    return buf;
}

kd_status kd_optim_config_compare(const kd_optim_config *run, const kd_optim_config *stored, kd_error *err) {
    if (run->type != stored->type)
        return kd_error_set(err, KD_STATUS_MISMATCH, "--optimizer %s (the checkpoint's: %s)", kd_opt_type_name(run->type),
                            kd_opt_type_name(stored->type));
    if (run->sched != stored->sched)
        return kd_error_set(err, KD_STATUS_MISMATCH, "--schedule %s (the checkpoint's: %s)", kd_sched_name(run->sched),
                            kd_sched_name(stored->sched));
    if (!run->nesterov != !stored->nesterov)
        return kd_error_set(err, KD_STATUS_MISMATCH, "%s (the checkpoint's: %s)",
                            run->nesterov ? "Nesterov momentum" : "--no-nesterov",
                            stored->nesterov ? "Nesterov momentum" : "--no-nesterov");
    for (size_t k = 0; k < N_RANGES; k++) {
        double a = field_value(run, k), b = field_value(stored, k);
        char sa[32], sb[32];
        if (a != b)
            return kd_error_set(err, KD_STATUS_MISMATCH, "%s %s (the checkpoint's: %s)",
                                ranges[k].r.option ? ranges[k].r.option : ranges[k].r.field,
                                float_str(sa, sizeof sa, a), float_str(sb, sizeof sb, b));
    }
    return KD_STATUS_OK;
}

kd_status kd_optimizer_init(kd_optimizer *o, const kd_optim_config *c, const kd_model *m, kd_error *err) {
    return kd_optimizer_init_n(o, c, m->n_params, err);
}

kd_status kd_optimizer_init_n(kd_optimizer *o, const kd_optim_config *c, size_t n_params, kd_error *err) {
    memset(o, 0, sizeof *o);
    if (!(c->lr > 0.f) || !isfinite(c->lr))
        return kd_error_set(err, KD_STATUS_BAD_ARG, "learning rate must be > 0 (got %g)", c->lr);
    if (c->momentum < 0.f || c->momentum >= 1.f || c->weight_decay < 0.f)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "momentum must be in [0, 1) and weight decay >= 0");
    o->cfg = *c;
    o->n = n_params;
    o->m = calloc(o->n ? o->n : 1, sizeof(float));
    if (c->type == KD_OPT_ADAMW) o->v = calloc(o->n ? o->n : 1, sizeof(float));
    if (!o->m || (c->type == KD_OPT_ADAMW && !o->v)) {
        kd_optimizer_free(o);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "cannot allocate optimizer state");
    }
    return KD_STATUS_OK;
}

void kd_optimizer_free(kd_optimizer *o) {
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

void kd_optimizer_begin_step(kd_optimizer *o) { o->t++; }

void kd_optimizer_update(kd_optimizer *o, float *params, const float *grads, size_t off, size_t n, int decay, float lr) {
    const kd_optim_config *c = &o->cfg;
    float wd = decay ? c->weight_decay : 0.f;
    float *p = params + off, *mo = o->m + off;
    const float *g = grads + off;
    if (c->type == KD_OPT_SGD) {
        float mu = c->momentum;
        for (size_t i = 0; i < n; i++) {
            float gi = g[i] + wd * p[i];
            if (mu > 0.f) {
                mo[i] = mu * mo[i] + gi;
                gi = c->nesterov ? gi + mu * mo[i] : mo[i];
            }
            p[i] -= lr * gi;
        }
    } else {
        float *v = o->v + off;
        float b1 = c->beta1, b2 = c->beta2;
        float bc1 = 1.f - powf(b1, (float)o->t), bc2 = 1.f - powf(b2, (float)o->t);
        float step = lr / bc1, shrink = 1.f - lr * wd, sq = sqrtf(bc2);
        for (size_t i = 0; i < n; i++) {
            p[i] *= shrink;
            mo[i] = b1 * mo[i] + (1.f - b1) * g[i];
            v[i] = b2 * v[i] + (1.f - b2) * g[i] * g[i];
            p[i] -= step * mo[i] / (sqrtf(v[i]) / sq + c->eps);
        }
    }
}

void kd_optimizer_step(kd_optimizer *o, kd_model *m, float lr) {
    kd_optimizer_begin_step(o);
    for (int i = 0; i < m->n_layers; i++) {
        const kd_layer *L = &m->layers[i];
        /* Decay conv/linear weights only: decaying BN scales and biases hurts (Goyal et al. 2017). */
        int decay = L->type == KD_LAYER_CONV2D || L->type == KD_LAYER_LINEAR;
        if (L->w_size) kd_optimizer_update(o, m->params, m->grads, L->w_off, L->w_size, decay, lr);
        if (L->b_size) kd_optimizer_update(o, m->params, m->grads, L->b_off, L->b_size, 0, lr);
    }
}

float kd_schedule_lr(const kd_optim_config *c, double epoch, int total_epochs) {
    double lr = c->lr;
    if (c->sched == KD_SCHED_COSINE && total_epochs > 0) {
        double t = epoch / total_epochs;
        if (t > 1.0) t = 1.0;
        lr = c->min_lr + (c->lr - c->min_lr) * 0.5 * (1.0 + cos(3.14159265358979323846 * t));
    } else if (c->sched == KD_SCHED_STEP && c->step_epochs > 0) {
        lr = c->lr * pow(c->step_gamma, floor(epoch / c->step_epochs));
    }
    if (c->warmup_epochs > 0.f && epoch < c->warmup_epochs) lr *= epoch / c->warmup_epochs;
    return (float)lr;
}
