/* Pooling: max (with argmax indices for backward), average and global average. Symmetric padding
 * and ceil_mode as PyTorch's MaxPool2d / AvgPool2d: a window is clipped to the input (padding never
 * wins a max), and an average divides by the window clipped to the padded input (count_pad) or by
 * the input elements it covers. Without padding and ceil_mode every window lies inside the input
 * and the loops compute what they always did, bit for bit. */
#include <limits.h>

#include "distill/ops.h"
#include "nn/ops_internal.h"

int kd_pool_out_size(int in, int k, int stride, int pad, int ceil_mode) {
    long long span = (long long)in + 2LL * pad - k; /* 64 bits: no int overflow */
    if (stride < 1 || k < 1 || in < 1 || pad < 0 || span < 0) return 0;
    long long out = (ceil_mode ? span + stride - 1 : span) / stride + 1;
    /* PyTorch (pooling_output_shape): the last window must start inside the input or its left padding */
    if (ceil_mode && (out - 1) * stride >= (long long)in + pad) out--;
    return out > INT_MAX ? 0 : (int)out;
}

/* The window of output position o along a dimension of size n: input rows [*lo, *hi); returns the
 * window's extent inside the padded input (PyTorch's pool_size for count_include_pad). */
static int window(int o, const kd_pool_shape *s, int n, int *lo, int *hi) {
    int start = o * s->stride - s->pad, end = start + s->k;
    if (end > n + s->pad) end = n + s->pad;
    int padded = end - start;
    *lo = start < 0 ? 0 : start;
    *hi = end > n ? n : end;
    return padded;
}

void kd_maxpool_forward(float *out, int32_t *argmax, const float *in, const kd_pool_shape *s) {
    int H = s->H, W = s->W, Ho = s->Ho, Wo = s->Wo;
    /* the common case, unrolled: 2x2 windows, stride 2, all inside the input */
    int fast = s->k == 2 && s->stride == 2 && s->pad == 0 && 2 * Ho <= H && 2 * Wo <= W;
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(s->threads))
    for (int bc = 0; bc < s->B * s->C; bc++) {
        const float *x = in + (size_t)bc * H * W; // (H, W)
        float *y = out + (size_t)bc * Ho * Wo;
        int32_t *am = argmax + (size_t)bc * Ho * Wo;
        if (fast) {
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
        for (int oy = 0; oy < Ho; oy++) {
            int y0, y1;
            window(oy, s, H, &y0, &y1);
            for (int ox = 0; ox < Wo; ox++) {
                int x0, x1;
                window(ox, s, W, &x0, &x1);
                int best = y0 * W + x0; /* pad <= k/2 and the ceil_mode rule: never an empty window */
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) {
                        int i = iy * W + ix;
                        if (x[i] > x[best]) best = i;
                    }
                y[oy * Wo + ox] = x[best];
                am[oy * Wo + ox] = best;
            }
        }
    }
}

void kd_maxpool_backward(float *din, const float *dout, const int32_t *argmax, const kd_pool_shape *s) {
    int HW = s->H * s->W, HWo = s->Ho * s->Wo;
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(s->threads))
    for (int bc = 0; bc < s->B * s->C; bc++) {
        float *dx = din + (size_t)bc * HW;
        const float *dy = dout + (size_t)bc * HWo;
        const int32_t *am = argmax + (size_t)bc * HWo;
        for (int i = 0; i < HWo; i++) dx[am[i]] += dy[i];
    }
}

/* 1 / the divisor of an average over window [y0, y1) x [x0, x1) whose padded extent is py x px. */
static float avg_inv(const kd_pool_shape *s, int py, int px, int y0, int y1, int x0, int x1) {
    int div = s->count_pad ? py * px : (y1 - y0) * (x1 - x0);
    return 1.f / (float)div;
}

void kd_avgpool_forward(float *out, const float *in, const kd_pool_shape *s) {
    int H = s->H, W = s->W, Ho = s->Ho, Wo = s->Wo;
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(s->threads))
    for (int bc = 0; bc < s->B * s->C; bc++) {
        const float *x = in + (size_t)bc * H * W;
        float *y = out + (size_t)bc * Ho * Wo;
        for (int oy = 0; oy < Ho; oy++) {
            int y0, y1, py = window(oy, s, H, &y0, &y1);
            for (int ox = 0; ox < Wo; ox++) {
                int x0, x1, px = window(ox, s, W, &x0, &x1);
                float acc = 0.f;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) acc += x[iy * W + ix];
                y[oy * Wo + ox] = acc * avg_inv(s, py, px, y0, y1, x0, x1);
            }
        }
    }
}

void kd_avgpool_backward(float *din, const float *dout, const kd_pool_shape *s) {
    int H = s->H, W = s->W, Ho = s->Ho, Wo = s->Wo;
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(s->threads))
    for (int bc = 0; bc < s->B * s->C; bc++) {
        float *dx = din + (size_t)bc * H * W;
        const float *dy = dout + (size_t)bc * Ho * Wo;
        for (int oy = 0; oy < Ho; oy++) {
            int y0, y1, py = window(oy, s, H, &y0, &y1);
            for (int ox = 0; ox < Wo; ox++) {
                int x0, x1, px = window(ox, s, W, &x0, &x1);
                float g = dy[oy * Wo + ox] * avg_inv(s, py, px, y0, y1, x0, x1);
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) dx[iy * W + ix] += g;
            }
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
