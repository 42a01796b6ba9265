/* Teachers for distillation: logits (and the intermediate features feature losses need) from
 * online models, or from tables per training sample, which are either cached from the online
 * teacher once (augmentation off) or, for logits, read from a .npy file written by another
 * framework. An ensemble averages its members' probabilities at temperature T (Hinton et al.;
 * the consuming loss term's, passed in) and is represented by the logits T * log(mean p), so
 * everything downstream sees logits. Each model is fed its own normalisation of the batch's pixels
 * (kd_model.norm_mean / norm_std; data.h), so a teacher imported with ImageNet-style statistics
 * and a student trained with the data's see the same augmented view. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "distill/dist.h"
#include "distill/distill.h"
#include "distill/ops.h"

static kd_status check_row(const kd_teacher *t, int32_t row, kd_error *err) {
    if (row < 0 || row >= t->n_samples)
        return kd_error_set(err, KD_STATUS_MISMATCH, "teacher tables have %d rows, sample %d asked for", t->n_samples,
                            row);
    return KD_STATUS_OK;
}

/* Rows of a batch where an online model output NaN or inf: the first such model's count and first
 * row (an ensemble's average would hide them: T log(max(p, 1e-30)) of NaN is finite). */
typedef struct nonfinite {
    const char *model;
    int rows, first;
} nonfinite;

static void note_nonfinite(nonfinite *nf, const kd_model *m, const float *out, int B) {
    int f, n = kd_logits_nonfinite(out, B, m->n_classes, &f);
    if (n && !nf->model) *nf = (nonfinite){m->name, n, f};
}

/* The input of online model M for the B images of `in`: in->x when it is normalised as M asks,
 * else in->px normalised for M into *buf (B images, allocated on first need; the caller frees). */
static kd_status model_input(const kd_model *M, const kd_batch *in, int B, float **buf, const float **x,
                             kd_error *err) {
    const kd_dataset *ds = in ? in->ds : NULL;
    if (!ds) return kd_error_set(err, KD_STATUS_BAD_ARG, "teacher %s: no input batch to run on", M->name);
    if (ds->c != M->in_c || ds->h != M->in_h || ds->w != M->in_w)
        return kd_error_set(err, KD_STATUS_MISMATCH, "teacher %s takes %dx%dx%d images, the data has %dx%dx%d", M->name,
                            M->in_c, M->in_h, M->in_w, ds->c, ds->h, ds->w);
    if (kd_batch_same_norm(in, M->norm_mean, M->norm_std)) {
        *x = in->x;
        return KD_STATUS_OK;
    }
    if (!*buf && !(*buf = malloc(sizeof(float) * (size_t)B * ds->c * ds->h * ds->w)))
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    kd_batch_normalize(*buf, in->px, B, ds, M->norm_mean, M->norm_std);
    *x = *buf;
    return KD_STATUS_OK;
}

/* kd_teacher_forward without its verdict on non-finite outputs, which it notes in *nf. */
static kd_status teacher_run(const kd_teacher *t, float T, float *logits, float *const *feats, const kd_batch *in,
                             const int32_t *idx, int B, nonfinite *nf, kd_error *err) {
    int C = t->n_classes;
    kd_status st;
    if (t->logits) {
        for (int b = 0; b < B; b++) {
            if ((st = check_row(t, idx[b], err))) return st;
            memcpy(logits + (size_t)b * C, t->logits + (size_t)idx[b] * C, sizeof(float) * C);
        }
    }
    int run = !t->logits;
    for (int k = 0; feats && k < t->n_feats; k++) {
        if (!t->feat_table[k]) {
            run = 1;
            continue;
        }
        size_t n = t->feat_size[k];
        for (int b = 0; b < B; b++) {
            if ((st = check_row(t, idx[b], err))) return st;
            memcpy(feats[k] + (size_t)b * n, t->feat_table[k] + (size_t)idx[b] * n, sizeof(float) * n);
        }
    }
    if (!run) return KD_STATUS_OK;
    if (t->q8 && !t->n_feats) /* the int8 teacher: finite by construction (dequantized int8) */
        return kd_teacher_q8_forward(t->q8, in, B, logits, err);
    if (t->n_models < 1) return kd_error_set(err, KD_STATUS_BAD_ARG, "the teacher has neither models nor tables");
    for (int k = 0; k < t->n_models; k++)
        if (kd_model_batch(t->models[k]) < B || t->models[k]->n_classes != C)
            return kd_error_set(err, KD_STATUS_BAD_ARG, "teacher %s not prepared for batch %d", t->models[k]->name, B);
    float *own = NULL; /* a model's own normalisation of in->px, when in->x is not */
    const float *x;
    if (t->n_models == 1) {
        if ((st = model_input(t->models[0], in, B, &own, &x, err))) return st;
        const float *out = kd_model_forward(t->models[0], x, B, 0, NULL);
        note_nonfinite(nf, t->models[0], out, B);
        if (!t->logits) memcpy(logits, out, sizeof(float) * (size_t)B * C);
    } else {
        float *p = malloc(sizeof(float) * (size_t)B * C), *acc = calloc((size_t)B * C, sizeof(float));
        if (!p || !acc) {
            free(p); free(acc);
            return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
        }
        /* members 1.. first, so models[0]'s activations (its features) are the ones left */
        for (int k = t->n_models - 1; k >= 0; k--) {
            if ((st = model_input(t->models[k], in, B, &own, &x, err))) break;
            const float *out = kd_model_forward(t->models[k], x, B, 0, NULL);
            note_nonfinite(nf, t->models[k], out, B);
            kd_softmax_forward(p, out, B, C, T);
            for (size_t i = 0; i < (size_t)B * C; i++) acc[i] += p[i] / (float)t->n_models;
        }
        if (!st && !t->logits)
            for (size_t i = 0; i < (size_t)B * C; i++) logits[i] = T * logf(fmaxf(acc[i], 1e-30f));
        free(p);
        free(acc);
    }
    free(own);
    if (st) return st;
    for (int k = 0; feats && k < t->n_feats; k++)
        if (!t->feat_table[k])
            memcpy(feats[k], kd_model_layer_output(t->models[0], t->feat_layer[k]),
                   sizeof(float) * (size_t)B * t->feat_size[k]);
    return KD_STATUS_OK;
}

kd_status kd_teacher_forward(const kd_teacher *t, float T, float *logits, float *const *feats, const kd_batch *in,
                             const int32_t *idx, int B, kd_error *err) {
    nonfinite nf = {0};
    kd_status st = teacher_run(t, T, logits, feats, in, idx, B, &nf, err);
    if (!st && nf.model)
        st = kd_error_nonfinite(err, "teacher", nf.model, nf.rows, B, "training image", idx ? idx[nf.first] : nf.first);
    return st;
}

kd_status kd_teacher_cache(const kd_teacher *t, float T, const kd_dataset *ds, int batch, int threads,
                           float **logits_tab, float **feat_tabs, int *n_rows, kd_error *err) {
    *logits_tab = NULL;
    for (int k = 0; k < t->n_feats; k++) feat_tabs[k] = NULL;
    if (t->n_models < 1) return kd_error_set(err, KD_STATUS_BAD_ARG, "caching needs an online teacher");
    kd_teacher online = *t; /* run the models even if t already has tables */
    online.logits = NULL;
    for (int k = 0; k < t->n_feats; k++) online.feat_table[k] = NULL;
    int C = t->n_classes, rows = 0;
    for (int i = 0; i < ds->n; i++)
        if (kd_dataset_orig_index(ds, i) + 1 > rows) rows = kd_dataset_orig_index(ds, i) + 1;
    float *tab = calloc((size_t)rows * C, sizeof(float));
    uint8_t *px = malloc(kd_dataset_sample_bytes(ds) * (size_t)batch); /* normalised for each model as it asks */
    float *lg = malloc(sizeof(float) * (size_t)batch * C), *fb[KD_MAX_FEATS] = {0};
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)batch), *y = malloc(sizeof(int32_t) * (size_t)batch);
    kd_status st = KD_STATUS_OK;
    int ok = tab && px && lg && idx && y;
    for (int k = 0; k < t->n_feats && ok; k++) {
        feat_tabs[k] = calloc((size_t)rows * t->feat_size[k], sizeof(float));
        fb[k] = malloc(sizeof(float) * (size_t)batch * t->feat_size[k]);
        ok = feat_tabs[k] && fb[k];
    }
    if (!ok) {
        st = kd_error_set(err, KD_STATUS_NO_MEMORY, "cannot allocate the teacher cache (%d rows)", rows);
        goto out;
    }
    for (int k = 0; k < t->n_models; k++)
        if ((st = kd_model_set_batch(t->models[k], batch, threads, err))) goto out;
    nonfinite bad = {0}; /* over the whole set, so the message can say how many */
    /* Under mpirun each rank scores a contiguous share of the set and the tables are summed: each
     * row is written by one rank only (orig indices are distinct), so the sum is a gather, exact. */
    long long lo, hi;
    kd_dist_share(ds->n, kd_dist_rank(), kd_dist_size(), &lo, &hi);
    for (int s = (int)lo; s < hi; s += batch) {
        int B = hi - s < batch ? (int)(hi - s) : batch;
        for (int b = 0; b < B; b++) idx[b] = s + b;
        kd_batch_pixels(px, y, ds, idx, B, NULL, NULL);
        kd_batch in = {ds, px, NULL, NULL, NULL, NULL, NULL};
        nonfinite nf = {0};
        if ((st = teacher_run(&online, T, lg, fb, &in, NULL, B, &nf, err))) goto out;
        if (nf.model && !bad.model) bad = (nonfinite){nf.model, 0, kd_dataset_orig_index(ds, s + nf.first)};
        bad.rows += nf.rows;
        for (int b = 0; b < B; b++) {
            size_t row = (size_t)kd_dataset_orig_index(ds, s + b);
            memcpy(tab + row * C, lg + (size_t)b * C, sizeof(float) * C);
            for (int k = 0; k < t->n_feats; k++)
                memcpy(feat_tabs[k] + row * t->feat_size[k], fb[k] + (size_t)b * t->feat_size[k],
                       sizeof(float) * t->feat_size[k]);
        }
    }
    if (kd_dist_size() > 1) {
        double n_bad = bad.rows;
        if ((st = kd_dist_sum_f64(&n_bad, 1, err)) || (st = kd_dist_sum_f32(tab, (size_t)rows * C, err))) goto out;
        for (int k = 0; k < t->n_feats; k++)
            if ((st = kd_dist_sum_f32(feat_tabs[k], (size_t)rows * t->feat_size[k], err))) goto out;
        if (n_bad > 0 && !bad.model) /* found by another rank, which names its first */
            bad = (nonfinite){t->models[0]->name, (int)n_bad, -1};
        bad.rows = (int)n_bad;
    }
    if (bad.model) {
        st = kd_error_nonfinite(err, "teacher", bad.model, bad.rows, ds->n, "training image", bad.first);
        goto out;
    }
    *logits_tab = tab;
    *n_rows = rows;
    tab = NULL;
out:
    if (st)
        for (int k = 0; k < t->n_feats; k++) free(feat_tabs[k]), feat_tabs[k] = NULL;
    for (int k = 0; k < t->n_feats; k++) free(fb[k]);
    free(tab); free(px); free(lg); free(idx); free(y);
    return st;
}
