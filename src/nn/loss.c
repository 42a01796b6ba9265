/* Softmax, log-softmax (with temperature) and cross-entropy with label smoothing, as PyTorch's
 * F.cross_entropy(label_smoothing=eps) averaged over the batch. Max-subtracted for stability. */
#include <math.h>

#include "distill/ops.h"

float kd_row_max(const float *z, int C) {
    float mx = z[0];
    for (int c = 1; c < C; c++) mx = z[c] > mx ? z[c] : mx;
    return mx;
}

void kd_softmax_forward(float *probs, const float *logits, int B, int C, float T) {
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * C;
        float *p = probs + (size_t)b * C;
        float mx = kd_row_max(z, C);
        double s = 0.0;
        for (int c = 0; c < C; c++) {
            p[c] = expf((z[c] - mx) / T);
            s += p[c];
        }
        float inv = (float)(1.0 / s);
        for (int c = 0; c < C; c++) p[c] *= inv;
    }
}

void kd_log_softmax_forward(float *out, const float *logits, int B, int C, float T) {
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * C;
        float *o = out + (size_t)b * C;
        float mx = kd_row_max(z, C);
        double s = 0.0;
        for (int c = 0; c < C; c++) s += exp((double)(z[c] - mx) / T);
        float lse = (float)log(s);
        for (int c = 0; c < C; c++) o[c] = (z[c] - mx) / T - lse;
    }
}

float kd_cross_entropy_mix_forward(float *probs, const float *logits, const int32_t *labels, const int32_t *labels2,
                                   const float *lam, int B, int C, float smoothing) {
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * C;
        float mx = kd_row_max(z, C);
        double s = 0.0;
        for (int c = 0; c < C; c++) s += exp((double)(z[c] - mx));
        double lse = log(s) + mx, mean_logp = 0.0;
        for (int c = 0; c < C; c++) {
            probs[(size_t)b * C + c] = (float)exp(z[c] - lse);
            mean_logp += z[c] - lse;
        }
        double nll = lse - z[labels[b]];
        if (lam) nll = lam[b] * nll + (1.0 - lam[b]) * (lse - z[labels2[b]]);
        total += (1.0 - smoothing) * nll - smoothing * mean_logp / C;
    }
    return (float)(total / B);
}

float kd_cross_entropy_forward(float *probs, const float *logits, const int32_t *labels, int B, int C,
                               float smoothing) {
    return kd_cross_entropy_mix_forward(probs, logits, labels, NULL, NULL, B, C, smoothing);
}

void kd_cross_entropy_mix_backward(float *dlogits, const float *probs, const int32_t *labels, const int32_t *labels2,
                                   const float *lam, int B, int C, float smoothing, float scale) {
    float k = scale / (float)B, off = smoothing / (float)C;
    if (!lam) {
        for (int b = 0; b < B; b++)
            for (int c = 0; c < C; c++) {
                float target = off + (c == labels[b] ? 1.f - smoothing : 0.f);
                dlogits[(size_t)b * C + c] += k * (probs[(size_t)b * C + c] - target);
            }
        return;
    }
    /* The smoothed part for every class, then each label's share taken off at its class. (Written
     * so, not as one target per class: GCC 12 at -O3 -march=native vectorised that loop's
     * lam * (c == label) wrongly on AVX-512, test_mix's mixed-CE check catches it.) */
    for (int b = 0; b < B; b++) {
        float *d = dlogits + (size_t)b * C;
        const float *p = probs + (size_t)b * C;
        for (int c = 0; c < C; c++) d[c] += k * (p[c] - off);
        d[labels[b]] -= k * (1.f - smoothing) * lam[b];
        d[labels2[b]] -= k * (1.f - smoothing) * (1.f - lam[b]);
    }
}

void kd_cross_entropy_backward(float *dlogits, const float *probs, const int32_t *labels, int B, int C,
                               float smoothing, float scale) {
    kd_cross_entropy_mix_backward(dlogits, probs, labels, NULL, NULL, B, C, smoothing, scale);
}
