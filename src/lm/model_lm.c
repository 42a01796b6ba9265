/* The decoder-only transformer (GPT-2 layout, pre-LayerNorm, tied output head): its size table,
 * one contiguous block each for parameters, gradients, activations and activation gradients, and
 * the forward and backward passes built from the ops of ops_lm.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "distill/lm.h"
#include "distill/ops.h"

#define KD_LM_MAX_PARAMS ((size_t)1 << 31) /* 8 GB of fp32: more is a typo in the configuration */

kd_status kd_lm_config_check(const kd_lm_config *c, kd_error *err) {
    if (c->vocab < 2 || c->vocab > 1 << 20)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "vocab must be in [2, 2^20] (got %d)", c->vocab);
    if (c->ctx < 1 || c->ctx > 1 << 16) return kd_error_set(err, KD_STATUS_BAD_ARG, "ctx must be in [1, 65536] (got %d)", c->ctx);
    if (c->layers < 1 || c->layers > 1024)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "layers must be in [1, 1024] (got %d)", c->layers);
    if (c->heads < 1 || c->dim < 1 || c->dim > 1 << 16 || c->dim % c->heads)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "dim (%d) must be a positive multiple of heads (%d), at most 65536",
                            c->dim, c->heads);
    double C = c->dim, n = (double)c->vocab * C + (double)c->ctx * C + c->layers * (12.0 * C * C + 13.0 * C) + 2 * C;
    if (n > (double)KD_LM_MAX_PARAMS)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "the configuration has %.3g parameters (at most %zu)", n,
                            KD_LM_MAX_PARAMS);
    return KD_STATUS_OK;
}

static void add_t(kd_lm *m, size_t *off, const char *name, int d0, int d1, int decay) {
    kd_lm_tensor *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->n = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    t->off = *off;
    t->decay = decay;
    *off += t->n;
}

static const char *ltensor_names[KD_LM_NLT] = {"ln1.weight", "ln1.bias", "attn.qkv.weight", "attn.qkv.bias",
                                               "attn.proj.weight", "attn.proj.bias", "ln2.weight", "ln2.bias",
                                               "mlp.fc.weight", "mlp.fc.bias", "mlp.proj.weight", "mlp.proj.bias"};

kd_status kd_lm_create(kd_lm **out, const kd_lm_config *c, uint64_t seed, kd_error *err) {
    *out = NULL;
    kd_status s = kd_lm_config_check(c, err);
    if (s) return s;
    kd_lm *m = calloc(1, sizeof *m);
    if (!m) return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    m->cfg = *c;
    m->threads = 1;
    m->tensors = calloc((size_t)(4 + KD_LM_NLT * c->layers), sizeof *m->tensors);
    if (!m->tensors) {
        kd_lm_free(m);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    }
    int C = c->dim;
    size_t off = 0;
    add_t(m, &off, "wte", c->vocab, C, 1);
    add_t(m, &off, "wpe", c->ctx, C, 1);
    for (int l = 0; l < c->layers; l++) {
        int shp[KD_LM_NLT][2] = {{C, 0}, {C, 0}, {3 * C, C}, {3 * C, 0}, {C, C}, {C, 0},
                                 {C, 0}, {C, 0}, {4 * C, C}, {4 * C, 0}, {C, 4 * C}, {C, 0}};
        for (int k = 0; k < KD_LM_NLT; k++) {
            char name[40];
            snprintf(name, sizeof name, "h.%d.%s", l, ltensor_names[k]);
            add_t(m, &off, name, shp[k][0], shp[k][1], shp[k][1] != 0);
        }
    }
    add_t(m, &off, "lnf.weight", C, 0, 0);
    add_t(m, &off, "lnf.bias", C, 0, 0);
    m->n_params = off;
    m->params = malloc(off * sizeof(float));
    if (!m->params) {
        kd_lm_free(m);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "cannot allocate %zu parameters", off);
    }
    kd_rng rng;
    kd_rng_seed(&rng, seed, 0x6c6d);
    float resid_std = 0.02f / sqrtf(2.f * c->layers);
    for (int i = 0; i < m->n_tensors; i++) {
        const kd_lm_tensor *t = &m->tensors[i];
        float *p = m->params + t->off;
        const char *nm = t->name;
        size_t len = strlen(nm);
        int is_ln_w = len > 7 && !strcmp(nm + len - 7, ".weight") && (strstr(nm, "ln1.") || strstr(nm, "ln2.") || !strncmp(nm, "lnf.", 4));
        if (t->ndim == 2) {
            float std = strstr(nm, ".proj.weight") ? resid_std : 0.02f;
            for (size_t j = 0; j < t->n; j++) p[j] = std * kd_rng_normal(&rng);
        } else {
            float v = is_ln_w ? 1.f : 0.f;
            for (size_t j = 0; j < t->n; j++) p[j] = v;
        }
    }
    *out = m;
    return KD_STATUS_OK;
}

void kd_lm_free(kd_lm *m) {
    if (!m) return;
    free(m->tensors);
    free(m->params);
    free(m->grads);
    free(m->act_block);
    free(m->gact_block);
    free(m->tokens);
    kd_lm_tokenizer_free(m->tok);
    free(m);
}

void kd_lm_set_threads(kd_lm *m, int n) { m->threads = n > 0 ? n : 1; }

kd_status kd_lm_set_tokenizer(kd_lm *m, kd_lm_tokenizer *t, kd_error *err) {
    if (t && kd_lm_tokenizer_vocab(t) != m->cfg.vocab)
        return kd_error_set(err, KD_STATUS_MISMATCH, "a tokenizer of %d tokens for a model of vocabulary %d",
                            kd_lm_tokenizer_vocab(t), m->cfg.vocab);
    if (t != m->tok) kd_lm_tokenizer_free(m->tok);
    m->tok = t;
    return KD_STATUS_OK;
}

void kd_lm_layer_ptrs(const kd_lm *m, float *block, int l, kd_lm_layer *o) {
    for (int k = 0; k < KD_LM_NLT; k++) o->w[k] = block + m->tensors[2 + l * KD_LM_NLT + k].off;
}

const kd_lm_tensor *kd_lm_find_tensor(const kd_lm *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

/* Carve a block into the buffers listed (pointer, size); returns the total when base is NULL. */
static size_t carve(float *base, float **ptrs[], const size_t *sizes, int n) {
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        if (base) *ptrs[i] = base + off;
        off += sizes[i];
    }
    return off;
}

kd_status kd_lm_prepare(kd_lm *m, int B, int T, int with_grads, kd_error *err) {
    if (B < 1 || T < 1 || T > m->cfg.ctx)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "batch %d x sequence %d: need batch >= 1 and 1 <= sequence <= ctx %d",
                            B, T, m->cfg.ctx);
    if (B <= m->B && T <= m->T && (!with_grads || m->grads)) return KD_STATUS_OK;
    size_t L = (size_t)m->cfg.layers, C = (size_t)m->cfg.dim, V = (size_t)m->cfg.vocab, NH = (size_t)m->cfg.heads;
    size_t N = (size_t)B * T, TT = (size_t)T * T;
    kd_lm_acts *a = &m->a;
    float **ap[] = {&a->encoded, &a->ln1, &a->ln1_mean, &a->ln1_rstd, &a->qkv, &a->atty, &a->att, &a->res2,
                    &a->ln2, &a->ln2_mean, &a->ln2_rstd, &a->fch, &a->fch_gelu, &a->res3, &a->lnf,
                    &a->lnf_mean, &a->lnf_rstd, &a->logits, &a->probs};
    size_t as[] = {N * C, L * N * C, L * N, L * N, L * N * 3 * C, L * N * C, L * B * NH * TT, L * N * C,
                   L * N * C, L * N, L * N, L * N * 4 * C, L * N * 4 * C, L * N * C, N * C,
                   N, N, N * V, N * V};
    int na = (int)(sizeof as / sizeof *as);
    size_t n_acts = carve(NULL, ap, as, na);
    float *ab = malloc(n_acts * sizeof(float));
    int32_t *tok = malloc(N * sizeof(int32_t));
    if (!ab || !tok) {
        free(ab);
        free(tok);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "cannot allocate %.1f MB of activations for batch %d x %d",
                            n_acts * 4.0 / 1e6, B, T);
    }
    kd_lm_gacts *g = &m->g;
    float **gp[] = {&g->dres, &g->dln, &g->dqkv, &g->datty, &g->datt, &g->dfch, &g->dfch_gelu, &g->dlnf, &g->dlogits};
    size_t gs[] = {N * C, N * C, N * 3 * C, N * C, B * NH * TT, N * 4 * C, N * 4 * C, N * C, N * V};
    float *gb = NULL, *grads = m->grads;
    size_t n_g = 0;
    if (with_grads) {
        kd_lm_gacts tmp;
        float **tp[] = {&tmp.dres, &tmp.dln, &tmp.dqkv, &tmp.datty, &tmp.datt, &tmp.dfch, &tmp.dfch_gelu, &tmp.dlnf,
                        &tmp.dlogits};
        n_g = carve(NULL, tp, gs, 9);
        gb = malloc(n_g * sizeof(float));
        if (!grads) grads = calloc(m->n_params, sizeof(float));
        if (!gb || !grads) {
            free(ab);
            free(tok);
            free(gb);
            if (grads != m->grads) free(grads);
            return kd_error_set(err, KD_STATUS_NO_MEMORY, "cannot allocate %.1f MB of gradients", n_g * 4.0 / 1e6);
        }
    }
    free(m->act_block);
    free(m->tokens);
    m->act_block = ab;
    m->tokens = tok;
    m->n_acts = n_acts;
    carve(ab, ap, as, na);
    if (with_grads) {
        free(m->gact_block);
        m->gact_block = gb;
        m->n_gacts = n_g;
        m->grads = grads;
        carve(gb, gp, gs, 9);
    } else if (m->gact_block) { /* grow the gradient block too, or drop it */
        free(m->gact_block);
        m->gact_block = NULL;
        m->n_gacts = 0;
        memset(&m->g, 0, sizeof m->g);
    }
    m->B = B;
    m->T = T;
    return KD_STATUS_OK;
}

size_t kd_lm_activation_bytes(const kd_lm *m) { return (m->n_acts + m->n_gacts) * sizeof(float); }

void kd_lm_zero_grad(kd_lm *m) {
    if (m->grads) memset(m->grads, 0, m->n_params * sizeof(float));
}

/* Per-layer activation pointers at the current (B, T): the blocks are laid out for the prepared
 * capacity, and layer l's slice starts at l * (capacity size), so a smaller batch uses a prefix. */
typedef struct layer_acts {
    float *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *att, *res2, *ln2, *ln2_mean, *ln2_rstd, *fch, *fch_gelu, *res3;
} layer_acts;

static void layer_acts_at(const kd_lm *m, int l, layer_acts *o) {
    size_t N = (size_t)m->B * m->T, C = (size_t)m->cfg.dim, NH = (size_t)m->cfg.heads;
    const kd_lm_acts *a = &m->a;
    o->ln1 = a->ln1 + l * N * C;
    o->ln1_mean = a->ln1_mean + l * N;
    o->ln1_rstd = a->ln1_rstd + l * N;
    o->qkv = a->qkv + l * N * 3 * C;
    o->atty = a->atty + l * N * C;
    o->att = a->att + l * (size_t)m->B * NH * m->T * m->T;
    o->res2 = a->res2 + l * N * C;
    o->ln2 = a->ln2 + l * N * C;
    o->ln2_mean = a->ln2_mean + l * N;
    o->ln2_rstd = a->ln2_rstd + l * N;
    o->fch = a->fch + l * N * 4 * C;
    o->fch_gelu = a->fch_gelu + l * N * 4 * C;
    o->res3 = a->res3 + l * N * C;
}

void kd_lm_forward(kd_lm *m, const int32_t *tokens, int B, int T) {
    int C = m->cfg.dim, NH = m->cfg.heads, V = m->cfg.vocab, L = m->cfg.layers, N = B * T, nt = m->threads;
    memcpy(m->tokens, tokens, (size_t)N * sizeof(int32_t));
    m->cur_B = B;
    m->cur_T = T;
    const float *wte = m->params + m->tensors[0].off, *wpe = m->params + m->tensors[1].off;
    kd_lm_embed_forward(m->a.encoded, tokens, wte, wpe, B, T, C, nt); // (B,T,C)
    const float *res = m->a.encoded;
    for (int l = 0; l < L; l++) {
        kd_lm_layer p;
        layer_acts a;
        kd_lm_layer_ptrs(m, m->params, l, &p);
        layer_acts_at(m, l, &a);
        kd_lm_layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, res, p.w[KD_LM_LN1_W], p.w[KD_LM_LN1_B], N, C, nt);
        kd_lm_matmul_forward(a.qkv, a.ln1, p.w[KD_LM_QKV_W], p.w[KD_LM_QKV_B], N, C, 3 * C, nt); // (N,3C)
        kd_lm_attention_forward(a.atty, a.att, a.qkv, B, T, C, NH, nt);                           // (N,C)
        kd_lm_matmul_forward(a.res2, a.atty, p.w[KD_LM_PROJ_W], p.w[KD_LM_PROJ_B], N, C, C, nt);
        for (size_t i = 0; i < (size_t)N * C; i++) a.res2[i] += res[i];                        // residual
        kd_lm_layernorm_forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.res2, p.w[KD_LM_LN2_W], p.w[KD_LM_LN2_B], N, C, nt);
        kd_lm_matmul_forward(a.fch, a.ln2, p.w[KD_LM_FC_W], p.w[KD_LM_FC_B], N, C, 4 * C, nt);    // (N,4C)
        kd_lm_gelu_forward(a.fch_gelu, a.fch, (size_t)N * 4 * C, nt);
        kd_lm_matmul_forward(a.res3, a.fch_gelu, p.w[KD_LM_FCPROJ_W], p.w[KD_LM_FCPROJ_B], N, 4 * C, C, nt);
        for (size_t i = 0; i < (size_t)N * C; i++) a.res3[i] += a.res2[i];
        res = a.res3;
    }
    const kd_lm_tensor *lw = &m->tensors[m->n_tensors - 2], *lb = &m->tensors[m->n_tensors - 1];
    kd_lm_layernorm_forward(m->a.lnf, m->a.lnf_mean, m->a.lnf_rstd, res, m->params + lw->off, m->params + lb->off, N, C, nt);
    kd_lm_matmul_forward(m->a.logits, m->a.lnf, wte, NULL, N, C, V, nt); // tied head: (N,V) = lnf wte^T
}

void kd_lm_backward(kd_lm *m, const float *dhidden_extra) {
    int B = m->cur_B, T = m->cur_T, C = m->cfg.dim, NH = m->cfg.heads, V = m->cfg.vocab, L = m->cfg.layers;
    int nt = m->threads;
    size_t N = (size_t)B * T, NC = N * C;
    const float *wte = m->params + m->tensors[0].off;
    float *dwte = m->grads + m->tensors[0].off, *dwpe = m->grads + m->tensors[1].off;
    kd_lm_gacts *g = &m->g;
    memset(g->dlnf, 0, NC * sizeof(float));
    kd_lm_matmul_backward(g->dlnf, dwte, NULL, g->dlogits, m->a.lnf, wte, (int)N, C, V);
    if (dhidden_extra)
        for (size_t i = 0; i < NC; i++) g->dlnf[i] += dhidden_extra[i];
    const kd_lm_tensor *lw = &m->tensors[m->n_tensors - 2], *lb = &m->tensors[m->n_tensors - 1];
    layer_acts last;
    layer_acts_at(m, L - 1, &last);
    memset(g->dres, 0, NC * sizeof(float));
    kd_lm_layernorm_backward(g->dres, m->grads + lw->off, m->grads + lb->off, g->dlnf, last.res3, m->params + lw->off,
                             m->a.lnf_mean, m->a.lnf_rstd, (int)N, C, nt);
    for (int l = L - 1; l >= 0; l--) {
        kd_lm_layer p, d;
        layer_acts a;
        kd_lm_layer_ptrs(m, m->params, l, &p);
        kd_lm_layer_ptrs(m, m->grads, l, &d);
        layer_acts_at(m, l, &a);
        const float *res = l == 0 ? m->a.encoded : NULL;
        layer_acts prev;
        if (l > 0) {
            layer_acts_at(m, l - 1, &prev);
            res = prev.res3;
        }
        /* g->dres holds d(res3); res3 = res2 + mlp(res2) */
        memset(g->dfch_gelu, 0, NC * 4 * sizeof(float));
        kd_lm_matmul_backward(g->dfch_gelu, d.w[KD_LM_FCPROJ_W], d.w[KD_LM_FCPROJ_B], g->dres, a.fch_gelu,
                              p.w[KD_LM_FCPROJ_W], (int)N, 4 * C, C);
        memset(g->dfch, 0, NC * 4 * sizeof(float));
        kd_lm_gelu_backward(g->dfch, g->dfch_gelu, a.fch, NC * 4, nt);
        memset(g->dln, 0, NC * sizeof(float));
        kd_lm_matmul_backward(g->dln, d.w[KD_LM_FC_W], d.w[KD_LM_FC_B], g->dfch, a.ln2, p.w[KD_LM_FC_W], (int)N, C, 4 * C);
        kd_lm_layernorm_backward(g->dres, d.w[KD_LM_LN2_W], d.w[KD_LM_LN2_B], g->dln, a.res2, p.w[KD_LM_LN2_W],
                                 a.ln2_mean, a.ln2_rstd, (int)N, C, nt);
        /* g->dres now holds d(res2); res2 = res + attn(res) */
        memset(g->datty, 0, NC * sizeof(float));
        kd_lm_matmul_backward(g->datty, d.w[KD_LM_PROJ_W], d.w[KD_LM_PROJ_B], g->dres, a.atty, p.w[KD_LM_PROJ_W],
                              (int)N, C, C);
        memset(g->dqkv, 0, NC * 3 * sizeof(float));
        kd_lm_attention_backward(g->dqkv, g->datt, g->datty, a.qkv, a.att, B, T, C, NH, nt);
        memset(g->dln, 0, NC * sizeof(float));
        kd_lm_matmul_backward(g->dln, d.w[KD_LM_QKV_W], d.w[KD_LM_QKV_B], g->dqkv, a.ln1, p.w[KD_LM_QKV_W], (int)N, C,
                              3 * C);
        kd_lm_layernorm_backward(g->dres, d.w[KD_LM_LN1_W], d.w[KD_LM_LN1_B], g->dln, res, p.w[KD_LM_LN1_W],
                                 a.ln1_mean, a.ln1_rstd, (int)N, C, nt);
    }
    kd_lm_embed_backward(dwte, dwpe, g->dres, m->tokens, B, T, C);
}
