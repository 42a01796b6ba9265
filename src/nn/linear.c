/* Fully connected layer: out = in @ W^T + b, with W (out_f, in_f) as in PyTorch. One SGEMM each for
 * forward, dW and din; oneDNN threads them with OpenMP's default count (see kd_sgemm in ops.h). */
#include "distill/ops.h"

void kd_linear_forward(float *out, const float *in, const float *weight, const float *bias, int B, int in_f,
                       int out_f) {
    kd_sgemm(0, 1, B, out_f, in_f, 1.f, in, in_f, weight, in_f, 0.f, out, out_f); // (B, out_f)
    if (bias)
        for (int b = 0; b < B; b++)
            for (int o = 0; o < out_f; o++) out[(size_t)b * out_f + o] += bias[o];
}

void kd_linear_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                        const float *weight, int B, int in_f, int out_f) {
    if (dweight) kd_sgemm(1, 0, out_f, in_f, B, 1.f, dout, out_f, in, in_f, 1.f, dweight, in_f); // (out_f, in_f)
    if (din) kd_sgemm(0, 0, B, in_f, out_f, 1.f, dout, out_f, weight, in_f, 1.f, din, in_f);     // (B, in_f)
    if (dbias)
        for (int o = 0; o < out_f; o++) {
            float s = 0.f;
            for (int b = 0; b < B; b++) s += dout[(size_t)b * out_f + o];
            dbias[o] += s;
        }
}
