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

/* y = x * sc + sh on channel c. */
static inline void channel_affine(float *out, const float *in, float sc, float sh, int B, int C, int HW, int c) {
    for (int b = 0; b < B; b++) {
        const float *x = in + ((size_t)b * C + c) * HW;
        float *y = out + ((size_t)b * C + c) * HW;
        for (int i = 0; i < HW; i++) y[i] = x[i] * sc + sh;
    }
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
        channel_affine(out, in, sc, sh, B, C, HW, c);
    }
}

void kd_batchnorm_forward_eval(float *out, const float *in, const float *gamma, const float *beta,
                               const float *running_mean, const float *running_var, int B, int C, int HW,
                               float eps, int threads) {
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(threads))
    for (int c = 0; c < C; c++) {
        float sc = gamma[c] / sqrtf(running_var[c] + eps), sh = beta[c] - running_mean[c] * sc;
        channel_affine(out, in, sc, sh, B, C, HW, c);
    }
}

/* Channel c's sums of dy and dy * x_hat over the batch (planes in float SIMD, summed in double). */
static inline void channel_dsums(const float *dout, const float *in, float mean, float invstd, int B, int C,
                                 int HW, int c, double *sdy, double *sdyx) {
    double s = 0.0, t = 0.0;
    for (int b = 0; b < B; b++) {
        const float *x = in + ((size_t)b * C + c) * HW, *dy = dout + ((size_t)b * C + c) * HW;
        float p = 0.f, q = 0.f;
#pragma omp simd reduction(+ : p, q)
        for (int i = 0; i < HW; i++) {
            p += dy[i];
            q += dy[i] * ((x[i] - mean) * invstd);
        }
        s += p;
        t += q;
    }
    *sdy = s;
    *sdyx = t;
}

/* Channel c's input gradient from the means a = sum(dy) / n and bq = sum(dy * x_hat) / n. */
static inline void channel_dx(float *din, const float *dout, const float *in, float gamma, float mean, float invstd,
                              float a, float bq, int B, int C, int HW, int c) {
    float k = gamma * invstd;
    for (int b = 0; b < B; b++) {
        const float *x = in + ((size_t)b * C + c) * HW, *dy = dout + ((size_t)b * C + c) * HW;
        float *dx = din + ((size_t)b * C + c) * HW;
        for (int i = 0; i < HW; i++) dx[i] += k * (dy[i] - a - (x[i] - mean) * invstd * bq);
    }
}

void kd_batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                           const float *gamma, const float *save_mean, const float *save_invstd, int B, int C,
                           int HW, int threads) {
    double n = (double)B * HW;
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(threads))
    for (int c = 0; c < C; c++) {
        double sdy, sdyx;
        channel_dsums(dout, in, save_mean[c], save_invstd[c], B, C, HW, c, &sdy, &sdyx);
        if (dgamma) dgamma[c] += (float)sdyx;
        if (dbeta) dbeta[c] += (float)sdy;
        if (din)
            channel_dx(din, dout, in, gamma[c], save_mean[c], save_invstd[c], (float)(sdy / n), (float)(sdyx / n), B, C,
                       HW, c);
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
        channel_affine(out, in, sc, sh, B, C, HW, c);
    }
}

void kd_batchnorm_backward_sync(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                                const float *gamma, const float *save_mean, const float *save_invstd, int B,
                                int C, int HW, int threads, double *tmp, void (*sum)(double *, size_t, void *),
                                void *ctx) {
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(threads))
    for (int c = 0; c < C; c++) {
        double sdy, sdyx;
        channel_dsums(dout, in, save_mean[c], save_invstd[c], B, C, HW, c, &sdy, &sdyx);
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
    for (int c = 0; c < C; c++)
        channel_dx(din, dout, in, gamma[c], save_mean[c], save_invstd[c], (float)(tmp[c] / n), (float)(tmp[C + c] / n),
                   B, C, HW, c);
}
