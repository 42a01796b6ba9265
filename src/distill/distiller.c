/* The distiller: evaluates a run's list of loss terms for one batch.
 *
 * Response terms (ce, hinton, dkd) act on the logits. Feature terms (fitnet, at, cosine) and
 * relation terms (rkd, sp) compare the output of a named student layer with that of a named
 * teacher layer; their gradient enters the student's backward pass at that layer
 * (kd_model_backward_ex). FitNets (and cosine between features of different sizes) first map the
 * student feature through a learned regressor: a 1x1 convolution for spatial maps, a linear layer
 * otherwise, built as a small kd_model so it reuses the engine's layers, optimizer and checkpoints;
 * the regressor runs with dinput set, so its backward hands back d(loss)/d(student feature). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/checkpoint.h"
#include "distill/distill.h"
#include "distill/kd_losses.h"
#include "distill/ops.h"
#include "distill/train.h"

struct kd_distiller {
    int n_terms;
    kd_loss_term terms[KD_MAX_LOSS_TERMS];
    kd_model *student;
    kd_teacher *teacher;
    float teacher_T;                     /* the response terms' temperature: an ensemble is averaged at it */
    int C, batch;
    int need_ce;                         /* some term uses the labels' cross-entropy */
    /* per term */
    int s_layer[KD_MAX_LOSS_TERMS];      /* student layer, -1 for response terms */
    int t_feat[KD_MAX_LOSS_TERMS];       /* teacher feature slot */
    kd_model *reg[KD_MAX_LOSS_TERMS];    /* regressor or NULL */
    kd_optimizer reg_opt[KD_MAX_LOSS_TERMS];
    float *dfeat[KD_MAX_LOSS_TERMS];     /* d(loss)/d(student layer output), batch x size */
    float term_loss[KD_MAX_LOSS_TERMS];
    /* batch buffers */
    float *t_logits, *probs, *pt, *ps, *zs, *zt, *inv_s, *inv_t, *dz;
    float *tfeat[KD_MAX_FEATS];
    float *scratch;
    int n_extra, extra_layer[KD_MAX_LOSS_TERMS];
    const float *extra_grad[KD_MAX_LOSS_TERMS];
};

static int is_response(kd_loss_kind k) { return k == KD_LOSS_CE || k == KD_LOSS_HINTON || k == KD_LOSS_DKD; }

/* The layer a feature term names, or by default the input of the model's last layer (the
 * penultimate representation). */
static kd_status resolve_layer(const kd_model *m, const char *name, const char *who, int term, const char *kind,
                               int *out, kd_error *err) {
    if (!name[0]) {
        int j = m->layers[m->n_layers - 1].inputs[0];
        if (j < 0) return kd_error_set(err, KD_STATUS_BAD_ARG, "loss %d (%s): %s %s has no hidden layer", term + 1, kind, who, m->name);
        *out = j;
        return KD_STATUS_OK;
    }
    *out = kd_model_find_layer(m, name);
    if (*out < 0) return kd_error_set(err, KD_STATUS_BAD_ARG, "loss %d (%s): %s %s has no layer '%s'", term + 1, kind, who, m->name, name);
    return KD_STATUS_OK;
}

/* A regressor from the student layer's output shape to the teacher layer's. */
static kd_status make_regressor(kd_model **out, const kd_layer *sl, const kd_layer *tl, uint64_t seed, int term,
                                kd_error *err) {
    char yaml[512];
    int spatial = sl->h * sl->w > 1 || tl->h * tl->w > 1;
    if (spatial && (sl->h != tl->h || sl->w != tl->w))
        return kd_error_set(err, KD_STATUS_MISMATCH,
                            "loss %d: student layer %s is %dx%d but teacher layer %s is %dx%d; a 1x1 regressor "
                            "needs the same spatial size (pick layers after the same pooling)",
                            term + 1, sl->name, sl->h, sl->w, tl->name, tl->h, tl->w);
    if (spatial)
        snprintf(yaml, sizeof yaml,
                 "name: regressor-%d\ninput: [%d, %d, %d]\nlayers:\n  - {name: conv, type: conv2d, out: %d, kernel: 1}\n"
                 "  - {name: flat, type: flatten}\n", /* NCHW maps are compared as flat vectors */
                 term + 1, sl->c, sl->h, sl->w, tl->c);
    else
        snprintf(yaml, sizeof yaml, "name: regressor-%d\ninput: [%zu, 1, 1]\nlayers:\n  - {name: fc, type: linear, out: %zu}\n",
                 term + 1, kd_layer_out_size(sl), kd_layer_out_size(tl));
    return kd_model_from_yaml(out, yaml, "regressor", seed, err);
}

kd_status kd_distiller_create(kd_distiller **out, const kd_loss_term *terms, int n_terms, kd_model *student,
                              kd_teacher *teacher, uint64_t seed, kd_error *err) {
    *out = NULL;
    if (n_terms < 1 || n_terms > KD_MAX_LOSS_TERMS)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "a loss needs 1 to %d terms, got %d", KD_MAX_LOSS_TERMS, n_terms);
    kd_distiller *d = calloc(1, sizeof *d);
    if (!d) return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    d->n_terms = n_terms;
    memcpy(d->terms, terms, sizeof(kd_loss_term) * (size_t)n_terms);
    d->student = student;
    d->teacher = teacher;
    d->teacher_T = 1.f;
    d->C = student->n_classes;
    int first_resp = -1; /* the first hinton/dkd term: its T is the teacher's */
    kd_status st = KD_STATUS_OK;
    if (teacher && teacher->n_classes != d->C) {
        st = kd_error_set(err, KD_STATUS_MISMATCH, "the teacher has %d classes, student %s has %d", teacher->n_classes,
                          student->name, d->C);
        goto fail;
    }
    for (int k = 0; k < n_terms; k++) {
        kd_loss_term *t = &d->terms[k];
        const char *kn = kd_loss_kind_name(t->kind);
        d->s_layer[k] = -1;
        d->need_ce |= t->kind == KD_LOSS_CE || (t->kind == KD_LOSS_HINTON && t->alpha < 1.f);
        if (t->kind == KD_LOSS_CE) continue;
        if (!teacher) {
            st = kd_error_set(err, KD_STATUS_BAD_ARG, "loss %d (%s) needs a teacher", k + 1, kn);
            goto fail;
        }
        if (t->kind == KD_LOSS_HINTON && !(t->alpha >= 0.f && t->alpha <= 1.f)) {
            st = kd_error_set(err, KD_STATUS_BAD_ARG, "loss %d (hinton): alpha must be in [0, 1]", k + 1);
            goto fail;
        }
        if (is_response(t->kind)) {
            if (!(t->T > 0.f)) {
                st = kd_error_set(err, KD_STATUS_BAD_ARG, "loss %d (%s): T must be > 0", k + 1, kn);
                goto fail;
            }
            if (first_resp < 0) {
                first_resp = k;
                d->teacher_T = t->T;
            } else if (t->T != d->teacher_T && teacher->n_models > 1) {
                st = kd_error_set(err, KD_STATUS_BAD_ARG,
                                  "loss %d (%s): T=%g, but loss %d averages the ensemble's soft targets at T=%g; an "
                                  "ensemble's terms share one temperature", k + 1, kn, (double)t->T, first_resp + 1,
                                  (double)d->teacher_T);
                goto fail;
            }
            continue;
        }
        if (teacher->n_models < 1) {
            st = kd_error_set(err, KD_STATUS_BAD_ARG,
                              "loss %d (%s) compares features, which needs a teacher checkpoint (a logits file has "
                              "only logits)", k + 1, kn);
            goto fail;
        }
        kd_model *tm = teacher->models[0];
        int sj = -1, tj = -1;
        if ((st = resolve_layer(student, t->student, "student", k, kn, &sj, err)) ||
            (st = resolve_layer(tm, t->teacher, "teacher", k, kn, &tj, err)))
            goto fail;
        d->s_layer[k] = sj;
        const kd_layer *sl = &student->layers[sj], *tl = &tm->layers[tj];
        int slot = -1;
        for (int f = 0; f < teacher->n_feats; f++)
            if (teacher->feat_layer[f] == tj) slot = f;
        if (slot < 0) {
            if (teacher->n_feats == KD_MAX_FEATS) {
                st = kd_error_set(err, KD_STATUS_BAD_ARG, "at most %d distinct teacher layers", KD_MAX_FEATS);
                goto fail;
            }
            slot = teacher->n_feats++;
            teacher->feat_layer[slot] = tj;
            teacher->feat_size[slot] = kd_layer_out_size(tl);
            teacher->feat_table[slot] = NULL;
        }
        d->t_feat[k] = slot;
        size_t ns = kd_layer_out_size(sl), nt = kd_layer_out_size(tl);
        if (t->kind == KD_LOSS_COSINE && t->project < 0) t->project = ns != nt;
        if (t->kind == KD_LOSS_FITNET || (t->kind == KD_LOSS_COSINE && t->project)) {
            if ((st = make_regressor(&d->reg[k], sl, tl, seed + 0x1000u + (uint64_t)k, k, err))) goto fail;
        } else if (t->kind == KD_LOSS_COSINE && ns != nt) {
            st = kd_error_set(err, KD_STATUS_MISMATCH,
                              "loss %d (cosine): student %s has %zu features, teacher %s %zu; use project=1", k + 1,
                              sl->name, ns, tl->name, nt);
            goto fail;
        } else if (t->kind == KD_LOSS_AT && (sl->h * sl->w != tl->h * tl->w || sl->h * sl->w < 2)) {
            st = kd_error_set(err, KD_STATUS_MISMATCH,
                              "loss %d (at): attention maps need spatial layers of the same size; student %s is "
                              "%dx%d, teacher %s %dx%d", k + 1, sl->name, sl->h, sl->w, tl->name, tl->h, tl->w);
            goto fail;
        }
    }
    *out = d;
    return KD_STATUS_OK;
fail:
    kd_distiller_free(d);
    return st;
}

static void free_buffers(kd_distiller *d) {
    free(d->t_logits); free(d->probs); free(d->pt); free(d->ps); free(d->zs); free(d->zt);
    free(d->inv_s); free(d->inv_t); free(d->dz); free(d->scratch);
    d->t_logits = d->probs = d->pt = d->ps = d->zs = d->zt = d->inv_s = d->inv_t = d->dz = d->scratch = NULL;
    for (int f = 0; f < KD_MAX_FEATS; f++) free(d->tfeat[f]), d->tfeat[f] = NULL;
    for (int k = 0; k < d->n_terms; k++) {
        free(d->dfeat[k]);
        d->dfeat[k] = NULL;
        if (d->reg[k]) kd_model_set_input_grad(d->reg[k], NULL); /* it pointed at dfeat[k] */
    }
}

void kd_distiller_free(kd_distiller *d) {
    if (!d) return;
    free_buffers(d);
    for (int k = 0; k < d->n_terms; k++) {
        kd_optimizer_free(&d->reg_opt[k]);
        kd_model_free(d->reg[k]);
    }
    free(d);
}

kd_status kd_distiller_prepare(kd_distiller *d, int batch, int threads, const kd_optim_config *optim, kd_error *err) {
    free_buffers(d);
    d->batch = batch;
    size_t bc = (size_t)batch * d->C;
    int ok = (d->t_logits = malloc(sizeof(float) * bc)) && (d->probs = malloc(sizeof(float) * bc)) &&
             (d->pt = malloc(sizeof(float) * bc)) && (d->ps = malloc(sizeof(float) * bc)) &&
             (d->zs = malloc(sizeof(float) * bc)) && (d->zt = malloc(sizeof(float) * bc)) &&
             (d->dz = malloc(sizeof(float) * bc)) && (d->inv_s = malloc(sizeof(float) * (size_t)batch)) &&
             (d->inv_t = malloc(sizeof(float) * (size_t)batch));
    size_t scratch = 0;
    kd_teacher *t = d->teacher;
    for (int f = 0; ok && t && f < t->n_feats; f++) ok = (d->tfeat[f] = malloc(sizeof(float) * (size_t)batch * t->feat_size[f])) != NULL;
    for (int k = 0; ok && k < d->n_terms; k++) {
        if (d->s_layer[k] < 0) continue;
        const kd_layer *sl = &d->student->layers[d->s_layer[k]];
        size_t ns = kd_layer_out_size(sl), nt = t->feat_size[d->t_feat[k]];
        ok = (d->dfeat[k] = malloc(sizeof(float) * (size_t)batch * ns)) != NULL;
        size_t need = 0;
        switch (d->terms[k].kind) {
        case KD_LOSS_AT: need = kd_at_scratch(batch, sl->h * sl->w); break;
        case KD_LOSS_SP: need = kd_sp_scratch(batch); break;
        case KD_LOSS_RKD: need = kd_rkd_scratch(batch, (int)ns, (int)nt); break;
        default: break;
        }
        if (d->reg[k]) {
            need = (size_t)batch * nt; /* the gradient of the loss at the regressor's output */
            kd_status st = kd_model_set_batch(d->reg[k], batch, threads, err);
            if (st) return st;
            kd_model_set_input_grad(d->reg[k], d->dfeat[k]); /* the regressor's input gradient is the feature's */
            kd_optimizer_free(&d->reg_opt[k]);
            if (ok && (st = kd_optimizer_init(&d->reg_opt[k], optim, d->reg[k], err))) return st;
        }
        if (need > scratch) scratch = need;
    }
    if (ok && scratch) ok = (d->scratch = malloc(sizeof(float) * scratch)) != NULL;
    if (!ok) return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory for the distillation buffers (batch %d)", batch);
    int online = t && !t->logits;
    for (int f = 0; t && f < t->n_feats; f++) online |= !t->feat_table[f];
    if (online)
        for (int k = 0; k < t->n_models; k++) {
            kd_status st = kd_model_set_batch(t->models[k], batch, threads, err);
            if (st) return st;
        }
    return KD_STATUS_OK;
}

/* Logits as a response term sees them: z-scored per row if asked (Sun et al. 2024). */
static const float *standardized(const float *logits, float *z, float *inv, int B, int C, int on) {
    if (!on) return logits;
    kd_zscore_forward(z, inv, logits, B, C);
    return z;
}

kd_status kd_distiller_loss(kd_distiller *d, const float *logits, const kd_batch *in, const int32_t *idx,
                            const int32_t *y, int B, float label_smoothing, float *dlogits, float *loss,
                            kd_error *err) {
    int C = d->C;
    size_t bc = (size_t)B * C;
    memset(dlogits, 0, sizeof(float) * bc);
    if (B > d->batch) return kd_error_set(err, KD_STATUS_BAD_ARG, "distiller prepared for batch %d, got %d", d->batch, B);
    kd_teacher *t = d->teacher;
    if (t) {
        kd_status st = kd_teacher_forward(t, d->teacher_T, d->t_logits, d->tfeat, in, idx, B, err);
        if (st) return st;
    }
    /* only when a term uses it: no softmax of the logits per step for pure feature/KL losses. A
     * mixed batch (mixup, CutMix) has two labels per sample: the CE parts take both, the response
     * terms the teacher's view of the mixed input itself. */
    const int32_t *y2 = in && in->lam ? in->y2 : NULL;
    const float *lam = y2 ? in->lam : NULL;
    float ce = d->need_ce ? kd_cross_entropy_mix_forward(d->probs, logits, y, y2, lam, B, C, label_smoothing) : 0.f;
    double total = 0.0;
    d->n_extra = 0;
    for (int k = 0; k < d->n_terms; k++) {
        const kd_loss_term *tm = &d->terms[k];
        float w = tm->weight, l = 0.f;
        switch (tm->kind) {
        case KD_LOSS_CE:
            l = ce;
            kd_cross_entropy_mix_backward(dlogits, d->probs, y, y2, lam, B, C, label_smoothing, w);
            break;
        case KD_LOSS_HINTON:
        case KD_LOSS_DKD: {
            int zs_on = tm->standardize;
            const float *s = standardized(logits, d->zs, d->inv_s, B, C, zs_on);
            const float *tl = standardized(d->t_logits, d->zt, d->inv_t, B, C, zs_on);
            kd_soft_targets(d->pt, tl, B, C, tm->T);
            float a = tm->kind == KD_LOSS_HINTON ? tm->alpha : 1.f; /* share of the distillation part */
            /* with standardization the gradient goes to z first, then through the z-score */
            float *g = zs_on ? d->dz : dlogits;
            if (zs_on) memset(d->dz, 0, sizeof(float) * bc);
            float kd;
            if (tm->kind == KD_LOSS_DKD) {
                kd = kd_dkd_forward_backward(a > 0.f ? g : NULL, s, d->pt, y, B, C, tm->T, tm->dkd_alpha,
                                             tm->dkd_beta, w);
            } else {
                kd = kd_kl_div_forward(d->ps, s, d->pt, B, C, tm->T);
                /* alpha = 0 adds nothing at all, so it is bit-identical to plain CE training */
                if (a > 0.f) kd_kl_div_backward(g, d->ps, d->pt, B, C, tm->T, w * a);
            }
            if (zs_on && a > 0.f) kd_zscore_backward(dlogits, d->dz, d->zs, d->inv_s, B, C);
            l = a * kd;
            if (tm->kind == KD_LOSS_HINTON && a < 1.f) {
                l += (1.f - a) * ce;
                kd_cross_entropy_mix_backward(dlogits, d->probs, y, y2, lam, B, C, label_smoothing, w * (1.f - a));
            }
            break;
        }
        default: {
            const kd_layer *sl = &d->student->layers[d->s_layer[k]];
            const float *fs = kd_model_layer_output(d->student, d->s_layer[k]), *ft = d->tfeat[d->t_feat[k]];
            size_t ns = kd_layer_out_size(sl), nt = t->feat_size[d->t_feat[k]];
            float *df = d->dfeat[k];
            memset(df, 0, sizeof(float) * (size_t)B * ns);
            if (d->reg[k]) {
                /* loss on regressor(fs); its backward gives d/d(fs) through dinput */
                kd_model *r = d->reg[k];
                const float *rs = kd_model_forward(r, fs, B, 1, NULL);
                float *dr = d->scratch;
                memset(dr, 0, sizeof(float) * (size_t)B * nt);
                if (tm->kind == KD_LOSS_FITNET) l = kd_mse_loss(dr, rs, ft, (size_t)B * nt, w);
                else l = kd_cosine_loss(dr, rs, ft, B, (int)nt, w);
                kd_model_zero_grad(r);
                kd_model_backward(r, dr); /* writes df through r->dinput */
            } else if (tm->kind == KD_LOSS_COSINE) {
                l = kd_cosine_loss(df, fs, ft, B, (int)ns, w);
            } else if (tm->kind == KD_LOSS_AT) {
                const kd_layer *tl = &t->models[0]->layers[t->feat_layer[d->t_feat[k]]];
                l = kd_at_loss(df, fs, ft, B, sl->c, tl->c, sl->h * sl->w, w, d->scratch);
            } else if (tm->kind == KD_LOSS_SP) {
                l = kd_sp_loss(df, fs, ft, B, (int)ns, (int)nt, w, d->scratch);
            } else {
                l = kd_rkd_loss(df, fs, ft, B, (int)ns, (int)nt, tm->rkd_dist, tm->rkd_angle, w, d->scratch);
            }
            d->extra_layer[d->n_extra] = d->s_layer[k];
            d->extra_grad[d->n_extra++] = df;
            break;
        }
        }
        d->term_loss[k] = w * l;
        total += (double)w * l;
    }
    *loss = (float)total;
    return KD_STATUS_OK;
}

void kd_distiller_backward(kd_distiller *d, const float *dlogits) {
    kd_model_backward_ex(d->student, dlogits, d->n_extra, d->extra_layer, d->extra_grad);
}

void kd_distiller_step(kd_distiller *d, float lr) {
    for (int k = 0; k < d->n_terms; k++)
        if (d->reg[k]) kd_optimizer_step(&d->reg_opt[k], d->reg[k], lr);
}

float kd_distiller_term_loss(const kd_distiller *d, int k) { return d->term_loss[k]; }
float kd_distiller_teacher_T(const kd_distiller *d) { return d->teacher_T; }
int kd_distiller_fixed_teacher(const kd_distiller *d) {
    const kd_teacher *t = d->teacher;
    int fixed = t && t->logits;
    for (int k = 0; t && k < t->n_feats; k++) fixed |= t->feat_table[k] != NULL;
    return fixed;
}
int kd_distiller_n_terms(const kd_distiller *d) { return d->n_terms; }
const kd_loss_term *kd_distiller_term(const kd_distiller *d, int k) { return &d->terms[k]; }
kd_model *kd_distiller_regressor(const kd_distiller *d, int k) { return d->reg[k]; }

void kd_distiller_reg_path(char *buf, size_t n, const char *ckpt_path, int k) {
    snprintf(buf, n, "%s.kd%d", ckpt_path, k + 1);
}

kd_status kd_distiller_save(const kd_distiller *d, const char *ckpt_path, long long step, kd_error *err) {
    for (int k = 0; k < d->n_terms; k++) {
        if (!d->reg[k]) continue;
        char p[4096];
        kd_distiller_reg_path(p, sizeof p, ckpt_path, k);
        kd_train_state ts = {0};
        ts.step = step;
        kd_rng_seed(&ts.rng, 0, 0); /* unused: the regressor draws nothing */
        kd_status st = kd_checkpoint_save(p, d->reg[k], &d->reg_opt[k], &ts, err);
        if (st) return st;
    }
    return KD_STATUS_OK;
}

kd_status kd_distiller_load(kd_distiller *d, const char *ckpt_path, long long step, kd_error *err) {
    for (int k = 0; k < d->n_terms; k++) {
        if (!d->reg[k]) continue;
        char p[4096];
        kd_distiller_reg_path(p, sizeof p, ckpt_path, k);
        kd_train_state ts = {0};
        int has = 0;
        kd_status st = kd_checkpoint_load_into(p, d->reg[k], &d->reg_opt[k], &ts, &has, err);
        if (st) return st;
        if (!has || ts.step != step)
            return kd_error_set(err, KD_STATUS_MISMATCH,
                                "%s holds the regressor of loss %d at step %lld, but the checkpoint is at step %lld",
                                p, k + 1, ts.step, step);
    }
    return KD_STATUS_OK;
}
