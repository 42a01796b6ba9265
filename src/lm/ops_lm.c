/* Transformer ops of the language models (include/distill/lm.h): embedding, LayerNorm, linear,
 * causal self-attention, GELU (tanh), cross-entropy, and the token-level distillation losses.
 * Every matrix product goes through kd_sgemm; OpenMP splits rows or (batch, head) pairs over the
 * nt threads the caller passes, and every reduction runs in a fixed order, so results do not
 * depend on the thread count. */
#include <math.h>
#include <string.h>

#include "distill/lm.h"
#include "distill/ops.h"

#define PAR_ROWS 64 /* parallelise row loops only when there are enough rows to pay for it */

/* ---------------------------------------------------------------- embedding */

void kd_lm_embed_forward(float *out, const int32_t *tok, const float *wte, const float *wpe, int B, int T, int C,
                         int nt) {
    #pragma omp parallel for schedule(static) num_threads(nt) if (B * T > PAR_ROWS)
    for (int i = 0; i < B * T; i++) {
        const float *e = wte + (size_t)tok[i] * C, *p = wpe + (size_t)(i % T) * C;
        float *o = out + (size_t)i * C; // (C)
        for (int c = 0; c < C; c++) o[c] = e[c] + p[c];
    }
}

void kd_lm_embed_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tok, int B, int T, int C) {
    /* serial: several positions may share a token row */
    for (int i = 0; i < B * T; i++) {
        const float *d = dout + (size_t)i * C;
        if (dwte) {
            float *e = dwte + (size_t)tok[i] * C;
            for (int c = 0; c < C; c++) e[c] += d[c];
        }
        if (dwpe) {
            float *p = dwpe + (size_t)(i % T) * C;
            for (int c = 0; c < C; c++) p[c] += d[c];
        }
    }
}

/* ---------------------------------------------------------------- layernorm */

void kd_lm_layernorm_forward(float *out, float *mean, float *rstd, const float *in, const float *w, const float *b,
                             int N, int C, int nt) {
    #pragma omp parallel for schedule(static) num_threads(nt) if (N > PAR_ROWS)
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float m = 0.f;
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        float v = 0.f;
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        v /= C;
        float r = 1.f / sqrtf(v + 1e-5f);
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * r * w[c] + b[c];
        mean[n] = m;
        rstd[n] = r;
    }
}

void kd_lm_layernorm_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                              const float *mean, const float *rstd, int N, int C, int nt) {
    if (din) {
        #pragma omp parallel for schedule(static) num_threads(nt) if (N > PAR_ROWS)
        for (int n = 0; n < N; n++) {
            const float *x = in + (size_t)n * C, *d = dout + (size_t)n * C;
            float m = mean[n], r = rstd[n];
            /* din = r * (g - mean(g) - xhat * mean(g * xhat)), g = dout * w */
            float sg = 0.f, sgx = 0.f;
            for (int c = 0; c < C; c++) {
                float g = d[c] * w[c], xh = (x[c] - m) * r;
                sg += g;
                sgx += g * xh;
            }
            sg /= C;
            sgx /= C;
            float *di = din + (size_t)n * C;
            for (int c = 0; c < C; c++) di[c] += r * (d[c] * w[c] - sg - (x[c] - m) * r * sgx);
        }
    }
    /* parameter gradients: rows in order (deterministic) */
    for (int n = 0; n < N && (dw || db); n++) {
        const float *x = in + (size_t)n * C, *d = dout + (size_t)n * C;
        float m = mean[n], r = rstd[n];
        for (int c = 0; c < C; c++) {
            if (dw) dw[c] += d[c] * (x[c] - m) * r;
            if (db) db[c] += d[c];
        }
    }
}

/* ---------------------------------------------------------------- linear */

void kd_lm_matmul_forward(float *out, const float *in, const float *w, const float *b, int N, int IC, int OC, int nt) {
    kd_sgemm(0, 1, N, OC, IC, 1.f, in, IC, w, IC, 0.f, out, OC); // (N, OC)
    if (!b) return;
    #pragma omp parallel for schedule(static) num_threads(nt) if (N > PAR_ROWS)
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * OC;
        for (int k = 0; k < OC; k++) o[k] += b[k];
    }
}

void kd_lm_matmul_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                           int N, int IC, int OC) {
    if (din) kd_sgemm(0, 0, N, IC, OC, 1.f, dout, OC, w, IC, 1.f, din, IC); // (N, IC)
    if (dw) kd_sgemm(1, 0, OC, IC, N, 1.f, dout, OC, in, IC, 1.f, dw, IC);  // (OC, IC)
    if (db)
        for (int n = 0; n < N; n++) { /* row order: deterministic, contiguous */
            const float *d = dout + (size_t)n * OC;
            for (int k = 0; k < OC; k++) db[k] += d[k];
        }
}

/* ---------------------------------------------------------------- attention */

void kd_lm_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH, int nt) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.f / sqrtf((float)hs);
    #pragma omp parallel for schedule(static) num_threads(nt) if (B * NH > 1)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        const float *q = qkv + (size_t)b * T * C3 + (size_t)h * hs; // (T, hs), row stride 3C
        const float *k = q + C, *v = q + 2 * C;
        float *a = att + (size_t)bh * T * T;                         // (T, T)
        kd_sgemm(0, 1, T, T, hs, scale, q, C3, k, C3, 0.f, a, T);
        for (int t = 0; t < T; t++) {
            float *r = a + (size_t)t * T;
            float mx = r[0];
            for (int s = 1; s <= t; s++) mx = r[s] > mx ? r[s] : mx;
            float sum = 0.f;
            for (int s = 0; s <= t; s++) {
                r[s] = expf(r[s] - mx);
                sum += r[s];
            }
            float inv = 1.f / sum;
            for (int s = 0; s <= t; s++) r[s] *= inv;
            for (int s = t + 1; s < T; s++) r[s] = 0.f; /* the causal mask */
        }
        float *o = out + (size_t)b * T * C + (size_t)h * hs; // (T, hs), row stride C
        kd_sgemm(0, 0, T, hs, T, 1.f, a, T, v, C3, 0.f, o, C);
    }
}

void kd_lm_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv, const float *att, int B,
                              int T, int C, int NH, int nt) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.f / sqrtf((float)hs);
    #pragma omp parallel for schedule(static) num_threads(nt) if (B * NH > 1)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        size_t qo = (size_t)b * T * C3 + (size_t)h * hs;
        const float *q = qkv + qo, *k = q + C, *v = q + 2 * C;
        float *dq = dqkv + qo, *dk = dq + C, *dv = dq + 2 * C;
        const float *a = att + (size_t)bh * T * T;
        float *da = datt + (size_t)bh * T * T;
        const float *d = dout + (size_t)b * T * C + (size_t)h * hs;
        kd_sgemm(0, 1, T, T, hs, 1.f, d, C, v, C3, 0.f, da, T);  // datt (T,T) = dout v^T
        kd_sgemm(1, 0, T, hs, T, 1.f, a, T, d, C, 1.f, dv, C3);  // dv += att^T dout
        for (int t = 0; t < T; t++) { /* softmax backward, in place: dpre = a * (da - sum(a * da)) */
            const float *ar = a + (size_t)t * T;
            float *dr = da + (size_t)t * T;
            float dot = 0.f;
            for (int s = 0; s <= t; s++) dot += ar[s] * dr[s];
            for (int s = 0; s <= t; s++) dr[s] = ar[s] * (dr[s] - dot);
            for (int s = t + 1; s < T; s++) dr[s] = 0.f;
        }
        kd_sgemm(0, 0, T, hs, T, scale, da, T, k, C3, 1.f, dq, C3); // dq += scale dpre k
        kd_sgemm(1, 0, T, hs, T, scale, da, T, q, C3, 1.f, dk, C3); // dk += scale dpre^T q
    }
}

/* ---------------------------------------------------------------- GELU (tanh) */

#define GELU_S 0.7978845608028654f /* sqrt(2/pi) */

/* tanh through one expf: glibc's tanhf (via expm1f) took half of a training step. Saturates
 * correctly (expf -> inf gives 1, -> 0 gives -1); the absolute error stays ~1e-7, which is what
 * GELU's 0.5 x (1 + tanh) needs. */
static inline float tanh_fast(float u) { return 1.f - 2.f / (1.f + expf(2.f * u)); }

void kd_lm_gelu_forward(float *out, const float *in, size_t n, int nt) {
    #pragma omp parallel for schedule(static) num_threads(nt) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        out[i] = 0.5f * x * (1.f + tanh_fast(GELU_S * (x + 0.044715f * x * x * x)));
    }
}

void kd_lm_gelu_backward(float *din, const float *dout, const float *in, size_t n, int nt) {
    #pragma omp parallel for schedule(static) num_threads(nt) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        float th = tanh_fast(GELU_S * (x + 0.044715f * x * x * x));
        float d = 0.5f * (1.f + th) + 0.5f * x * (1.f - th * th) * GELU_S * (1.f + 3.f * 0.044715f * x * x);
        din[i] += dout[i] * d;
    }
}

/* ---------------------------------------------------------------- losses */

void kd_lm_softmax(float *p, const float *logits, int N, int V, float T, int nt) {
    #pragma omp parallel for schedule(static) num_threads(nt) if (N > PAR_ROWS)
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * V;
        float *q = p + (size_t)n * V;
        float mx = kd_row_max(z, V), s = 0.f;
        for (int v = 0; v < V; v++) {
            q[v] = expf((z[v] - mx) / T);
            s += q[v];
        }
        float inv = 1.f / s;
        for (int v = 0; v < V; v++) q[v] *= inv;
    }
}

float kd_lm_crossentropy_forward(float *probs, const float *logits, const int32_t *targets, int N, int V, int nt) {
    kd_lm_softmax(probs, logits, N, V, 1.f, nt);
    double total = 0.0;
    for (int n = 0; n < N; n++) {
        float p = probs[(size_t)n * V + targets[n]];
        total += -log(p > 1e-30f ? (double)p : 1e-30); /* clamp: a p that underflowed is ~ e^-69 */
    }
    return (float)(total / N);
}

void kd_lm_crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets, int N, int V,
                                 float scale, int nt) {
    float k = scale / (float)N;
    #pragma omp parallel for schedule(static) num_threads(nt) if (N > PAR_ROWS)
    for (int n = 0; n < N; n++) {
        float *d = dlogits + (size_t)n * V;
        const float *p = probs + (size_t)n * V;
        for (int v = 0; v < V; v++) d[v] += k * p[v];
        d[targets[n]] -= k;
    }
}

/* log sum_v exp((z_v - mx) / T) of one row (the student's log-softmax at T is (z - mx) / T - lse). */
static float row_lse(const float *z, int V, float mx, float T) {
    float s = 0.f;
    for (int v = 0; v < V; v++) s += expf((z[v] - mx) / T);
    return logf(s);
}

/* KL(pt || ps) = sum pt (log pt - log ps); d/dz (T^2 KL) = T (ps - pt). Serial over rows: the
 * sum stays in a fixed order, and the cost (N*V exps) is small beside the model's GEMMs. */
float kd_lm_forward_kl(float *dlogits, const float *s_logits, const float *pt, int N, int V, float T, float scale) {
    double total = 0.0;
    float k = scale * T / (float)N;
    for (int n = 0; n < N; n++) {
        const float *z = s_logits + (size_t)n * V, *p = pt + (size_t)n * V;
        float mx = kd_row_max(z, V), lse = row_lse(z, V, mx, T), kl = 0.f;
        float *d = dlogits ? dlogits + (size_t)n * V : NULL;
        for (int v = 0; v < V; v++) {
            float lq = (z[v] - mx) / T - lse;
            if (p[v] > 0.f) kl += p[v] * (logf(p[v]) - lq);
            if (d) d[v] += k * (expf(lq) - p[v]);
        }
        total += kl;
    }
    return (float)((double)T * T * total / N);
}

/* KL(ps || pt) = sum ps (log ps - log pt). With r_v = log ps_v - log pt_v and KL = sum ps r:
 * d KL / dz_j = (1/T) ps_j (r_j - KL), so d(T^2 KL)/dz_j = T ps_j (r_j - KL). The teacher's log
 * probabilities are floored at log(1e-30) so a zero from underflow stays finite. */
float kd_lm_reverse_kl(float *dlogits, const float *s_logits, const float *pt, int N, int V, float T, float scale) {
    double total = 0.0;
    float k = scale * T / (float)N;
    for (int n = 0; n < N; n++) {
        const float *z = s_logits + (size_t)n * V, *p = pt + (size_t)n * V;
        float mx = kd_row_max(z, V), lse = row_lse(z, V, mx, T), kl = 0.f;
        for (int v = 0; v < V; v++) {
            float lq = (z[v] - mx) / T - lse;
            kl += expf(lq) * (lq - logf(p[v] > 1e-30f ? p[v] : 1e-30f));
        }
        if (dlogits) {
            float *d = dlogits + (size_t)n * V;
            for (int v = 0; v < V; v++) {
                float lq = (z[v] - mx) / T - lse;
                d[v] += k * expf(lq) * (lq - logf(p[v] > 1e-30f ? p[v] : 1e-30f) - kl);
            }
        }
        total += kl;
    }
    return (float)((double)T * T * total / N);
}

float kd_lm_cosine_loss(float *dhs, const float *hs, const float *ht, int N, int C, float scale) {
    double total = 0.0;
    for (int n = 0; n < N; n++) {
        const float *a = hs + (size_t)n * C, *b = ht + (size_t)n * C;
        double ab = 0, aa = 0, bb = 0;
        for (int c = 0; c < C; c++) {
            ab += (double)a[c] * b[c];
            aa += (double)a[c] * a[c];
            bb += (double)b[c] * b[c];
        }
        double na = sqrt(aa) + 1e-12, nb = sqrt(bb) + 1e-12, cs = ab / (na * nb);
        total += 1.0 - cs;
        if (dhs) { /* d(1 - cos)/da = -(b / (|a||b|) - cos a / |a|^2) */
            float *d = dhs + (size_t)n * C;
            double k = scale / (double)N;
            for (int c = 0; c < C; c++) d[c] += (float)(-k * (b[c] / (na * nb) - cs * a[c] / (na * na)));
        }
    }
    return (float)(total / N);
}
