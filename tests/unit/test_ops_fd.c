/* Finite-difference gradient checks of every op, one at a time: L = sum(out * R) for a random R,
 * each analytic gradient (inputs and parameters) against central differences. Also the fast
 * convolution paths (im2col, 1x1, depthwise, grouped, strided) against a naive 7-loop convolution. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "distill/ops.h"
#include "distill/rng.h"
#include "test.h"

/* The thread count the ops run with (what ctest's OMP_NUM_THREADS=2 gave them before they took
 * one). */
#define OP_THREADS 2

static kd_rng rng;
static float *randn(size_t n, float scale) {
    float *p = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) p[i] = scale * kd_rng_normal(&rng);
    return p;
}

/* ---- a generic checker: fwd(ctx) writes out; the projection L = sum(out*R) ---- */
typedef void (*fwd_fn)(void *ctx, float *out);
static double proj(fwd_fn f, void *ctx, float *out, size_t n_out, const float *R) {
    f(ctx, out);
    double L = 0;
    for (size_t i = 0; i < n_out; i++) L += (double)out[i] * R[i];
    return L;
}

/* Compare grad (analytic dL/dx) with central differences on x (n values, stride through them). */
static void check_grad(const char *what, fwd_fn f, void *ctx, float *x, size_t n, const float *grad, size_t n_out,
                       const float *R, float h, double tol) {
    float *out = malloc(sizeof(float) * n_out);
    int bad = 0;
    size_t step = n > 200 ? n / 97 : 1;
    for (size_t i = 0; i < n; i += step) {
        float save = x[i];
        x[i] = save + h;
        double lp = proj(f, ctx, out, n_out, R);
        x[i] = save - h;
        double lm = proj(f, ctx, out, n_out, R);
        x[i] = save;
        double num = (lp - lm) / (2.0 * h);
        if (fabs(num - grad[i]) > tol * (1.0 + fabs(num))) {
            if (bad < 3) fprintf(stderr, "  %s[%zu]: analytic %g numeric %g\n", what, i, grad[i], num);
            bad++;
        }
    }
    CHECK_MSG(bad == 0, "%s: %d gradient entries disagree", what, bad);
    free(out);
}

/* ---- conv ---- */
typedef struct {
    kd_conv_shape s;
    float *in, *w, *b, *scratch;
} conv_ctx;
static void conv_fwd(void *c, float *out) {
    conv_ctx *k = c;
    kd_conv2d_forward(out, k->in, k->w, k->b, &k->s, k->scratch);
}

static void naive_conv(float *out, const float *in, const float *w, const float *b, const kd_conv_shape *s) {
    int Cg = s->Cin / s->groups, Og = s->Cout / s->groups;
    for (int n = 0; n < s->B; n++)
        for (int o = 0; o < s->Cout; o++)
            for (int y = 0; y < s->Ho; y++)
                for (int x = 0; x < s->Wo; x++) {
                    double acc = b ? b[o] : 0;
                    int g = o / Og;
                    for (int c = 0; c < Cg; c++)
                        for (int ky = 0; ky < s->K; ky++)
                            for (int kx = 0; kx < s->K; kx++) {
                                int d = s->dilation > 1 ? s->dilation : 1;
                                int iy = y * s->stride - s->pad + ky * d, ix = x * s->stride - s->pad + kx * d;
                                if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W) continue;
                                acc += (double)w[((o * Cg + c) * s->K + ky) * s->K + kx] *
                                       in[((n * s->Cin + g * Cg + c) * s->H + iy) * s->W + ix];
                            }
                    out[((n * s->Cout + o) * s->Ho + y) * s->Wo + x] = (float)acc;
                }
}

static void test_conv(int B, int Cin, int H, int Cout, int K, int stride, int pad, int groups, int threads, int dil) {
    char name[96];
    snprintf(name, sizeof name, "conv B%d C%d->%d H%d K%d s%d p%d g%d t%d d%d", B, Cin, Cout, H, K, stride, pad, groups,
             threads, dil);
    kd_conv_shape s = {B, Cin, H, H, Cout, K, stride, pad, groups, 0, 0, threads, dil};
    s.Ho = s.Wo = kd_conv2d_out_size(H, dil * (K - 1) + 1, stride, pad);
    size_t ni = (size_t)B * Cin * H * H, nw = (size_t)Cout * (Cin / groups) * K * K, no = (size_t)B * Cout * s.Ho * s.Wo;
    conv_ctx k = {s, randn(ni, 1), randn(nw, 0.5f), randn((size_t)Cout, 0.5f), malloc(sizeof(float) * kd_conv2d_scratch_floats(&s))};
    float *out = malloc(sizeof(float) * no), *ref = malloc(sizeof(float) * no), *R = randn(no, 1);
    kd_conv2d_forward(out, k.in, k.w, k.b, &s, k.scratch);
    naive_conv(ref, k.in, k.w, k.b, &s);
    float worst = 0;
    for (size_t i = 0; i < no; i++) worst = fmaxf(worst, fabsf(out[i] - ref[i]) / (1e-4f + 1e-4f * fabsf(ref[i])));
    CHECK_MSG(worst <= 1.f, "%s: forward differs from the naive loop (%g of tolerance)", name, worst);
    float *din = calloc(ni, 4), *dw = calloc(nw, 4), *db = calloc((size_t)Cout, 4);
    kd_conv2d_backward(din, dw, db, R, k.in, k.w, &s, k.scratch);
    char w1[128];
    snprintf(w1, sizeof w1, "%s din", name);
    check_grad(w1, conv_fwd, &k, k.in, ni, din, no, R, 1e-2f, 2e-3);
    snprintf(w1, sizeof w1, "%s dw", name);
    check_grad(w1, conv_fwd, &k, k.w, nw, dw, no, R, 1e-2f, 2e-3);
    snprintf(w1, sizeof w1, "%s db", name);
    check_grad(w1, conv_fwd, &k, k.b, (size_t)Cout, db, no, R, 1e-2f, 2e-3);
    /* deterministic: a second backward into fresh buffers is bit-identical */
    float *dw2 = calloc(nw, 4), *din2 = calloc(ni, 4);
    kd_conv2d_backward(din2, dw2, NULL, R, k.in, k.w, &s, k.scratch);
    CHECK_MSG(memcmp(dw, dw2, nw * 4) == 0 && memcmp(din, din2, ni * 4) == 0, "%s: not deterministic", name);
    free(k.in); free(k.w); free(k.b); free(k.scratch); free(out); free(ref); free(R);
    free(din); free(dw); free(db); free(dw2); free(din2);
}

/* ---- the rest: one context per op ---- */
typedef struct {
    int B, C, H, W, k, stride, in_f, out_f;
    float *in, *w, *b, *aux1, *aux2, *rm, *rv;
    int32_t *idx, *labels;
    float smoothing;
} op_ctx;

static void linear_fwd(void *c, float *out) {
    op_ctx *k = c;
    kd_linear_forward(out, k->in, k->w, k->b, k->B, k->in_f, k->out_f);
}
static void maxpool_fwd(void *c, float *out) {
    op_ctx *k = c;
    kd_pool_shape s = {k->B, k->C, k->H, k->W, k->k, k->stride, 0, (k->H - k->k) / k->stride + 1,
                       (k->W - k->k) / k->stride + 1, 1, OP_THREADS};
    kd_maxpool_forward(out, k->idx, k->in, &s);
}
static void avgpool_fwd(void *c, float *out) {
    op_ctx *k = c;
    kd_pool_shape s = {k->B, k->C, k->H, k->W, k->k, k->stride, 0, (k->H - k->k) / k->stride + 1,
                       (k->W - k->k) / k->stride + 1, 1, OP_THREADS};
    kd_avgpool_forward(out, k->in, &s);
}
static void gap_fwd(void *c, float *out) {
    op_ctx *k = c;
    kd_gap_forward(out, k->in, k->B, k->C, k->H * k->W);
}
static void bn_fwd(void *c, float *out) {
    op_ctx *k = c;
    kd_batchnorm_forward_train(out, k->aux1, k->aux2, k->rm, k->rv, k->in, k->w, k->b, k->B, k->C, k->H * k->W, 1e-5f, 0.1f, OP_THREADS);
}
static void gelu_fwd(void *c, float *out) {
    op_ctx *k = c;
    kd_gelu_forward(out, k->in, (size_t)k->B * k->C, OP_THREADS);
}
static void relu_fwd(void *c, float *out) {
    op_ctx *k = c;
    kd_relu_forward(out, k->in, (size_t)k->B * k->C, OP_THREADS);
}
static void logsm_fwd(void *c, float *out) {
    op_ctx *k = c;
    kd_log_softmax_forward(out, k->in, k->B, k->C, 2.5f);
}
static void ce_fwd(void *c, float *out) {
    op_ctx *k = c;
    out[0] = kd_cross_entropy_forward(k->aux1, k->in, k->labels, k->B, k->C, k->smoothing);
}

static void test_others(void) {
    /* linear */
    op_ctx k = {.B = 4, .in_f = 7, .out_f = 5};
    k.in = randn(28, 1); k.w = randn(35, 1); k.b = randn(5, 1);
    float *R = randn(20, 1), *din = calloc(28, 4), *dw = calloc(35, 4), *db = calloc(5, 4);
    kd_linear_backward(din, dw, db, R, k.in, k.w, 4, 7, 5);
    check_grad("linear din", linear_fwd, &k, k.in, 28, din, 20, R, 1e-2f, 1e-3);
    check_grad("linear dw", linear_fwd, &k, k.w, 35, dw, 20, R, 1e-2f, 1e-3);
    check_grad("linear db", linear_fwd, &k, k.b, 5, db, 20, R, 1e-2f, 1e-3);
    free(k.in); free(k.w); free(k.b); free(R); free(din); free(dw); free(db);

    /* pools on 2 x 3 x 7 x 7 (odd size: the last row/column is dropped), maxpool 3/2 overlaps */
    op_ctx p = {.B = 2, .C = 3, .H = 7, .W = 7, .k = 3, .stride = 2};
    size_t n = 2 * 3 * 49, no = 2 * 3 * 9;
    p.in = randn(n, 1);
    p.idx = malloc(sizeof(int32_t) * no);
    R = randn(no, 1);
    float *out = malloc(sizeof(float) * n);
    din = calloc(n, 4);
    kd_pool_shape ps = {2, 3, 7, 7, 3, 2, 0, 3, 3, 1, OP_THREADS};
    kd_maxpool_forward(out, p.idx, p.in, &ps);
    kd_maxpool_backward(din, R, p.idx, &ps);
    check_grad("maxpool din", maxpool_fwd, &p, p.in, n, din, no, R, 1e-3f, 1e-2);
    memset(din, 0, n * 4);
    p.k = 2; p.stride = 2;
    ps.k = 2;
    kd_avgpool_backward(din, R, &ps);
    check_grad("avgpool din", avgpool_fwd, &p, p.in, n, din, no, R, 1e-2f, 1e-3);
    memset(din, 0, n * 4);
    kd_gap_backward(din, R, 2, 3, 49);
    check_grad("gap din", gap_fwd, &p, p.in, n, din, 6, R, 1e-2f, 1e-3);
    free(R); free(din); free(out); free(p.idx);

    /* batch norm, train mode, 3 x 2 x 5 x 5 */
    op_ctx bn = {.B = 3, .C = 2, .H = 5, .W = 5};
    n = 150;
    bn.w = randn(2, 1); bn.b = randn(2, 1);
    bn.aux1 = malloc(8); bn.aux2 = malloc(8); bn.rm = calloc(2, 4); bn.rv = calloc(2, 4);
    R = randn(n, 1);
    out = malloc(n * 4);
    din = calloc(n, 4);
    dw = calloc(2, 4);
    db = calloc(2, 4);
    kd_batchnorm_forward_train(out, bn.aux1, bn.aux2, bn.rm, bn.rv, p.in, bn.w, bn.b, 3, 2, 25, 1e-5f, 0.1f, OP_THREADS);
    bn.in = p.in;
    kd_batchnorm_backward(din, dw, db, R, bn.in, bn.w, bn.aux1, bn.aux2, 3, 2, 25, OP_THREADS);
    check_grad("batchnorm din", bn_fwd, &bn, bn.in, n, din, n, R, 1e-2f, 5e-3);
    check_grad("batchnorm dgamma", bn_fwd, &bn, bn.w, 2, dw, n, R, 1e-2f, 1e-3);
    check_grad("batchnorm dbeta", bn_fwd, &bn, bn.b, 2, db, n, R, 1e-2f, 1e-3);
    free(bn.w); free(bn.b); free(bn.aux1); free(bn.aux2); free(bn.rm); free(bn.rv); free(R); free(out); free(din);
    free(dw); free(db);

    /* elementwise: gelu, relu (away from the kink) */
    op_ctx e = {.B = 1, .C = 150, .in = p.in};
    for (int i = 0; i < 150; i++)
        if (fabsf(e.in[i]) < 0.05f) e.in[i] = 0.3f;
    R = randn(150, 1);
    out = malloc(150 * 4);
    din = calloc(150, 4);
    kd_gelu_backward(din, R, e.in, 150, OP_THREADS);
    check_grad("gelu din", gelu_fwd, &e, e.in, 150, din, 150, R, 1e-2f, 1e-3);
    memset(din, 0, 600);
    kd_relu_forward(out, e.in, 150, OP_THREADS);
    kd_relu_backward(din, R, out, 150, OP_THREADS);
    check_grad("relu din", relu_fwd, &e, e.in, 150, din, 150, R, 1e-2f, 1e-3);
    free(R); free(out); free(din);

    /* log-softmax at T = 2.5 (its backward: dz = (g - softmax * sum g) / T) and cross-entropy */
    op_ctx s = {.B = 3, .C = 5, .in = randn(15, 2)};
    R = randn(15, 1);
    float probs[15], g[15];
    kd_softmax_forward(probs, s.in, 3, 5, 2.5f);
    for (int b = 0; b < 3; b++) {
        float sum = 0;
        for (int c = 0; c < 5; c++) sum += R[b * 5 + c];
        for (int c = 0; c < 5; c++) g[b * 5 + c] = (R[b * 5 + c] - probs[b * 5 + c] * sum) / 2.5f;
    }
    check_grad("log_softmax", logsm_fwd, &s, s.in, 15, g, 15, R, 1e-2f, 1e-3);
    int32_t labels[3] = {4, 0, 2};
    s.labels = labels;
    s.aux1 = probs;
    float one = 1.f;
    for (int ls = 0; ls < 2; ls++) {
        s.smoothing = ls ? 0.1f : 0.f;
        float d[15] = {0};
        kd_cross_entropy_forward(probs, s.in, labels, 3, 5, s.smoothing);
        kd_cross_entropy_backward(d, probs, labels, 3, 5, s.smoothing, 1.f);
        check_grad(ls ? "cross_entropy smoothing 0.1" : "cross_entropy", ce_fwd, &s, s.in, 15, d, 1, &one, 1e-2f, 1e-3);
    }
    free(s.in); free(R); free(p.in);
}

int main(void) {
    kd_rng_seed(&rng, 2024, 1);
    test_conv(3, 2, 6, 4, 3, 1, 1, 1, 2, 1);   /* im2col, stride-1 fast paths */
    test_conv(3, 3, 7, 4, 3, 2, 1, 1, 2, 1);   /* strided */
    test_conv(2, 4, 5, 6, 1, 1, 0, 1, 1, 1);   /* 1x1: no im2col */
    test_conv(2, 4, 6, 6, 1, 2, 0, 1, 2, 1);   /* 1x1 strided */
    test_conv(3, 4, 6, 4, 3, 1, 1, 2, 2, 1);   /* grouped */
    test_conv(5, 4, 6, 4, 3, 1, 1, 4, 2, 1);   /* depthwise */
    test_conv(3, 4, 7, 4, 3, 2, 1, 4, 3, 1);   /* depthwise strided, 3 threads */
    test_conv(2, 3, 6, 6, 3, 1, 0, 3, 1, 1);   /* depthwise multiplier 2: grouped GEMM path */
    test_conv(3, 2, 5, 3, 5, 1, 2, 1, 2, 1);   /* 5x5 */
    /* dilation (issue 13) in every path */
    test_conv(2, 2, 7, 3, 3, 1, 2, 1, 2, 2);   /* im2col, stride-1 fast paths */
    test_conv(2, 3, 9, 4, 3, 2, 1, 1, 2, 3);   /* strided */
    test_conv(3, 4, 7, 4, 3, 1, 2, 4, 2, 2);   /* depthwise */
    test_conv(2, 4, 9, 4, 3, 2, 1, 4, 3, 2);   /* depthwise strided */
    test_conv(2, 3, 8, 6, 3, 1, 1, 3, 1, 2);   /* grouped GEMM path */
    test_others();
    TEST_DONE();
}
