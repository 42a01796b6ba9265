/* 2-D convolution, forward and backward. General case: im2col + SGEMM per image and group, the
 * images of the batch spread over OpenMP threads (oneDNN's sgemm runs single-threaded inside the
 * region). 1x1/stride-1/no-pad convolutions skip im2col. Depthwise convolutions (one input channel
 * per group) are direct loops: as a GEMM they would have K = k*k, far too small to pay.
 * Determinism: weight gradients are accumulated per thread and reduced in thread order. */
#include <omp.h>
#include <string.h>

#include "distill/ops.h"

int kd_conv2d_out_size(int in, int k, int stride, int pad) {
    if (stride < 1 || in + 2 * pad < k) return 0;
    return (in + 2 * pad - k) / stride + 1;
}

static int is_depthwise(const kd_conv_shape *s) { return s->groups > 1 && s->groups == s->Cin && s->Cout == s->Cin; }
static int is_pointwise(const kd_conv_shape *s) { return s->K == 1 && s->stride == 1 && s->pad == 0; }
static int n_threads(const kd_conv_shape *s) { return s->threads > 0 ? s->threads : 1; }

/* Per-thread scratch: col (Kc, HW), dcol (Kc, HW), dW (Cout, Kc), db (Cout). */
static size_t col_floats(const kd_conv_shape *s) {
    return (size_t)(s->Cin / s->groups) * s->K * s->K * s->Ho * s->Wo;
}
static size_t w_floats(const kd_conv_shape *s) { return (size_t)s->Cout * (s->Cin / s->groups) * s->K * s->K; }
static size_t thread_floats(const kd_conv_shape *s) { return 2 * col_floats(s) + w_floats(s) + s->Cout; }

size_t kd_conv2d_scratch_floats(const kd_conv_shape *s) { return (size_t)n_threads(s) * thread_floats(s); }

/* col (Cg*K*K, Ho*Wo) from one image's channels [c0, c0+Cg) of in (Cin, H, W). */
static void im2col(float *col, const float *in, const kd_conv_shape *s, int c0, int Cg) {
    int K = s->K, Ho = s->Ho, Wo = s->Wo, H = s->H, W = s->W;
    for (int c = 0; c < Cg; c++) {
        const float *plane = in + (size_t)(c0 + c) * H * W;
        for (int ky = 0; ky < K; ky++)
            for (int kx = 0; kx < K; kx++) {
                float *row = col + ((size_t)(c * K + ky) * K + kx) * Ho * Wo;
                for (int oy = 0; oy < Ho; oy++) {
                    int iy = oy * s->stride - s->pad + ky;
                    float *r = row + (size_t)oy * Wo;
                    if (iy < 0 || iy >= H) {
                        memset(r, 0, sizeof(float) * Wo);
                        continue;
                    }
                    const float *src = plane + (size_t)iy * W;
                    if (s->stride == 1) {
                        int lo = s->pad - kx, hi = W + s->pad - kx; /* valid ox in [lo, hi) */
                        if (lo < 0) lo = 0;
                        if (hi > Wo) hi = Wo;
                        for (int ox = 0; ox < lo && ox < Wo; ox++) r[ox] = 0.f;
                        if (hi > lo) memcpy(r + lo, src + lo - s->pad + kx, sizeof(float) * (hi - lo));
                        for (int ox = hi > lo ? hi : lo; ox < Wo; ox++) r[ox] = 0.f;
                    } else {
                        for (int ox = 0; ox < Wo; ox++) {
                            int ix = ox * s->stride - s->pad + kx;
                            r[ox] = (ix >= 0 && ix < W) ? src[ix] : 0.f;
                        }
                    }
                }
            }
    }
}

/* din (Cin, H, W) channels [c0, c0+Cg) += col2im(dcol). */
static void col2im_add(float *din, const float *dcol, const kd_conv_shape *s, int c0, int Cg) {
    int K = s->K, Ho = s->Ho, Wo = s->Wo, H = s->H, W = s->W;
    for (int c = 0; c < Cg; c++) {
        float *plane = din + (size_t)(c0 + c) * H * W;
        for (int ky = 0; ky < K; ky++)
            for (int kx = 0; kx < K; kx++) {
                const float *row = dcol + ((size_t)(c * K + ky) * K + kx) * Ho * Wo;
                for (int oy = 0; oy < Ho; oy++) {
                    int iy = oy * s->stride - s->pad + ky;
                    if (iy < 0 || iy >= H) continue;
                    float *dst = plane + (size_t)iy * W;
                    const float *r = row + (size_t)oy * Wo;
                    for (int ox = 0; ox < Wo; ox++) {
                        int ix = ox * s->stride - s->pad + kx;
                        if (ix >= 0 && ix < W) dst[ix] += r[ox];
                    }
                }
            }
    }
}

static void depthwise_forward(float *out, const float *in, const float *weight, const float *bias,
                              const kd_conv_shape *s) {
    int C = s->Cin, K = s->K, H = s->H, W = s->W, Ho = s->Ho, Wo = s->Wo;
#pragma omp parallel for schedule(static) num_threads(n_threads(s))
    for (int bc = 0; bc < s->B * C; bc++) {
        int c = bc % C;
        const float *x = in + (size_t)bc * H * W, *w = weight + (size_t)c * K * K;
        float *y = out + (size_t)bc * Ho * Wo;
        float b0 = bias ? bias[c] : 0.f;
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                float acc = b0;
                for (int ky = 0; ky < K; ky++) {
                    int iy = oy * s->stride - s->pad + ky;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < K; kx++) {
                        int ix = ox * s->stride - s->pad + kx;
                        if (ix >= 0 && ix < W) acc += w[ky * K + kx] * x[(size_t)iy * W + ix];
                    }
                }
                y[(size_t)oy * Wo + ox] = acc;
            }
    }
}

static void depthwise_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                               const float *weight, const kd_conv_shape *s) {
    int C = s->Cin, K = s->K, H = s->H, W = s->W, Ho = s->Ho, Wo = s->Wo;
    /* One thread per channel owns that channel's dW, db and din planes: no races, fixed order. */
#pragma omp parallel for schedule(static) num_threads(n_threads(s))
    for (int c = 0; c < C; c++) {
        const float *w = weight + (size_t)c * K * K;
        float dw[64 * 64];
        int kk = K * K;
        for (int i = 0; i < kk; i++) dw[i] = 0.f;
        float db = 0.f;
        for (int b = 0; b < s->B; b++) {
            size_t bc = (size_t)b * C + c;
            const float *x = in + bc * H * W, *dy = dout + bc * Ho * Wo;
            float *dx = din ? din + bc * H * W : NULL;
            for (int oy = 0; oy < Ho; oy++)
                for (int ox = 0; ox < Wo; ox++) {
                    float g = dy[(size_t)oy * Wo + ox];
                    db += g;
                    for (int ky = 0; ky < K; ky++) {
                        int iy = oy * s->stride - s->pad + ky;
                        if (iy < 0 || iy >= H) continue;
                        for (int kx = 0; kx < K; kx++) {
                            int ix = ox * s->stride - s->pad + kx;
                            if (ix < 0 || ix >= W) continue;
                            dw[ky * K + kx] += g * x[(size_t)iy * W + ix];
                            if (dx) dx[(size_t)iy * W + ix] += g * w[ky * K + kx];
                        }
                    }
                }
        }
        if (dweight)
            for (int i = 0; i < kk; i++) dweight[(size_t)c * kk + i] += dw[i];
        if (dbias) dbias[c] += db;
    }
}

void kd_conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                       const kd_conv_shape *s, float *scratch) {
    if (is_depthwise(s) && s->K <= 64) {
        depthwise_forward(out, in, weight, bias, s);
        return;
    }
    int G = s->groups, Cg = s->Cin / G, Og = s->Cout / G, HW = s->Ho * s->Wo;
    int Kc = Cg * s->K * s->K;
    size_t per = thread_floats(s);
#pragma omp parallel for schedule(static) num_threads(n_threads(s))
    for (int b = 0; b < s->B; b++) {
        float *col = scratch + (size_t)omp_get_thread_num() * per;
        const float *x = in + (size_t)b * s->Cin * s->H * s->W; // (Cin, H, W)
        float *y = out + (size_t)b * s->Cout * HW;               // (Cout, Ho, Wo)
        for (int g = 0; g < G; g++) {
            const float *src;
            if (is_pointwise(s)) {
                src = x + (size_t)g * Cg * HW;
            } else {
                im2col(col, x, s, g * Cg, Cg);
                src = col;
            }
            kd_sgemm(0, 0, Og, HW, Kc, 1.f, weight + (size_t)g * Og * Kc, Kc, src, HW, 0.f, y + (size_t)g * Og * HW, HW);
        }
        if (bias)
            for (int o = 0; o < s->Cout; o++) {
                float *r = y + (size_t)o * HW;
                for (int i = 0; i < HW; i++) r[i] += bias[o];
            }
    }
}

void kd_conv2d_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                        const float *weight, const kd_conv_shape *s, float *scratch) {
    if (is_depthwise(s) && s->K <= 64) {
        depthwise_backward(din, dweight, dbias, dout, in, weight, s);
        return;
    }
    int G = s->groups, Cg = s->Cin / G, Og = s->Cout / G, HW = s->Ho * s->Wo;
    int Kc = Cg * s->K * s->K;
    size_t per = thread_floats(s), cols = col_floats(s), ws = w_floats(s);
    int nt = n_threads(s);
    int pw = is_pointwise(s);
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num();
        float *col = scratch + (size_t)t * per, *dcol = col + cols, *dw = dcol + cols, *db = dw + ws;
        memset(dw, 0, sizeof(float) * (ws + s->Cout));
#pragma omp for schedule(static)
        for (int b = 0; b < s->B; b++) {
            const float *x = in + (size_t)b * s->Cin * s->H * s->W;
            const float *dy = dout + (size_t)b * s->Cout * HW; // (Cout, Ho, Wo)
            float *dx = din ? din + (size_t)b * s->Cin * s->H * s->W : NULL;
            for (int g = 0; g < G; g++) {
                const float *dyg = dy + (size_t)g * Og * HW, *wg = weight + (size_t)g * Og * Kc;
                if (dweight) {
                    const float *src = x + (size_t)g * Cg * HW;
                    if (!pw) {
                        im2col(col, x, s, g * Cg, Cg);
                        src = col;
                    }
                    kd_sgemm(0, 1, Og, Kc, HW, 1.f, dyg, HW, src, HW, 1.f, dw + (size_t)g * Og * Kc, Kc); // (Og, Kc)
                }
                if (dx) {
                    if (pw) {
                        kd_sgemm(1, 0, Kc, HW, Og, 1.f, wg, Kc, dyg, HW, 1.f, dx + (size_t)g * Cg * HW, HW);
                    } else {
                        kd_sgemm(1, 0, Kc, HW, Og, 1.f, wg, Kc, dyg, HW, 0.f, dcol, HW); // (Kc, HW)
                        col2im_add(dx, dcol, s, g * Cg, Cg);
                    }
                }
            }
            if (dbias)
                for (int o = 0; o < s->Cout; o++) {
                    const float *r = dy + (size_t)o * HW;
                    float acc = 0.f;
                    for (int i = 0; i < HW; i++) acc += r[i];
                    db[o] += acc;
                }
        }
        /* Reduce the per-thread partial sums in thread order: deterministic for a thread count. */
#pragma omp barrier
#pragma omp for schedule(static)
        for (size_t i = 0; i < ws + (size_t)s->Cout; i++) {
            float acc = 0.f;
            for (int u = 0; u < nt; u++) acc += scratch[(size_t)u * per + 2 * cols + i];
            if (i < ws) {
                if (dweight) dweight[i] += acc;
            } else if (dbias) {
                dbias[i - ws] += acc;
            }
        }
    }
}
