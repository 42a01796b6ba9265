/* 2-D convolution, forward and backward. General case: im2col + SGEMM per image and group, the
 * images of the batch spread over OpenMP threads (oneDNN's sgemm runs single-threaded inside the
 * region). 1x1/stride-1/no-pad convolutions skip im2col. Depthwise convolutions (one input channel
 * per group) are direct loops: as a GEMM they would have K = k*k, far too small to pay. Dilation d
 * (taps d apart) only changes which input element each tap reads, in every path.
 * Determinism: weight gradients are accumulated per thread and reduced in thread order. */
#include <limits.h>
#include <omp.h>
#include <string.h>

#include "distill/ops.h"
#include "nn/ops_internal.h"

int kd_conv2d_out_size(int in, int k, int stride, int pad) {
    long long span = (long long)in + 2LL * pad; /* in 64 bits: no int overflow for any arguments */
    if (stride < 1 || k < 1 || in < 0 || pad < 0 || span < k) return 0;
    long long out = (span - k) / stride + 1;
    return out > INT_MAX ? 0 : (int)out;
}

#define KD_DW_MAX_K 15 /* larger depthwise kernels take the general (grouped GEMM) path */

/* The distance between kernel taps (dilation); 1 for shapes that leave it 0. */
static int dil(const kd_conv_shape *s) { return s->dilation > 1 ? s->dilation : 1; }
static int is_depthwise(const kd_conv_shape *s) { return s->groups > 1 && s->groups == s->Cin && s->Cout == s->Cin; }
static int is_pointwise(const kd_conv_shape *s) { return s->K == 1 && s->stride == 1 && s->pad == 0; }

static size_t col_floats(const kd_conv_shape *s) {
    return (size_t)(s->Cin / s->groups) * s->K * s->K * s->Ho * s->Wo;
}
static size_t w_floats(const kd_conv_shape *s) { return (size_t)s->Cout * (s->Cin / s->groups) * s->K * s->K; }
static size_t padded_floats(const kd_conv_shape *s) { return (size_t)(s->H + 2 * s->pad) * (s->W + 2 * s->pad); }
/* One thread's scratch: GEMM path col, dcol, dW, db; depthwise path two padded planes. */
static size_t thread_floats(const kd_conv_shape *s) {
    size_t gemm = 2 * col_floats(s) + w_floats(s) + s->Cout, dw = 2 * padded_floats(s);
    return gemm > dw ? gemm : dw;
}

size_t kd_conv2d_scratch_floats(const kd_conv_shape *s) { return (size_t)kd_op_threads(s->threads) * thread_floats(s); }

/* col (Cg*K*K, Ho*Wo) from one image's channels [c0, c0+Cg) of in (Cin, H, W). */
static void im2col(float *col, const float *in, const kd_conv_shape *s, int c0, int Cg) {
    int K = s->K, Ho = s->Ho, Wo = s->Wo, H = s->H, W = s->W, d = dil(s);
    for (int c = 0; c < Cg; c++) {
        const float *plane = in + (size_t)(c0 + c) * H * W;
        for (int ky = 0; ky < K; ky++)
            for (int kx = 0; kx < K; kx++) {
                float *row = col + ((size_t)(c * K + ky) * K + kx) * Ho * Wo;
                for (int oy = 0; oy < Ho; oy++) {
                    int iy = oy * s->stride - s->pad + ky * d;
                    float *r = row + (size_t)oy * Wo;
                    if (iy < 0 || iy >= H) {
                        memset(r, 0, sizeof(float) * Wo);
                        continue;
                    }
                    const float *src = plane + (size_t)iy * W;
                    if (s->stride == 1) {
                        int lo = s->pad - kx * d, hi = W + s->pad - kx * d; /* valid ox in [lo, hi) */
                        if (lo < 0) lo = 0;
                        if (hi > Wo) hi = Wo;
                        for (int ox = 0; ox < lo && ox < Wo; ox++) r[ox] = 0.f;
                        const float *sp = src - s->pad + kx * d; /* rows are short: a loop beats memcpy's call */
                        for (int ox = lo; ox < hi; ox++) r[ox] = sp[ox];
                        for (int ox = hi > lo ? hi : lo; ox < Wo; ox++) r[ox] = 0.f;
                    } else {
                        for (int ox = 0; ox < Wo; ox++) {
                            int ix = ox * s->stride - s->pad + kx * d;
                            r[ox] = (ix >= 0 && ix < W) ? src[ix] : 0.f;
                        }
                    }
                }
            }
    }
}

/* din (Cin, H, W) channels [c0, c0+Cg) += col2im(dcol). */
static void col2im_add(float *din, const float *dcol, const kd_conv_shape *s, int c0, int Cg) {
    int K = s->K, Ho = s->Ho, Wo = s->Wo, H = s->H, W = s->W, d = dil(s);
    for (int c = 0; c < Cg; c++) {
        float *plane = din + (size_t)(c0 + c) * H * W;
        for (int ky = 0; ky < K; ky++)
            for (int kx = 0; kx < K; kx++) {
                const float *row = dcol + ((size_t)(c * K + ky) * K + kx) * Ho * Wo;
                for (int oy = 0; oy < Ho; oy++) {
                    int iy = oy * s->stride - s->pad + ky * d;
                    if (iy < 0 || iy >= H) continue;
                    float *dst = plane + (size_t)iy * W;
                    const float *r = row + (size_t)oy * Wo;
                    if (s->stride == 1) {
                        int lo = s->pad - kx * d, hi = W + s->pad - kx * d; /* valid ox in [lo, hi) */
                        if (lo < 0) lo = 0;
                        if (hi > Wo) hi = Wo;
                        float *dp = dst - s->pad + kx * d;
                        for (int ox = lo; ox < hi; ox++) dp[ox] += r[ox];
                        continue;
                    }
                    for (int ox = 0; ox < Wo; ox++) {
                        int ix = ox * s->stride - s->pad + kx * d;
                        if (ix >= 0 && ix < W) dst[ix] += r[ox];
                    }
                }
            }
    }
}

/* Depthwise convolution through a zero-padded copy of each plane (Hp, Wp), so the inner loops have
 * no bounds checks and vectorise over the output row. */
static void pad_plane(float *dst, const float *src, const kd_conv_shape *s) {
    int Wp = s->W + 2 * s->pad, Hp = s->H + 2 * s->pad;
    memset(dst, 0, sizeof(float) * (size_t)Hp * Wp);
    for (int y = 0; y < s->H; y++)
        memcpy(dst + (size_t)(y + s->pad) * Wp + s->pad, src + (size_t)y * s->W, sizeof(float) * s->W);
}

static void depthwise_forward(float *out, const float *in, const float *weight, const float *bias,
                              const kd_conv_shape *s, float *scratch) {
    int C = s->Cin, K = s->K, H = s->H, W = s->W, Ho = s->Ho, Wo = s->Wo, st = s->stride, d = dil(s);
    int Wp = W + 2 * s->pad;
    size_t per = thread_floats(s);
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(s->threads))
    for (int bc = 0; bc < s->B * C; bc++) {
        int c = bc % C;
        float *xp = scratch + (size_t)omp_get_thread_num() * per; // (Hp, Wp)
        pad_plane(xp, in + (size_t)bc * H * W, s);
        const float *w = weight + (size_t)c * K * K;
        float *y = out + (size_t)bc * Ho * Wo; // (Ho, Wo)
        float b0 = bias ? bias[c] : 0.f;
        for (int oy = 0; oy < Ho; oy++) {
            float *yr = y + (size_t)oy * Wo;
            for (int ox = 0; ox < Wo; ox++) yr[ox] = b0;
            for (int ky = 0; ky < K; ky++) {
                const float *xr = xp + (size_t)(oy * st + ky * d) * Wp;
                for (int kx = 0; kx < K; kx++) {
                    float wk = w[ky * K + kx];
                    const float *xs = xr + kx * d;
                    if (st == 1)
                        for (int ox = 0; ox < Wo; ox++) yr[ox] += wk * xs[ox];
                    else
                        for (int ox = 0; ox < Wo; ox++) yr[ox] += wk * xs[ox * st];
                }
            }
        }
    }
}

static void depthwise_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                               const float *weight, const kd_conv_shape *s, float *scratch) {
    int C = s->Cin, K = s->K, H = s->H, W = s->W, Ho = s->Ho, Wo = s->Wo, st = s->stride, d = dil(s);
    int Wp = W + 2 * s->pad, kk = K * K;
    size_t per = thread_floats(s), pf = padded_floats(s);
    /* One thread per channel owns that channel's dW, db and din planes: no races, fixed order. */
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(s->threads))
    for (int c = 0; c < C; c++) {
        float *xp = scratch + (size_t)omp_get_thread_num() * per, *dxp = xp + pf; // (Hp, Wp) each
        const float *w = weight + (size_t)c * kk;
        float dw[KD_DW_MAX_K * KD_DW_MAX_K];
        for (int i = 0; i < kk; i++) dw[i] = 0.f;
        float db = 0.f;
        for (int b = 0; b < s->B; b++) {
            size_t bc = (size_t)b * C + c;
            pad_plane(xp, in + bc * H * W, s);
            if (din) memset(dxp, 0, sizeof(float) * pf);
            const float *dy = dout + bc * Ho * Wo; // (Ho, Wo)
            for (int oy = 0; oy < Ho; oy++) {
                const float *gr = dy + (size_t)oy * Wo;
                for (int ox = 0; ox < Wo; ox++) db += gr[ox];
                for (int ky = 0; ky < K; ky++) {
                    const float *xr = xp + (size_t)(oy * st + ky * d) * Wp;
                    float *dxr = dxp + (size_t)(oy * st + ky * d) * Wp;
                    for (int kx = 0; kx < K; kx++) {
                        float acc = 0.f, wk = w[ky * K + kx];
                        for (int ox = 0; ox < Wo; ox++) acc += gr[ox] * xr[ox * st + kx * d];
                        if (din)
                            for (int ox = 0; ox < Wo; ox++) dxr[ox * st + kx * d] += wk * gr[ox];
                        dw[ky * K + kx] += acc;
                    }
                }
            }
            if (din) {
                float *dx = din + bc * H * W;
                for (int y = 0; y < H; y++) {
                    const float *src = dxp + (size_t)(y + s->pad) * Wp + s->pad;
                    for (int x = 0; x < W; x++) dx[(size_t)y * W + x] += src[x];
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
    if (is_depthwise(s) && s->K <= KD_DW_MAX_K) {
        depthwise_forward(out, in, weight, bias, s, scratch);
        return;
    }
    int G = s->groups, Cg = s->Cin / G, Og = s->Cout / G, HW = s->Ho * s->Wo;
    int Kc = Cg * s->K * s->K;
    size_t per = thread_floats(s);
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(s->threads))
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
    if (is_depthwise(s) && s->K <= KD_DW_MAX_K) {
        depthwise_backward(din, dweight, dbias, dout, in, weight, s, scratch);
        return;
    }
    int G = s->groups, Cg = s->Cin / G, Og = s->Cout / G, HW = s->Ho * s->Wo;
    int Kc = Cg * s->K * s->K;
    size_t per = thread_floats(s), cols = col_floats(s), ws = w_floats(s);
    int nt = kd_op_threads(s->threads);
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
