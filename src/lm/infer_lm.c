/* Inference of the language models one token at a time with a key/value cache, with fp32 weights
 * (matrix-vector products through kd_sgemm) or quantized ones (the traits' dot kernels), and
 * sampling (temperature, top-k, top-p) from a seeded generator so a seed reproduces a text. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "distill/lm.h"
#include "distill/ops.h"

typedef struct qmat {
    const float *f;   /* fp32 weights (OC, IC), or NULL */
    void *q;          /* quantized rows, row_bytes each */
    size_t row_bytes;
    int OC, IC;
} qmat;

struct kd_lm_infer {
    const kd_lm *m;
    kd_lm_qtype qt;
    const kd_lm_qtraits *tr;
    qmat *mats;                 /* per layer: qkv, proj, fc, fcproj; then wte */
    float *kc, *vc;             /* (L, ctx, C) */
    float *x, *ln, *qkv, *atty, *h, *hg, *att, *logits, *tmp, mean, rstd;
    size_t weight_bytes;
};

static kd_status qmat_init(qmat *q, const kd_lm_infer *inf, const float *w, int OC, int IC, size_t *bytes) {
    q->OC = OC;
    q->IC = IC;
    q->f = NULL;
    q->q = NULL;
    if (inf->qt == KD_LM_F32) {
        q->f = w;
        *bytes += (size_t)OC * IC * sizeof(float);
        return KD_STATUS_OK;
    }
    q->row_bytes = (size_t)IC / (size_t)inf->tr->block * inf->tr->bytes;
    q->q = malloc((size_t)OC * q->row_bytes);
    if (!q->q) return KD_STATUS_NO_MEMORY;
    for (int o = 0; o < OC; o++) inf->tr->from_float((char *)q->q + o * q->row_bytes, w + (size_t)o * IC, (size_t)IC);
    *bytes += (size_t)OC * q->row_bytes;
    return KD_STATUS_OK;
}

/* out (OC) = W x + b */
static void qmat_mv(const kd_lm_infer *inf, const qmat *q, float *out, const float *x, const float *b) {
    if (q->f) {
        kd_sgemm(0, 1, 1, q->OC, q->IC, 1.f, x, q->IC, q->f, q->IC, 0.f, out, q->OC);
    } else {
        #pragma omp parallel for schedule(static) num_threads(inf->m->threads) if (q->OC >= 256)
        for (int o = 0; o < q->OC; o++) out[o] = inf->tr->dot((const char *)q->q + o * q->row_bytes, x, q->IC);
    }
    if (b)
        for (int o = 0; o < q->OC; o++) out[o] += b[o];
}

void kd_lm_infer_free(kd_lm_infer *inf) {
    if (!inf) return;
    if (inf->mats)
        for (int i = 0; i < 4 * inf->m->cfg.layers + 1; i++) free(inf->mats[i].q);
    free(inf->mats);
    free(inf->kc);
    free(inf->vc);
    free(inf->x);
    free(inf);
}

kd_status kd_lm_infer_create(kd_lm_infer **out, const kd_lm *m, kd_lm_qtype qt, kd_error *err) {
    *out = NULL;
    const kd_lm_config *c = &m->cfg;
    const kd_lm_qtraits *tr = kd_lm_qtype_traits(qt);
    if (c->dim % tr->block)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "%s weights need dim a multiple of %d (got %d)", tr->name, tr->block,
                            c->dim);
    kd_lm_infer *inf = calloc(1, sizeof *inf);
    if (!inf) return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    inf->m = m;
    inf->qt = qt;
    inf->tr = tr;
    size_t L = (size_t)c->layers, C = (size_t)c->dim, T = (size_t)c->ctx, V = (size_t)c->vocab;
    inf->mats = calloc(4 * L + 1, sizeof *inf->mats);
    inf->kc = malloc(L * T * C * sizeof(float));
    inf->vc = malloc(L * T * C * sizeof(float));
    size_t nb = C + C + 3 * C + C + 4 * C + 4 * C + T + V + V;
    inf->x = malloc(nb * sizeof(float));
    kd_status s = (!inf->mats || !inf->kc || !inf->vc || !inf->x) ? KD_STATUS_NO_MEMORY : KD_STATUS_OK;
    if (!s) {
        float *p = inf->x;
        inf->ln = p += C;
        inf->qkv = p += C;
        inf->atty = p += 3 * C;
        inf->h = p += C;
        inf->hg = p += 4 * C;
        inf->att = p += 4 * C;
        inf->logits = p += T;
        inf->tmp = p += V;
    }
    size_t bytes = 0;
    for (size_t l = 0; l < L && !s; l++) {
        kd_lm_layer w;
        kd_lm_layer_ptrs(m, m->params, (int)l, &w);
        if (qmat_init(&inf->mats[4 * l], inf, w.w[KD_LM_QKV_W], 3 * c->dim, c->dim, &bytes) ||
            qmat_init(&inf->mats[4 * l + 1], inf, w.w[KD_LM_PROJ_W], c->dim, c->dim, &bytes) ||
            qmat_init(&inf->mats[4 * l + 2], inf, w.w[KD_LM_FC_W], 4 * c->dim, c->dim, &bytes) ||
            qmat_init(&inf->mats[4 * l + 3], inf, w.w[KD_LM_FCPROJ_W], c->dim, 4 * c->dim, &bytes))
            s = KD_STATUS_NO_MEMORY;
    }
    if (!s && qmat_init(&inf->mats[4 * L], inf, m->params + m->tensors[0].off, c->vocab, c->dim, &bytes))
        s = KD_STATUS_NO_MEMORY;
    if (s) {
        kd_lm_infer_free(inf);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "cannot allocate the inference buffers");
    }
    /* everything else stays fp32: position embeddings, LayerNorms, biases */
    inf->weight_bytes = bytes + (m->n_params - (size_t)V * C - L * 12 * C * C) * sizeof(float);
    *out = inf;
    return KD_STATUS_OK;
}

size_t kd_lm_infer_weight_bytes(const kd_lm_infer *inf) { return inf->weight_bytes; }

const float *kd_lm_infer_step(kd_lm_infer *inf, int token, int pos) {
    const kd_lm *m = inf->m;
    int C = m->cfg.dim, NH = m->cfg.heads, hs = C / NH, L = m->cfg.layers, T = m->cfg.ctx, nt = m->threads;
    const float *wpe = m->params + m->tensors[1].off + (size_t)pos * C;
    const qmat *E = &inf->mats[4 * L];
    if (E->f) memcpy(inf->x, E->f + (size_t)token * C, (size_t)C * sizeof(float));
    else inf->tr->to_float(inf->x, (const char *)E->q + (size_t)token * E->row_bytes, (size_t)C);
    for (int c = 0; c < C; c++) inf->x[c] += wpe[c];
    float scale = 1.f / sqrtf((float)hs);
    for (int l = 0; l < L; l++) {
        kd_lm_layer w;
        kd_lm_layer_ptrs(m, m->params, l, &w);
        const qmat *M = &inf->mats[4 * l];
        float *kc = inf->kc + ((size_t)l * T) * C, *vc = inf->vc + ((size_t)l * T) * C;
        kd_lm_layernorm_forward(inf->ln, &inf->mean, &inf->rstd, inf->x, w.w[KD_LM_LN1_W], w.w[KD_LM_LN1_B], 1, C, nt);
        qmat_mv(inf, &M[0], inf->qkv, inf->ln, w.w[KD_LM_QKV_B]);
        memcpy(kc + (size_t)pos * C, inf->qkv + C, (size_t)C * sizeof(float));
        memcpy(vc + (size_t)pos * C, inf->qkv + 2 * C, (size_t)C * sizeof(float));
        for (int h = 0; h < NH; h++) {
            const float *q = inf->qkv + h * hs;
            float mx = -INFINITY, sum = 0.f;
            for (int s = 0; s <= pos; s++) {
                const float *k = kc + (size_t)s * C + h * hs;
                float a = 0.f;
                for (int i = 0; i < hs; i++) a += q[i] * k[i];
                inf->att[s] = a * scale;
                mx = fmaxf(mx, inf->att[s]);
            }
            for (int s = 0; s <= pos; s++) {
                inf->att[s] = expf(inf->att[s] - mx);
                sum += inf->att[s];
            }
            float *o = inf->atty + h * hs;
            for (int i = 0; i < hs; i++) o[i] = 0.f;
            for (int s = 0; s <= pos; s++) {
                const float *v = vc + (size_t)s * C + h * hs;
                float a = inf->att[s] / sum;
                for (int i = 0; i < hs; i++) o[i] += a * v[i];
            }
        }
        qmat_mv(inf, &M[1], inf->h, inf->atty, w.w[KD_LM_PROJ_B]);
        for (int c = 0; c < C; c++) inf->x[c] += inf->h[c];
        kd_lm_layernorm_forward(inf->ln, &inf->mean, &inf->rstd, inf->x, w.w[KD_LM_LN2_W], w.w[KD_LM_LN2_B], 1, C, nt);
        qmat_mv(inf, &M[2], inf->h, inf->ln, w.w[KD_LM_FC_B]);
        kd_lm_gelu_forward(inf->hg, inf->h, (size_t)4 * C, nt);
        qmat_mv(inf, &M[3], inf->h, inf->hg, w.w[KD_LM_FCPROJ_B]);
        for (int c = 0; c < C; c++) inf->x[c] += inf->h[c];
    }
    const kd_lm_tensor *lw = &m->tensors[m->n_tensors - 2], *lb = &m->tensors[m->n_tensors - 1];
    kd_lm_layernorm_forward(inf->ln, &inf->mean, &inf->rstd, inf->x, m->params + lw->off, m->params + lb->off, 1, C,
                            nt);
    qmat_mv(inf, E, inf->logits, inf->ln, NULL);
    return inf->logits;
}

/* ---------------------------------------------------------------- sampling */

/* indices idx[0..n) sorted by p descending, ties by index (deterministic); shell sort, n is small */
static void sort_desc(float *idx, const float *p, int n) {
    for (int gap = n / 2; gap > 0; gap /= 2)
        for (int i = gap; i < n; i++) {
            float t = idx[i];
            int j = i;
            while (j >= gap && (p[(int)idx[j - gap]] < p[(int)t] ||
                                (p[(int)idx[j - gap]] == p[(int)t] && idx[j - gap] > t))) {
                idx[j] = idx[j - gap];
                j -= gap;
            }
            idx[j] = t;
        }
}

int kd_lm_sample(const float *logits, int V, const kd_lm_sample_config *c, kd_rng *rng, float *scratch) {
    int best = kd_argmax(logits, V);
    if (!(c->temperature > 0.f)) return best;
    float *p = scratch, *idx = scratch + V;
    kd_lm_softmax(p, logits, 1, V, c->temperature, 1); /* one row: serial */
    int n = V;
    if (c->top_k > 0 || c->top_p < 1.f) {
        for (int v = 0; v < V; v++) idx[v] = (float)v;
        sort_desc(idx, p, V);
        if (c->top_k > 0 && c->top_k < n) n = c->top_k;
        if (c->top_p < 1.f) {
            float cum = 0.f;
            for (int i = 0; i < n; i++) {
                cum += p[(int)idx[i]];
                if (cum >= c->top_p) {
                    n = i + 1;
                    break;
                }
            }
        }
        float tot = 0.f;
        for (int i = 0; i < n; i++) tot += p[(int)idx[i]];
        float r = kd_rng_uniform(rng) * tot, acc = 0.f;
        for (int i = 0; i < n; i++) {
            acc += p[(int)idx[i]];
            if (r < acc) return (int)idx[i];
        }
        return (int)idx[n - 1];
    }
    float r = kd_rng_uniform(rng), acc = 0.f;
    for (int v = 0; v < V; v++) {
        acc += p[v];
        if (r < acc) return v;
    }
    return best; /* rounding left r above the total */
}

kd_status kd_lm_generate(kd_lm_infer *inf, const uint8_t *prompt, size_t n_prompt, long long n,
                         const kd_lm_sample_config *c, int (*emit)(void *ctx, int token), void *emit_ctx,
                         kd_error *err) {
    const kd_lm *m = inf->m;
    int T = m->cfg.ctx, V = m->cfg.vocab;
    if (n < 0) return kd_error_set(err, KD_STATUS_BAD_ARG, "number of tokens must be >= 0");
    int32_t *ptok = NULL;
    kd_status s = kd_lm_tokenizer_encode(m->tok, prompt, n_prompt, &ptok, &n_prompt, err);
    if (s) return s;
    int *hist = malloc((size_t)T * sizeof(int));
    float *scratch = malloc(2 * (size_t)V * sizeof(float));
    if (!hist || !scratch) {
        free(ptok);
        free(hist);
        free(scratch);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    }
    kd_rng rng;
    kd_rng_seed(&rng, c->seed, 0x67656e);
    int pos = 0;
    const float *logits = NULL;
    /* feed the prompt (its last T tokens); an empty prompt starts from a newline */
    size_t start = n_prompt > (size_t)T ? n_prompt - (size_t)T : 0;
    if (n_prompt == 0) {
        hist[0] = '\n';
        logits = kd_lm_infer_step(inf, '\n', pos++);
    }
    for (size_t i = start; i < n_prompt; i++) {
        hist[pos] = ptok[i] < V ? ptok[i] : 0;
        logits = kd_lm_infer_step(inf, hist[pos], pos);
        pos++;
    }
    for (long long i = 0; i < n; i++) {
        int tok = kd_lm_sample(logits, V, c, &rng, scratch);
        if (emit && emit(emit_ctx, tok)) break;
        if (i + 1 == n) break;
        if (pos == T) { /* context full: keep the last half and feed it again */
            int keep = T / 2;
            memmove(hist, hist + T - keep, (size_t)keep * sizeof(int));
            for (pos = 0; pos < keep; pos++) kd_lm_infer_step(inf, hist[pos], pos);
        }
        hist[pos] = tok;
        logits = kd_lm_infer_step(inf, tok, pos);
        pos++;
    }
    free(ptok);
    free(hist);
    free(scratch);
    return KD_STATUS_OK;
}
