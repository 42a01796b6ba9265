/* Batch normalisation over (B, C, HW), as PyTorch's BatchNorm1d/2d: batch statistics in training
 * (biased variance to normalise, unbiased for the running estimate), running statistics in
 * evaluation. Statistics are summed in double, one channel per thread, in a fixed order. */
#include <math.h>

#include "distill/ops.h"
#include "nn/ops_internal.h"

/* One plane's sum and sum of squared deviations from m, in float with SIMD partial sums (a fixed
 * order for a given build). */
static inline float plane_sum(const float *x, int HW) {
    float p = 0.f;
#pragma omp simd reduction(+ : p)
    for (int i = 0; i < HW; i++) p += x[i];
    return p;
}

static inline float plane_sqdev(const float *x, int HW, float m) {
    float p = 0.f;
#pragma omp simd reduction(+ : p)
    for (int i = 0; i < HW; i++) {
        float d = x[i] - m;
        p += d * d;
    }
    return p;
}

void kd_batchnorm_forward_train(float *out, float *save_mean, float *save_invstd, float *running_mean,
                                float *running_var, const float *in, const float *gamma, const float *beta,
                                int B, int C, int HW, float eps, float momentum, int threads) {
    double n = (double)B * HW;
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(threads))
    for (int c = 0; c < C; c++) {
        /* Each plane (HW values) is summed in float with SIMD partial sums (a fixed order for a given
         * build, so still deterministic); planes are summed in double. */
        double s = 0.0, ss = 0.0;
        for (int b = 0; b < B; b++) s += plane_sum(in + ((size_t)b * C + c) * HW, HW);
        double mean = s / n;
        float fm = (float)mean;
        for (int b = 0; b < B; b++) ss += plane_sqdev(in + ((size_t)b * C + c) * HW, HW, fm);
        double var = ss / n;
        float invstd = (float)(1.0 / sqrt(var + eps));
        save_mean[c] = (float)mean;
        save_invstd[c] = invstd;
        running_mean[c] = (1.f - momentum) * running_mean[c] + momentum * (float)mean;
        running_var[c] = (1.f - momentum) * running_var[c] + momentum * (float)(n > 1 ? ss / (n - 1) : var);
        float sc = gamma[c] * invstd, sh = beta[c] - (float)mean * sc;
        for (int b = 0; b < B; b++) {
            const float *x = in + ((size_t)b * C + c) * HW;
            float *y = out + ((size_t)b * C + c) * HW;
            for (int i = 0; i < HW; i++) y[i] = x[i] * sc + sh;
        }
    }
}

void kd_batchnorm_forward_eval(float *out, const float *in, const float *gamma, const float *beta,
                               const float *running_mean, const float *running_var, int B, int C, int HW,
                               float eps, int threads) {
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(threads))
    for (int c = 0; c < C; c++) {
        float sc = gamma[c] / sqrtf(running_var[c] + eps), sh = beta[c] - running_mean[c] * sc;
        for (int b = 0; b < B; b++) {
            const float *x = in + ((size_t)b * C + c) * HW;
            float *y = out + ((size_t)b * C + c) * HW;
            for (int i = 0; i < HW; i++) y[i] = x[i] * sc + sh;
        }
    }
}

void kd_batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                           const float *gamma, const float *save_mean, const float *save_invstd, int B, int C,
                           int HW, int threads) {
    double n = (double)B * HW;
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(threads))
    for (int c = 0; c < C; c++) {
        float mean = save_mean[c], invstd = save_invstd[c];
        double sdy = 0.0, sdyx = 0.0;
        for (int b = 0; b < B; b++) {
            const float *x = in + ((size_t)b * C + c) * HW, *dy = dout + ((size_t)b * C + c) * HW;
            float p = 0.f, q = 0.f;
#pragma omp simd reduction(+ : p, q)
            for (int i = 0; i < HW; i++) {
                p += dy[i];
                q += dy[i] * ((x[i] - mean) * invstd);
            }
            sdy += p;
            sdyx += q;
        }
        if (dgamma) dgamma[c] += (float)sdyx;
        if (dbeta) dbeta[c] += (float)sdy;
        if (!din) continue;
        float k = gamma[c] * invstd, a = (float)(sdy / n), bq = (float)(sdyx / n);
        for (int b = 0; b < B; b++) {
            const float *x = in + ((size_t)b * C + c) * HW, *dy = dout + ((size_t)b * C + c) * HW;
            float *dx = din + ((size_t)b * C + c) * HW;
            for (int i = 0; i < HW; i++) dx[i] += k * (dy[i] - a - (x[i] - mean) * invstd * bq);
        }
    }
}

void kd_batchnorm_forward_train_sync(float *out, float *save_mean, float *save_invstd, float *running_mean,
                                     float *running_var, const float *in, const float *gamma, const float *beta,
                                     int B, int C, int HW, float eps, float momentum, int threads, double *tmp,
                                     void (*sum)(double *, size_t, void *), void *ctx) {
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(threads))
    for (int c = 0; c < C; c++) {
        double s = 0.0;
        for (int b = 0; b < B; b++) s += plane_sum(in + ((size_t)b * C + c) * HW, HW);
        tmp[c] = s;
    }
    tmp[C] = (double)B * HW;
    sum(tmp, (size_t)C + 1, ctx);
    double n = tmp[C];
    for (int c = 0; c < C; c++) save_mean[c] = (float)(tmp[c] / n);
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(threads))
    for (int c = 0; c < C; c++) {
        double ss = 0.0;
        for (int b = 0; b < B; b++) ss += plane_sqdev(in + ((size_t)b * C + c) * HW, HW, save_mean[c]);
        tmp[c] = ss;
    }
    sum(tmp, (size_t)C, ctx);
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(threads))
    for (int c = 0; c < C; c++) {
        double var = tmp[c] / n;
        float mean = save_mean[c], invstd = (float)(1.0 / sqrt(var + eps));
        save_invstd[c] = invstd;
        running_mean[c] = (1.f - momentum) * running_mean[c] + momentum * mean;
        running_var[c] = (1.f - momentum) * running_var[c] + momentum * (float)(n > 1 ? tmp[c] / (n - 1) : var);
        float sc = gamma[c] * invstd, sh = beta[c] - mean * sc;
        for (int b = 0; b < B; b++) {
            const float *x = in + ((size_t)b * C + c) * HW;
            float *y = out + ((size_t)b * C + c) * HW;
            for (int i = 0; i < HW; i++) y[i] = x[i] * sc + sh;
        }
    }
}

void kd_batchnorm_backward_sync(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                                const float *gamma, const float *save_mean, const float *save_invstd, int B,
                                int C, int HW, int threads, double *tmp, void (*sum)(double *, size_t, void *),
                                void *ctx) {
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(threads))
    for (int c = 0; c < C; c++) {
        float mean = save_mean[c], invstd = save_invstd[c];
        double sdy = 0.0, sdyx = 0.0;
        for (int b = 0; b < B; b++) {
            const float *x = in + ((size_t)b * C + c) * HW, *dy = dout + ((size_t)b * C + c) * HW;
            float p = 0.f, q = 0.f;
#pragma omp simd reduction(+ : p, q)
            for (int i = 0; i < HW; i++) {
                p += dy[i];
                q += dy[i] * ((x[i] - mean) * invstd);
            }
            sdy += p;
            sdyx += q;
        }
        tmp[c] = sdy;
        tmp[C + c] = sdyx;
        if (dgamma) dgamma[c] += (float)sdyx; /* this process's share: the gradient sum adds the rest */
        if (dbeta) dbeta[c] += (float)sdy;
    }
    tmp[2 * C] = (double)B * HW;
    sum(tmp, 2 * (size_t)C + 1, ctx);
    if (!din) return;
    double n = tmp[2 * C];
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(threads))
    for (int c = 0; c < C; c++) {
        float mean = save_mean[c], invstd = save_invstd[c];
        float k = gamma[c] * invstd, a = (float)(tmp[c] / n), bq = (float)(tmp[C + c] / n);
        for (int b = 0; b < B; b++) {
            const float *x = in + ((size_t)b * C + c) * HW, *dy = dout + ((size_t)b * C + c) * HW;
            float *dx = din + ((size_t)b * C + c) * HW;
            for (int i = 0; i < HW; i++) dx[i] += k * (dy[i] - a - (x[i] - mean) * invstd * bq);
        }
    }
}
