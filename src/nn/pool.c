/* Pooling: max (with argmax indices for backward), average and global average. No padding. */
#include "distill/ops.h"
#include "nn/ops_internal.h"

void kd_maxpool_forward(float *out, int32_t *argmax, const float *in, int B, int C, int H, int W, int k,
                        int stride, int threads) {
    int Ho = (H - k) / stride + 1, Wo = (W - k) / stride + 1;
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(threads))
    for (int bc = 0; bc < B * C; bc++) {
        const float *x = in + (size_t)bc * H * W; // (H, W)
        float *y = out + (size_t)bc * Ho * Wo;
        int32_t *am = argmax + (size_t)bc * Ho * Wo;
        if (k == 2 && stride == 2) { /* the common case, unrolled */
            for (int oy = 0; oy < Ho; oy++)
                for (int ox = 0; ox < Wo; ox++) {
                    /* branch-free selects: data-dependent branches mispredict on real images */
                    int i0 = 2 * oy * W + 2 * ox, best = i0;
                    float v = x[i0], c;
                    c = x[i0 + 1];     best = c > v ? i0 + 1 : best;     v = c > v ? c : v;
                    c = x[i0 + W];     best = c > v ? i0 + W : best;     v = c > v ? c : v;
                    c = x[i0 + W + 1]; best = c > v ? i0 + W + 1 : best; v = c > v ? c : v;
                    y[oy * Wo + ox] = v;
                    am[oy * Wo + ox] = best;
                }
            continue;
        }
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                int best = oy * stride * W + ox * stride;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        int i = (oy * stride + ky) * W + ox * stride + kx;
                        if (x[i] > x[best]) best = i;
                    }
                y[oy * Wo + ox] = x[best];
                am[oy * Wo + ox] = best;
            }
    }
}

void kd_maxpool_backward(float *din, const float *dout, const int32_t *argmax, int B, int C, int H, int W, int Ho,
                         int Wo, int threads) {
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(threads))
    for (int bc = 0; bc < B * C; bc++) {
        float *dx = din + (size_t)bc * H * W;
        const float *dy = dout + (size_t)bc * Ho * Wo;
        const int32_t *am = argmax + (size_t)bc * Ho * Wo;
        for (int i = 0; i < Ho * Wo; i++) dx[am[i]] += dy[i];
    }
}

void kd_avgpool_forward(float *out, const float *in, int B, int C, int H, int W, int k, int stride,
                        int threads) {
    int Ho = (H - k) / stride + 1, Wo = (W - k) / stride + 1;
    float inv = 1.f / (float)(k * k);
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(threads))
    for (int bc = 0; bc < B * C; bc++) {
        const float *x = in + (size_t)bc * H * W;
        float *y = out + (size_t)bc * Ho * Wo;
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                float acc = 0.f;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) acc += x[(oy * stride + ky) * W + ox * stride + kx];
                y[oy * Wo + ox] = acc * inv;
            }
    }
}

void kd_avgpool_backward(float *din, const float *dout, int B, int C, int H, int W, int k, int stride,
                         int threads) {
    int Ho = (H - k) / stride + 1, Wo = (W - k) / stride + 1;
    float inv = 1.f / (float)(k * k);
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(threads))
    for (int bc = 0; bc < B * C; bc++) {
        float *dx = din + (size_t)bc * H * W;
        const float *dy = dout + (size_t)bc * Ho * Wo;
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                float g = dy[oy * Wo + ox] * inv;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) dx[(oy * stride + ky) * W + ox * stride + kx] += g;
            }
    }
}

void kd_gap_forward(float *out, const float *in, int B, int C, int HW) {
    for (int bc = 0; bc < B * C; bc++) {
        const float *x = in + (size_t)bc * HW;
        float acc = 0.f;
        for (int i = 0; i < HW; i++) acc += x[i];
        out[bc] = acc / (float)HW;
    }
}

void kd_gap_backward(float *din, const float *dout, int B, int C, int HW) {
    for (int bc = 0; bc < B * C; bc++) {
        float g = dout[bc] / (float)HW;
        float *dx = din + (size_t)bc * HW;
        for (int i = 0; i < HW; i++) dx[i] += g;
    }
}
