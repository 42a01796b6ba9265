/* Pruning: unstructured magnitude pruning with masks (per layer or global, exact target counts),
 * the AGP schedule, and structured channel pruning that removes channels and rewires the layers
 * that read them, producing a smaller dense model. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "distill/compress.h"

static int is_weighted(const kd_layer *L) { return L->type == KD_LAYER_CONV2D || L->type == KD_LAYER_LINEAR; }

/* ---- masks ---- */

kd_status kd_prune_mask_init(kd_prune_mask *mask, const kd_model *m, kd_error *err) {
    mask->n = 0;
    mask->keep = NULL;
    if (!m) return kd_error_set(err, KD_STATUS_BAD_ARG, "prune mask: model is NULL");
    mask->keep = malloc(m->n_params ? m->n_params : 1);
    if (!mask->keep) return kd_error_set(err, KD_STATUS_NO_MEMORY, "prune mask: out of memory");
    memset(mask->keep, 1, m->n_params);
    mask->n = m->n_params;
    return KD_STATUS_OK;
}

void kd_prune_mask_free(kd_prune_mask *mask) {
    if (!mask) return;
    free(mask->keep);
    mask->keep = NULL;
    mask->n = 0;
}

static kd_status check_mask(const kd_model *m, const kd_prune_mask *mask, kd_error *err) {
    if (!m || !mask || !mask->keep) return kd_error_set(err, KD_STATUS_BAD_ARG, "prune: model or mask is NULL");
    if (mask->n != m->n_params)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "prune: mask has %zu entries but %s has %zu parameters", mask->n,
                            m->name, m->n_params);
    return KD_STATUS_OK;
}

kd_status kd_prune_apply(kd_model *m, const kd_prune_mask *mask, kd_error *err) {
    kd_status st = check_mask(m, mask, err);
    if (st) return st;
    for (size_t k = 0; k < m->n_params; k++)
        if (!mask->keep[k]) m->params[k] = 0.f;
    return KD_STATUS_OK;
}

double kd_model_weight_sparsity(const kd_model *m) {
    size_t n = 0, z = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const kd_layer *L = &m->layers[i];
        if (!is_weighted(L)) continue;
        for (size_t k = 0; k < L->w_size; k++) z += m->params[L->w_off + k] == 0.f;
        n += L->w_size;
    }
    return n ? (double)z / (double)n : 0.0;
}

/* k-th smallest (0-based) of a[0..n), reordering a (Wirth's selection: Hoare partitions around
 * a[k]; equal keys split evenly, so masses of equal values (masked weights) stay linear). */
static float select_kth(float *a, long n, long k) {
    long l = 0, r = n - 1;
    while (l < r) {
        float x = a[k];
        long i = l, j = r;
        do {
            while (a[i] < x) i++;
            while (x < a[j]) j--;
            if (i <= j) {
                float t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        } while (i <= j);
        if (j < k) l = i;
        if (k < i) r = j;
    }
    return a[k];
}

/* Prune exactly `target` of the weights in the spans (off[s], len[s]) of m->params: masked weights
 * first (magnitude -1), then by |w|, ties by position. mag: scratch of sum(len) floats. */
static void prune_spans(kd_model *m, kd_prune_mask *mask, const size_t *off, const size_t *len, int n_spans,
                        size_t target, float *mag) {
    size_t n = 0;
    for (int s = 0; s < n_spans; s++)
        for (size_t k = 0; k < len[s]; k++) {
            size_t p = off[s] + k;
            mag[n++] = mask->keep[p] ? fabsf(m->params[p]) : -1.f;
        }
    float thr = target ? select_kth(mag, (long)n, (long)target - 1) : -2.f;
    /* first pass: strictly below the threshold; second: equal to it, in order, up to the target */
    size_t below = 0;
    for (int s = 0; s < n_spans; s++)
        for (size_t k = 0; k < len[s]; k++) {
            size_t p = off[s] + k;
            float a = mask->keep[p] ? fabsf(m->params[p]) : -1.f;
            below += a < thr;
        }
    size_t ties = target - below;
    for (int s = 0; s < n_spans; s++)
        for (size_t k = 0; k < len[s]; k++) {
            size_t p = off[s] + k;
            float a = mask->keep[p] ? fabsf(m->params[p]) : -1.f;
            int prune = a < thr;
            if (!prune && a == thr && ties) {
                prune = 1;
                ties--;
            }
            mask->keep[p] = (unsigned char)!prune;
            if (prune) m->params[p] = 0.f;
        }
}

kd_status kd_prune_magnitude(kd_model *m, kd_prune_mask *mask, float sparsity, kd_prune_scope scope,
                             kd_error *err) {
    kd_status st = check_mask(m, mask, err);
    if (st) return st;
    if (!(sparsity >= 0.f && sparsity < 1.f))
        return kd_error_set(err, KD_STATUS_BAD_ARG, "prune: sparsity %g is outside [0, 1)", (double)sparsity);
    if (scope != KD_PRUNE_PER_LAYER && scope != KD_PRUNE_GLOBAL)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "prune: unknown scope %d", (int)scope);
    int ns = 0;
    size_t total = 0, largest = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const kd_layer *L = &m->layers[i];
        if (!is_weighted(L)) continue;
        for (size_t k = 0; k < L->w_size; k++)
            if (!isfinite(m->params[L->w_off + k]))
                return kd_error_set(err, KD_STATUS_BAD_ARG, "prune: layer %s has a non-finite weight", L->name);
        ns++;
        total += L->w_size;
        if (L->w_size > largest) largest = L->w_size;
    }
    if (!ns) return kd_error_set(err, KD_STATUS_BAD_ARG, "prune: %s has no conv2d or linear weights", m->name);
    size_t *off = malloc((size_t)ns * sizeof *off), *len = malloc((size_t)ns * sizeof *len);
    float *mag = malloc((scope == KD_PRUNE_GLOBAL ? total : largest) * sizeof *mag);
    if (!off || !len || !mag) {
        free(off); free(len); free(mag);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "prune: out of memory");
    }
    ns = 0;
    for (int i = 0; i < m->n_layers; i++)
        if (is_weighted(&m->layers[i])) {
            off[ns] = m->layers[i].w_off;
            len[ns] = m->layers[i].w_size;
            ns++;
        }
    if (scope == KD_PRUNE_GLOBAL) {
        prune_spans(m, mask, off, len, ns, (size_t)floor((double)sparsity * (double)total + 0.5), mag);
    } else {
        for (int s = 0; s < ns; s++)
            prune_spans(m, mask, off + s, len + s, 1, (size_t)floor((double)sparsity * (double)len[s] + 0.5), mag);
    }
    free(off); free(len); free(mag);
    return KD_STATUS_OK;
}

float kd_agp_sparsity(float s_init, float s_final, long long step, long long start, long long end) {
    if (step >= end) return s_final;
    if (step <= start) return s_init;
    double r = 1.0 - (double)(step - start) / (double)(end - start);
    return (float)((double)s_final + ((double)s_init - (double)s_final) * r * r * r);
}

/* ---- structured channel pruning ----
 *
 * Every activation tensor's channels are described by (group, f): tensor channel t is channel t / f
 * of the group (f > 1 after a flatten: one conv channel becomes H*W consecutive features). A group
 * starts at each conv2d (groups 1) or linear output; layers that act per channel (batch norm,
 * activations, pooling, dropout, depthwise conv) pass it on; an add merges the groups of its two
 * inputs (union-find), so they keep the same channels. A group is fixed (not pruned) if it reaches
 * the model output, the model input, or a grouped non-depthwise conv. */

typedef struct tdesc {
    int g, f;
} tdesc;

typedef struct chan_ctx {
    const kd_model *m;
    int n_groups;
    int *parent, *size, *first, *fixed, *tied, *has_bn;
    const char **why;
    tdesc *out;             /* per layer */
    int **kept;             /* per root group: kept channels, ascending (NULL = all kept) */
    int *n_kept;
} chan_ctx;

static int find_root(chan_ctx *c, int g) {
    while (c->parent[g] != g) g = c->parent[g] = c->parent[c->parent[g]];
    return g;
}

static int new_group(chan_ctx *c, int size, int producer) {
    int g = c->n_groups++;
    c->parent[g] = g;
    c->size[g] = size;
    c->first[g] = producer;
    c->fixed[g] = c->tied[g] = c->has_bn[g] = 0;
    c->why[g] = NULL;
    return g;
}

static void fix_group(chan_ctx *c, int g, const char *why) {
    g = find_root(c, g);
    if (!c->fixed[g]) c->why[g] = why;
    c->fixed[g] = 1;
}

static void merge_groups(chan_ctx *c, int a, int b) {
    a = find_root(c, a);
    b = find_root(c, b);
    if (a == b) return;
    if (b < a) { int t = a; a = b; b = t; }
    c->parent[b] = a;
    if (c->first[b] >= 0 && (c->first[a] < 0 || c->first[b] < c->first[a])) c->first[a] = c->first[b];
    if (c->fixed[b] && !c->fixed[a]) c->why[a] = c->why[b];
    c->fixed[a] |= c->fixed[b];
    c->has_bn[a] |= c->has_bn[b];
    c->tied[a] = 1;
}

static tdesc in_desc(const chan_ctx *c, const kd_layer *L, int k) {
    int j = L->inputs[k];
    if (j == KD_MODEL_INPUT) return (tdesc){0, 1};
    return c->out[j];
}

static int is_depthwise(const kd_layer *L) {
    return L->type == KD_LAYER_CONV2D && L->groups > 1 && L->groups == L->in_c && L->out == L->in_c;
}

/* Kept tensor channels of a tensor with C channels described by d (list has room for C). */
static int tensor_kept(chan_ctx *c, tdesc d, int C, int *list) {
    int g = find_root(c, d.g);
    if (!c->kept[g]) {
        for (int t = 0; t < C; t++) list[t] = t;
        return C;
    }
    int n = 0;
    for (int k = 0; k < c->n_kept[g]; k++)
        for (int t = 0; t < d.f; t++) list[n++] = c->kept[g][k] * d.f + t;
    return n;
}

typedef struct score_item {
    double s;
    int idx;
} score_item;

static int by_score_desc(const void *a, const void *b) {
    const score_item *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return x->idx - y->idx;
}

static int by_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

static void chan_ctx_free(chan_ctx *c) {
    if (c->kept)
        for (int g = 0; g < c->n_groups; g++) free(c->kept[g]);
    free(c->parent); free(c->size); free(c->first); free(c->fixed); free(c->tied); free(c->has_bn);
    free(c->why); free(c->out); free(c->kept); free(c->n_kept);
}

/* Group analysis: one pass in layer order (inputs precede their readers). */
static void analyse_groups(chan_ctx *c) {
    const kd_model *m = c->m;
    new_group(c, m->in_c, -1);
    fix_group(c, 0, "the model input");
    for (int i = 0; i < m->n_layers; i++) {
        const kd_layer *L = &m->layers[i];
        tdesc d0 = in_desc(c, L, 0);
        switch (L->type) {
        case KD_LAYER_CONV2D:
            if (L->groups == 1) {
                c->out[i] = (tdesc){new_group(c, L->out, i), 1};
            } else if (is_depthwise(L)) {
                c->out[i] = d0;
            } else {
                fix_group(c, d0.g, "its channels reach a grouped convolution");
                c->out[i] = (tdesc){new_group(c, L->out, i), 1};
                fix_group(c, c->out[i].g, "grouped convolution");
            }
            break;
        case KD_LAYER_LINEAR: c->out[i] = (tdesc){new_group(c, L->out, i), 1}; break;
        case KD_LAYER_FLATTEN: c->out[i] = (tdesc){d0.g, d0.f * L->in_h * L->in_w}; break;
        case KD_LAYER_ADD: {
            tdesc d1 = in_desc(c, L, 1);
            if (d0.f == d1.f) {
                merge_groups(c, d0.g, d1.g);
            } else {
                fix_group(c, d0.g, "residual add of differently laid out tensors");
                fix_group(c, d1.g, "residual add of differently laid out tensors");
            }
            c->out[i] = d0;
            break;
        }
        case KD_LAYER_BATCHNORM:
            c->has_bn[find_root(c, d0.g)] = 1;
            c->out[i] = d0;
            break;
        default: c->out[i] = d0; break; /* per-channel layers */
        }
    }
    fix_group(c, c->out[m->n_layers - 1].g, "it feeds the model output");
}

/* Choose the kept channels of every prunable group. */
static kd_status choose_channels(chan_ctx *c, const kd_channel_prune_config *cfg, kd_error *err) {
    const kd_model *m = c->m;
    for (int g = 0; g < c->n_groups; g++) {
        if (find_root(c, g) != g || c->fixed[g] || c->first[g] < 0) continue;
        float ratio = cfg->layer_keep ? cfg->layer_keep[c->first[g]] : cfg->keep_ratio;
        int keep = (int)floor((double)ratio * c->size[g] + 0.5);
        if (keep < 1) keep = 1;
        if (keep >= c->size[g]) continue;
        int use_bn = cfg->criterion == KD_CHANNEL_BN_GAMMA && c->has_bn[g];
        score_item *sc = calloc((size_t)c->size[g], sizeof *sc);
        if (!sc) return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
        for (int j = 0; j < c->size[g]; j++) sc[j].idx = j;
        for (int i = 0; i < m->n_layers; i++) {
            const kd_layer *L = &m->layers[i];
            tdesc d = c->out[i];
            if (find_root(c, d.g) != g) continue;
            const float *w = m->params + L->w_off;
            if (!use_bn && (L->type == KD_LAYER_LINEAR || (L->type == KD_LAYER_CONV2D && L->groups == 1))) {
                size_t per = L->w_size / (size_t)L->out;
                for (int o = 0; o < L->out; o++) {
                    double s = 0;
                    for (size_t k = 0; k < per; k++) s += fabs((double)w[(size_t)o * per + k]);
                    sc[o / d.f].s += s;
                }
            } else if (use_bn && L->type == KD_LAYER_BATCHNORM) {
                for (int o = 0; o < L->c; o++) sc[o / d.f].s += fabs((double)w[o]);
            }
        }
        qsort(sc, (size_t)c->size[g], sizeof *sc, by_score_desc);
        c->kept[g] = malloc((size_t)keep * sizeof(int));
        if (!c->kept[g]) {
            free(sc);
            return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
        }
        for (int k = 0; k < keep; k++) c->kept[g][k] = sc[k].idx;
        qsort(c->kept[g], (size_t)keep, sizeof(int), by_int);
        c->n_kept[g] = keep;
        free(sc);
    }
    return KD_STATUS_OK;
}

/* Copy the kept weights of every layer of `in` into the rebuilt model `out`. */
static kd_status copy_weights(chan_ctx *c, kd_model *out, kd_error *err) {
    const kd_model *m = c->m;
    size_t most = (size_t)m->in_c * m->in_h * m->in_w;
    for (int i = 0; i < m->n_layers; i++) {
        size_t s = kd_layer_out_size(&m->layers[i]);
        if (s > most) most = s;
    }
    int *ko = malloc(most * sizeof(int)), *ki = malloc(most * sizeof(int));
    if (!ko || !ki) {
        free(ko); free(ki);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    }
    kd_status st = KD_STATUS_OK;
    for (int i = 0; i < m->n_layers && !st; i++) {
        const kd_layer *L = &m->layers[i];
        const kd_layer *D = &out->layers[i];
        const float *w = m->params + L->w_off, *b = m->params + L->b_off;
        float *dw = out->params + D->w_off, *db = out->params + D->b_off;
        tdesc d0 = in_desc(c, L, 0);
        int src = L->inputs[0];
        int sc = src == KD_MODEL_INPUT ? m->in_c : m->layers[src].c;
        int shw = src == KD_MODEL_INPUT ? m->in_h * m->in_w : m->layers[src].h * m->layers[src].w;
        size_t want_w = 0;
        if (L->type == KD_LAYER_CONV2D && !is_depthwise(L) && L->groups > 1) {
            want_w = L->w_size; /* grouped: its input and output groups are fixed */
            if (D->w_size == want_w) {
                memcpy(dw, w, L->w_size * sizeof(float));
                memcpy(db, b, L->b_size * sizeof(float));
            }
        } else if (L->type == KD_LAYER_CONV2D) {
            int no = tensor_kept(c, c->out[i], L->out, ko);
            int ni = is_depthwise(L) ? 1 : tensor_kept(c, d0, L->in_c, ki);
            int cin = L->in_c / L->groups;
            size_t kk = (size_t)L->kernel * L->kernel;
            want_w = (size_t)no * ni * kk;
            if (D->w_size == want_w && D->out == no) {
                for (int o = 0; o < no; o++) {
                    for (int q = 0; q < ni; q++) {
                        int qi = is_depthwise(L) ? 0 : ki[q];
                        memcpy(dw + ((size_t)o * ni + q) * kk, w + ((size_t)ko[o] * cin + qi) * kk, kk * sizeof(float));
                    }
                    if (L->b_size) db[o] = b[ko[o]];
                }
            }
        } else if (L->type == KD_LAYER_LINEAR) {
            int no = tensor_kept(c, c->out[i], L->out, ko);
            int nch = tensor_kept(c, d0, sc, ki);
            /* input feature of tensor channel t at position p is t * H*W + p (NCHW) */
            size_t ni = (size_t)nch * shw;
            want_w = (size_t)no * ni;
            if (D->w_size == want_w && D->out == no) {
                for (int o = 0; o < no; o++) {
                    const float *row = w + (size_t)ko[o] * L->in_c;
                    float *drow = dw + (size_t)o * ni;
                    for (int q = 0; q < nch; q++)
                        memcpy(drow + (size_t)q * shw, row + (size_t)ki[q] * shw, (size_t)shw * sizeof(float));
                    if (L->b_size) db[o] = b[ko[o]];
                }
            }
        } else if (L->type == KD_LAYER_BATCHNORM) {
            int n = tensor_kept(c, d0, L->c, ko);
            want_w = (size_t)n;
            if (D->c == n) {
                const float *rm = m->buffers + L->buf_off;
                float *drm = out->buffers + D->buf_off;
                for (int k = 0; k < n; k++) {
                    dw[k] = w[ko[k]];
                    db[k] = b[ko[k]];
                    drm[k] = rm[ko[k]];
                    drm[n + k] = rm[L->c + ko[k]];
                }
            }
        }
        if (D->w_size != want_w || D->type != L->type)
            st = kd_error_set(err, KD_STATUS_BAD_MODEL, "channel pruning: layer %s has %zu weights, expected %zu",
                              L->name, D->w_size, want_w);
    }
    free(ko);
    free(ki);
    return st;
}

kd_status kd_prune_channels(const kd_model *in, const kd_channel_prune_config *cfg, kd_model **out,
                            kd_prune_report *rep, kd_error *err) {
    if (out) *out = NULL;
    if (rep) memset(rep, 0, sizeof *rep);
    if (!in || !cfg || !out) return kd_error_set(err, KD_STATUS_BAD_ARG, "channel pruning: model, config or output is NULL");
    if (!(cfg->keep_ratio > 0.f && cfg->keep_ratio <= 1.f))
        return kd_error_set(err, KD_STATUS_BAD_ARG, "channel pruning: keep ratio %g is outside (0, 1]",
                            (double)cfg->keep_ratio);
    if (cfg->criterion != KD_CHANNEL_L1 && cfg->criterion != KD_CHANNEL_BN_GAMMA)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "channel pruning: unknown criterion %d", (int)cfg->criterion);
    for (int i = 0; cfg->layer_keep && i < in->n_layers; i++)
        if (is_weighted(&in->layers[i]) && !(cfg->layer_keep[i] > 0.f && cfg->layer_keep[i] <= 1.f))
            return kd_error_set(err, KD_STATUS_BAD_ARG, "channel pruning: keep ratio %g of layer %s is outside (0, 1]",
                                (double)cfg->layer_keep[i], in->layers[i].name);
    int n = in->n_layers, ng = n + 1;
    chan_ctx c = {.m = in};
    c.parent = malloc((size_t)ng * sizeof(int));
    c.size = malloc((size_t)ng * sizeof(int));
    c.first = malloc((size_t)ng * sizeof(int));
    c.fixed = malloc((size_t)ng * sizeof(int));
    c.tied = malloc((size_t)ng * sizeof(int));
    c.has_bn = malloc((size_t)ng * sizeof(int));
    c.why = malloc((size_t)ng * sizeof(char *));
    c.out = malloc((size_t)n * sizeof(tdesc));
    c.kept = calloc((size_t)ng, sizeof(int *));
    c.n_kept = calloc((size_t)ng, sizeof(int));
    kd_layer *nl = malloc((size_t)n * sizeof *nl);
    char *yaml = NULL;
    kd_model *m = NULL;
    kd_status st = KD_STATUS_OK;
    if (!c.parent || !c.size || !c.first || !c.fixed || !c.tied || !c.has_bn || !c.why || !c.out || !c.kept ||
        !c.n_kept || !nl) {
        st = kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
        goto done;
    }
    analyse_groups(&c);
    if ((st = choose_channels(&c, cfg, err))) goto done;
    /* the new layer table: only output counts change; shapes follow by inference */
    for (int i = 0; i < n; i++) {
        nl[i] = in->layers[i];
        const kd_layer *L = &in->layers[i];
        int g = find_root(&c, c.out[i].g);
        if (!c.kept[g] || !(L->type == KD_LAYER_CONV2D || L->type == KD_LAYER_LINEAR)) continue;
        if (L->type == KD_LAYER_CONV2D && L->groups > 1 && !is_depthwise(L)) continue;
        nl[i].out = c.n_kept[g] * c.out[i].f;
        if (is_depthwise(L)) nl[i].groups = nl[i].out;
    }
    if ((st = kd_model_yaml_from_layers(in, nl, n, &yaml, err))) goto done;
    if ((st = kd_model_from_yaml(&m, yaml, in->name, 0, err))) goto done;
    if (m->n_layers != n) {
        st = kd_error_set(err, KD_STATUS_BAD_MODEL, "channel pruning: rebuilt model has %d layers, expected %d",
                          m->n_layers, n);
        goto done;
    }
    if ((st = copy_weights(&c, m, err))) goto done;
    if (rep) {
        if ((st = kd_prune_report_compare(in, m, rep, err))) goto done;
        for (int i = 0; i < n; i++) {
            const kd_layer *L = &in->layers[i];
            kd_prune_layer_report *r = &rep->layers[i];
            if (!(is_weighted(L) || L->type == KD_LAYER_BATCHNORM)) continue;
            int g = find_root(&c, c.out[i].g);
            if (c.fixed[g]) {
                r->note = c.why[g] ? c.why[g] : "not prunable";
                continue;
            }
            if (c.tied[g]) r->note = "channels chosen jointly with the other inputs of a residual add";
            else if (cfg->criterion == KD_CHANNEL_BN_GAMMA && !c.has_bn[g]) r->note = "no batch norm: scored by L1";
            if (!c.kept[g]) continue;
            r->kept = malloc((size_t)L->c * sizeof(int));
            if (!r->kept) {
                st = kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
                goto done;
            }
            tensor_kept(&c, c.out[i], L->c, r->kept);
        }
    }
done:
    chan_ctx_free(&c);
    free(nl);
    free(yaml);
    if (st) {
        kd_model_free(m);
        if (rep) kd_prune_report_free(rep);
    } else {
        *out = m;
    }
    return st;
}

kd_status kd_prune_mask_from_zeros(kd_prune_mask *mask, const kd_model *m, kd_error *err) {
    kd_status st = check_mask(m, mask, err);
    if (st) return st;
    for (int i = 0; i < m->n_layers; i++) {
        const kd_layer *L = &m->layers[i];
        if (L->type != KD_LAYER_CONV2D && L->type != KD_LAYER_LINEAR) continue;
        for (size_t k = 0; k < L->w_size; k++) mask->keep[L->w_off + k] = m->params[L->w_off + k] != 0.f;
    }
    return KD_STATUS_OK;
}

kd_status kd_prune_schedule_step(kd_prune_schedule *p, kd_model *m, long long step, kd_error *err) {
    if (p->every < 1) return kd_error_set(err, KD_STATUS_BAD_ARG, "pruning schedule: update interval must be >= 1");
    int due = step >= p->start && step <= p->end && ((step - p->start) % p->every == 0 || step == p->end);
    if (due) {
        kd_status st = kd_prune_magnitude(m, &p->mask, kd_agp_sparsity(p->s_init, p->s_final, step, p->start, p->end),
                                          p->scope, err);
        if (st) return st;
    }
    return kd_prune_apply(m, &p->mask, err);
}
