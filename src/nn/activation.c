/* Element-wise ops: ReLU, GELU (exact erf form), inverted dropout with a given mask, residual add. */
#include <math.h>

#include "distill/ops.h"
#include "nn/ops_internal.h"

/* Element-wise loops go parallel only when there is enough work to pay for waking threads. */
#define PAR_MIN 32768

void kd_relu_forward(float *out, const float *in, size_t n, int threads) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN) num_threads(kd_op_threads(threads))
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 0.f ? in[i] : 0.f;
}

void kd_relu_backward(float *din, const float *dout, const float *out, size_t n, int threads) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN) num_threads(kd_op_threads(threads))
    for (size_t i = 0; i < n; i++) din[i] += out[i] > 0.f ? dout[i] : 0.f;
}

void kd_gelu_forward(float *out, const float *in, size_t n, int threads) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN) num_threads(kd_op_threads(threads))
    for (size_t i = 0; i < n; i++) out[i] = 0.5f * in[i] * (1.f + erff(in[i] * 0.70710678118654752f));
}

void kd_gelu_backward(float *din, const float *dout, const float *in, size_t n, int threads) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN) num_threads(kd_op_threads(threads))
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        float cdf = 0.5f * (1.f + erff(x * 0.70710678118654752f));
        float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
        din[i] += dout[i] * (cdf + x * pdf);
    }
}

void kd_dropout_forward(float *out, const float *in, const float *mask, size_t n, int threads) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN) num_threads(kd_op_threads(threads))
    for (size_t i = 0; i < n; i++) out[i] = in[i] * mask[i];
}

void kd_dropout_backward(float *din, const float *dout, const float *mask, size_t n, int threads) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN) num_threads(kd_op_threads(threads))
    for (size_t i = 0; i < n; i++) din[i] += dout[i] * mask[i];
}

void kd_add_forward(float *out, const float *a, const float *b, size_t n, int threads) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN) num_threads(kd_op_threads(threads))
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void kd_add_backward(float *da, float *db, const float *dout, size_t n, int threads) {
    if (da) {
        #pragma omp parallel for schedule(static) if (n > PAR_MIN) num_threads(kd_op_threads(threads))
        for (size_t i = 0; i < n; i++) da[i] += dout[i];
    }
    if (db) {
        #pragma omp parallel for schedule(static) if (n > PAR_MIN) num_threads(kd_op_threads(threads))
        for (size_t i = 0; i < n; i++) db[i] += dout[i];
    }
}
