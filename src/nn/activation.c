/* Element-wise ops: ReLU, GELU (exact erf form), inverted dropout with a given mask, residual add
 * (same shapes), and the activations of imported models: clip (ReLU6), leaky ReLU, sigmoid, hard
 * sigmoid, hard swish. Gradients at the kinks are PyTorch's (ops.h). */
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

/* hardtanh's backward (ReLU6 and torch.clamp exported as Clip): 0 at and beyond the bounds */
void kd_clip_forward(float *out, const float *in, size_t n, float lo, float hi, int threads) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN) num_threads(kd_op_threads(threads))
    for (size_t i = 0; i < n; i++) out[i] = in[i] < lo ? lo : in[i] > hi ? hi : in[i];
}

void kd_clip_backward(float *din, const float *dout, const float *in, size_t n, float lo, float hi, int threads) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN) num_threads(kd_op_threads(threads))
    for (size_t i = 0; i < n; i++) din[i] += in[i] > lo && in[i] < hi ? dout[i] : 0.f;
}

/* PyTorch's leaky_relu_backward: x > 0 ? g : alpha * g (alpha at 0) */
void kd_leaky_relu_forward(float *out, const float *in, size_t n, float alpha, int threads) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN) num_threads(kd_op_threads(threads))
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 0.f ? in[i] : alpha * in[i];
}

void kd_leaky_relu_backward(float *din, const float *dout, const float *in, size_t n, float alpha, int threads) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN) num_threads(kd_op_threads(threads))
    for (size_t i = 0; i < n; i++) din[i] += in[i] > 0.f ? dout[i] : alpha * dout[i];
}

void kd_sigmoid_forward(float *out, const float *in, size_t n, int threads) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN) num_threads(kd_op_threads(threads))
    for (size_t i = 0; i < n; i++) out[i] = 1.f / (1.f + expf(-in[i]));
}

void kd_sigmoid_backward(float *din, const float *dout, const float *out, size_t n, int threads) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN) num_threads(kd_op_threads(threads))
    for (size_t i = 0; i < n; i++) din[i] += dout[i] * out[i] * (1.f - out[i]);
}

/* PyTorch's hardsigmoid_backward (alpha 1/6, beta 1/2): the slope strictly inside the ramp */
void kd_hard_sigmoid_forward(float *out, const float *in, size_t n, float alpha, float beta, int threads) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN) num_threads(kd_op_threads(threads))
    for (size_t i = 0; i < n; i++) out[i] = fminf(fmaxf(alpha * in[i] + beta, 0.f), 1.f);
}

void kd_hard_sigmoid_backward(float *din, const float *dout, const float *in, size_t n, float alpha, float beta,
                              int threads) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN) num_threads(kd_op_threads(threads))
    for (size_t i = 0; i < n; i++) {
        float t = alpha * in[i] + beta;
        din[i] += t > 0.f && t < 1.f ? alpha * dout[i] : 0.f;
    }
}

/* x * relu6(x + 3) / 6; PyTorch's hardswish_backward (1.13): 0 below -3, x/3 + 1/2 on [-3, 3), 1 from 3 */
void kd_hard_swish_forward(float *out, const float *in, size_t n, int threads) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN) num_threads(kd_op_threads(threads))
    for (size_t i = 0; i < n; i++) out[i] = in[i] * fminf(fmaxf(in[i] + 3.f, 0.f), 6.f) / 6.f;
}

void kd_hard_swish_backward(float *din, const float *dout, const float *in, size_t n, int threads) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN) num_threads(kd_op_threads(threads))
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        din[i] += x < -3.f ? 0.f : x < 3.f ? dout[i] * (x / 3.f + 0.5f) : dout[i];
    }
}
