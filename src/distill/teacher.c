/* Teachers for distillation: soft targets from online models (an ensemble averages their
 * probabilities, as in Hinton et al.) or from a table of logits per training sample, which is
 * either cached from the online teachers once (augmentation off) or read from a .npy file written
 * by another framework. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "distill/distill.h"
#include "distill/ops.h"

static int argmax(const float *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

kd_status kd_teacher_targets(const kd_teacher *t, float *pt, int32_t *t_top1, const float *x, const int32_t *idx,
                             int B, float T, kd_error *err) {
    int C = t->n_classes;
    if (t->logits) {
        for (int b = 0; b < B; b++) {
            if (idx[b] < 0 || idx[b] >= t->n_samples)
                return kd_error_set(err, KD_STATUS_MISMATCH, "teacher logits have %d rows, sample %d asked for",
                                    t->n_samples, idx[b]);
            kd_softmax_forward(pt + (size_t)b * C, t->logits + (size_t)idx[b] * C, 1, C, T);
        }
    } else {
        if (t->n_models < 1) return kd_error_set(err, KD_STATUS_BAD_ARG, "no teacher");
        float *tmp = malloc(sizeof(float) * (size_t)B * C);
        if (!tmp) return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
        memset(pt, 0, sizeof(float) * (size_t)B * C);
        for (int k = 0; k < t->n_models; k++) {
            kd_model *m = t->models[k];
            if (m->batch < B || m->n_classes != C) {
                free(tmp);
                return kd_error_set(err, KD_STATUS_BAD_ARG, "teacher %s not prepared for batch %d", m->name, B);
            }
            kd_softmax_forward(tmp, kd_model_forward(m, x, B, 0, NULL), B, C, T);
            for (size_t i = 0; i < (size_t)B * C; i++) pt[i] += tmp[i] / (float)t->n_models;
        }
        free(tmp);
    }
    if (t_top1)
        for (int b = 0; b < B; b++) t_top1[b] = argmax(pt + (size_t)b * C, C);
    return KD_STATUS_OK;
}

kd_status kd_teacher_cache_logits(const kd_teacher *t, const kd_dataset *ds, int batch, int threads, float T,
                                  float **out, int *n_rows, kd_error *err) {
    *out = NULL;
    int C = t->n_classes, rows = 0;
    for (int i = 0; i < ds->n; i++)
        if (kd_dataset_orig_index(ds, i) + 1 > rows) rows = kd_dataset_orig_index(ds, i) + 1;
    size_t img = (size_t)ds->c * ds->h * ds->w;
    float *tab = calloc((size_t)rows * C, sizeof(float)), *x = malloc(sizeof(float) * img * (size_t)batch);
    float *pt = malloc(sizeof(float) * (size_t)batch * C);
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)batch), *y = malloc(sizeof(int32_t) * (size_t)batch);
    kd_status st = KD_STATUS_OK;
    if (!tab || !x || !pt || !idx || !y) {
        st = kd_error_set(err, KD_STATUS_NO_MEMORY, "cannot allocate the teacher cache (%d x %d)", rows, C);
        goto out;
    }
    for (int k = 0; k < t->n_models; k++)
        if ((st = kd_model_set_batch(t->models[k], batch, threads, err))) goto out;
    for (int s = 0; s < ds->n; s += batch) {
        int B = ds->n - s < batch ? ds->n - s : batch;
        for (int b = 0; b < B; b++) idx[b] = s + b;
        kd_batch_fill(x, y, ds, idx, B, NULL, NULL);
        if ((st = kd_teacher_targets(t, pt, NULL, x, idx, B, T, err))) goto out;
        /* Store T * log(p): softmax of it at T gives back exactly the (ensemble-averaged) p. */
        for (int b = 0; b < B; b++) {
            float *row = tab + (size_t)kd_dataset_orig_index(ds, s + b) * C;
            for (int c = 0; c < C; c++) row[c] = T * logf(fmaxf(pt[(size_t)b * C + c], 1e-30f));
        }
    }
    *out = tab;
    *n_rows = rows;
    tab = NULL;
out:
    free(tab); free(x); free(pt); free(idx); free(y);
    return st;
}
