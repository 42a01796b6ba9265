/* Response-based distillation loss (Hinton et al. 2015): KL divergence between the teacher's and
 * the student's softmax at temperature T, scaled by T^2 so its gradients keep their size as T
 * changes. The gradient w.r.t. the student's logits is T * (ps - pt) / B. */
#include <math.h>

#include "distill/distill.h"
#include "distill/ops.h"

void kd_soft_targets(float *pt, const float *t_logits, int B, int C, float T) { kd_softmax_forward(pt, t_logits, B, C, T); }

float kd_kl_div_forward(float *ps, const float *s_logits, const float *pt, int B, int C, float T) {
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *z = s_logits + (size_t)b * C, *p = pt + (size_t)b * C;
        float *q = ps + (size_t)b * C;
        float mx = kd_row_max(z, C);
        double s = 0.0;
        for (int c = 0; c < C; c++) s += exp((double)(z[c] - mx) / T);
        double lse = log(s), kl = 0.0;
        for (int c = 0; c < C; c++) {
            double logq = (z[c] - mx) / T - lse;
            q[c] = (float)exp(logq);
            if (p[c] > 0.f) kl += p[c] * (log((double)p[c]) - logq);
        }
        total += kl;
    }
    return (float)((double)T * T * total / B);
}

void kd_kl_div_backward(float *dlogits, const float *ps, const float *pt, int B, int C, float T, float scale) {
    float k = scale * T / (float)B;
    for (size_t i = 0; i < (size_t)B * C; i++) dlogits[i] += k * (ps[i] - pt[i]);
}

/* Decoupled KD (Zhao et al. 2022): the KL splits into a binary target-class part (TCKD: target vs
 * the rest) and a part over the non-target classes alone (NCKD), weighted separately:
 * loss = T^2 * mean_b (alpha * KL(bt || bs) + beta * KL(pt_hat || ps_hat)).
 * Gradients (per sample, with p = softmax(s/T), g the target class):
 *   TCKD: d/ds_j = -T * A * p_g * (delta_gj - p_j), A = bt_g / bs_g - (1 - bt_g) / (1 - bs_g)
 *   NCKD: d/ds_j = T * (ps_hat_j - pt_hat_j) for j != g, 0 for g. */
float kd_dkd_forward_backward(float *dlogits, const float *s_logits, const float *pt, const int32_t *labels, int B,
                              int C, float T, float alpha, float beta, float scale) {
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *z = s_logits + (size_t)b * C, *t = pt + (size_t)b * C;
        int g = labels[b];
        float mx = kd_row_max(z, C);
        double s = 0.0, s_nt = 0.0;
        for (int c = 0; c < C; c++) {
            double e = exp((double)(z[c] - mx) / T);
            s += e;
            if (c != g) s_nt += e;
        }
        double pg = exp((double)(z[g] - mx) / T) / s;
        double tg = t[g];
        const double eps = 1e-12;
        /* TCKD */
        double bs1 = fmin(fmax(pg, eps), 1 - eps), bt1 = fmin(fmax(tg, eps), 1 - eps);
        double tckd = bt1 * log(bt1 / bs1) + (1 - bt1) * log((1 - bt1) / (1 - bs1));
        /* NCKD over j != g: ps_hat = e_j / s_nt, pt_hat = t_j / (1 - t_g) */
        double nckd = 0.0, tn = 1.0 - tg;
        for (int c = 0; c < C; c++) {
            if (c == g) continue;
            double qs = exp((double)(z[c] - mx) / T) / s_nt, qt = tn > eps ? t[c] / tn : 0.0;
            if (qt > 0) nckd += qt * log(qt / fmax(qs, 1e-30));
        }
        total += alpha * tckd + beta * nckd;
        if (!dlogits) continue;
        double A = bt1 / bs1 - (1 - bt1) / (1 - bs1), k = scale * T / B;
        float *d = dlogits + (size_t)b * C;
        for (int c = 0; c < C; c++) {
            double pc = exp((double)(z[c] - mx) / T) / s;
            double grad = -alpha * A * pg * ((c == g) - pc);
            if (c != g) {
                double qs = exp((double)(z[c] - mx) / T) / s_nt, qt = tn > eps ? t[c] / tn : 0.0;
                grad += beta * (qs - qt);
            }
            d[c] += (float)(k * grad);
        }
    }
    return (float)((double)T * T * total / B);
}
