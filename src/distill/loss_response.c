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
        float mx = z[0];
        for (int c = 1; c < C; c++) mx = z[c] > mx ? z[c] : mx;
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
