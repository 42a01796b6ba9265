/* Batch-norm folding, and the before/after report every architecture-changing surgery shares (the
 * new model's YAML comes from kd_model_yaml_from_layers, src/format/model_yaml.c, and is built by
 * kd_model_from_yaml, so it is an ordinary model). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/compress.h"

/* ---- reports ---- */

static size_t count_nonzero(const float *p, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += p[i] != 0.f;
    return k;
}

static int layer_channels(const kd_layer *L) {
    return (L->type == KD_LAYER_CONV2D || L->type == KD_LAYER_LINEAR || L->type == KD_LAYER_BATCHNORM) ? L->c : 0;
}

kd_status kd_prune_report_compare(const kd_model *before, const kd_model *after, kd_prune_report *rep,
                                  kd_error *err) {
    memset(rep, 0, sizeof *rep);
    if (!before || !after) return kd_error_set(err, KD_STATUS_BAD_ARG, "report: model is NULL");
    rep->layers = calloc((size_t)before->n_layers, sizeof *rep->layers);
    if (!rep->layers) return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    rep->n_layers = before->n_layers;
    for (int i = 0; i < before->n_layers; i++) {
        const kd_layer *L = &before->layers[i];
        kd_prune_layer_report *r = &rep->layers[i];
        snprintf(r->name, sizeof r->name, "%s", L->name);
        r->type = L->type;
        r->params_before = L->w_size + L->b_size;
        r->nonzero_before = count_nonzero(before->params + L->w_off, L->w_size + L->b_size);
        r->macs_before = L->macs;
        r->channels_before = layer_channels(L);
        int j = kd_model_find_layer(after, L->name);
        if (j >= 0) {
            const kd_layer *A = &after->layers[j];
            r->params_after = A->w_size + A->b_size;
            r->nonzero_after = count_nonzero(after->params + A->w_off, A->w_size + A->b_size);
            r->macs_after = A->macs;
            r->channels_after = layer_channels(A);
        }
        rep->params_before += r->params_before;
        rep->params_after += r->params_after;
        rep->nonzero_before += r->nonzero_before;
        rep->nonzero_after += r->nonzero_after;
    }
    /* totals over whole models (layers only in `after` count too) */
    rep->params_after = after->n_params;
    rep->nonzero_after = count_nonzero(after->params, after->n_params);
    rep->macs_before = kd_model_macs(before);
    rep->macs_after = kd_model_macs(after);
    return KD_STATUS_OK;
}

void kd_prune_report_free(kd_prune_report *rep) {
    if (!rep) return;
    for (int i = 0; i < rep->n_layers && rep->layers; i++) free(rep->layers[i].kept);
    free(rep->layers);
    memset(rep, 0, sizeof *rep);
}

/* ---- batch-norm folding ---- */

kd_status kd_fold_batchnorm(const kd_model *in, kd_model **out, int *n_folded, kd_error *err) {
    if (out) *out = NULL;
    if (n_folded) *n_folded = 0;
    if (!in || !out) return kd_error_set(err, KD_STATUS_BAD_ARG, "fold: model or output is NULL");
    int n = in->n_layers;
    int *uses = calloc((size_t)n, sizeof *uses);     /* consumers of each layer's output */
    int *bn_of = malloc((size_t)n * sizeof *bn_of);  /* producer -> the BN folded into it, or -1 */
    int *new_idx = malloc((size_t)n * sizeof *new_idx);
    kd_layer *nl = calloc((size_t)n, sizeof *nl);
    char *yaml = NULL;
    kd_model *m = NULL;
    kd_status st = KD_STATUS_OK;
    int folded = 0;
    if (!uses || !bn_of || !new_idx || !nl) { st = kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory"); goto done; }
    for (int i = 0; i < n; i++) {
        bn_of[i] = -1;
        for (int k = 0; k < in->layers[i].n_inputs; k++)
            if (in->layers[i].inputs[k] >= 0) uses[in->layers[i].inputs[k]]++;
    }
    for (int i = 0; i < n; i++) {
        const kd_layer *L = &in->layers[i];
        int p = L->inputs[0];
        if (L->type != KD_LAYER_BATCHNORM || p < 0) continue;
        const kd_layer *P = &in->layers[p];
        if ((P->type == KD_LAYER_CONV2D || P->type == KD_LAYER_LINEAR) && uses[p] == 1 && P->c == L->c) {
            bn_of[p] = i;
            folded++;
        }
    }
    /* the new layer list: folded BNs dropped, their readers re-pointed to the producer */
    int nn = 0;
    for (int i = 0; i < n; i++) {
        const kd_layer *L = &in->layers[i];
        int dropped = L->type == KD_LAYER_BATCHNORM && L->inputs[0] >= 0 && bn_of[L->inputs[0]] == i;
        if (dropped) {
            new_idx[i] = new_idx[L->inputs[0]];
            continue;
        }
        new_idx[i] = nn;
        nl[nn] = *L;
        for (int k = 0; k < L->n_inputs; k++)
            nl[nn].inputs[k] = L->inputs[k] == KD_MODEL_INPUT ? KD_MODEL_INPUT : new_idx[L->inputs[k]];
        if (bn_of[i] >= 0) nl[nn].bias = 1;
        nn++;
    }
    if ((st = kd_model_yaml_from_layers(in, nl, nn, &yaml, err))) goto done;
    if ((st = kd_model_from_yaml(&m, yaml, in->name, 0, err))) goto done;
    if (m->n_layers != nn) {
        st = kd_error_set(err, KD_STATUS_BAD_MODEL, "fold: rebuilt model has %d layers, expected %d", m->n_layers, nn);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const kd_layer *L = &in->layers[i];
        int dropped = L->type == KD_LAYER_BATCHNORM && L->inputs[0] >= 0 && bn_of[L->inputs[0]] == i;
        if (dropped) continue;
        const kd_layer *D = &m->layers[new_idx[i]];
        if (D->w_size != L->w_size || (bn_of[i] < 0 && D->b_size != L->b_size)) {
            st = kd_error_set(err, KD_STATUS_BAD_MODEL, "fold: layer %s changed shape", L->name);
            goto done;
        }
        const float *w = in->params + L->w_off, *b = in->params + L->b_off;
        float *dw = m->params + D->w_off, *db = m->params + D->b_off;
        if (bn_of[i] < 0) {
            memcpy(dw, w, L->w_size * sizeof(float));
            memcpy(db, b, L->b_size * sizeof(float));
            if (L->type == KD_LAYER_BATCHNORM)
                memcpy(m->buffers + D->buf_off, in->buffers + L->buf_off, 2 * (size_t)L->c * sizeof(float));
            continue;
        }
        /* y = gamma (W x + b - mean) / sqrt(var + eps) + beta  =  (s W) x + s (b - mean) + beta */
        const kd_layer *B = &in->layers[bn_of[i]];
        const float *gamma = in->params + B->w_off, *beta = in->params + B->b_off;
        const float *mean = in->buffers + B->buf_off, *var = mean + B->c;
        size_t per = L->w_size / (size_t)L->out; /* weights of one output channel */
        for (int c = 0; c < L->out; c++) {
            double s = (double)gamma[c] / sqrt((double)var[c] + (double)B->eps);
            for (size_t k = 0; k < per; k++) dw[(size_t)c * per + k] = (float)(s * (double)w[(size_t)c * per + k]);
            double bias = L->b_size ? (double)b[c] : 0.0;
            db[c] = (float)(s * (bias - (double)mean[c]) + (double)beta[c]);
        }
    }
done:
    free(uses); free(bn_of); free(new_idx); free(nl); free(yaml);
    if (st) kd_model_free(m);
    else {
        *out = m;
        if (n_folded) *n_folded = folded;
    }
    return st;
}
