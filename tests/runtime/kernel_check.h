/* Bit-exactness checks of kdrt's optimised kernels against `_ref`, shared by
 * tests/unit/test_kernels_opt.c (the ctest suite, links libdistill) and tests/runtime/test_kernels_rt.c
 * (runtime only: built natively and cross-built for aarch64, run under qemu). Random problems over
 * odd channel counts, 1x1 and larger filters, strides 1-3, every legal padding and output size,
 * zero points and clamps at the extremes, multipliers and shifts over their whole range (saturating
 * left shifts included), biases that make the 32-bit accumulator wrap, batch > 1; each variant runs
 * with exactly its reported scratch (misaligned, so ASan sees any overrun) and must give `_ref`'s
 * bytes, leave the bytes after the output alone, and say KDRT_STATUS_NO_SCRATCH with one byte less.
 * Test code: uses stdio and malloc, which the runtime itself never does. */
#ifndef KDRT_KERNEL_CHECK_H
#define KDRT_KERNEL_CHECK_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "int8_oracle.h"
#include "kdrt_kernels.h"

typedef kdrt_status (*kc_conv_fn)(const kdrt_ctx *, int8_t *, const kdrt_dims *, const int8_t *, const kdrt_dims *,
                                  const int8_t *, const kdrt_dims *, const int32_t *, const kdrt_conv_params *,
                                  const kdrt_channel_quant *);
typedef size_t (*kc_conv_scratch_fn)(const kdrt_dims *, const kdrt_dims *, const kdrt_dims *);
typedef kdrt_status (*kc_fc_fn)(const kdrt_ctx *, int8_t *, const kdrt_dims *, const int8_t *, const kdrt_dims *,
                                const int8_t *, const int32_t *, const kdrt_fc_params *, const kdrt_channel_quant *);
typedef size_t (*kc_fc_scratch_fn)(const kdrt_dims *, const kdrt_dims *);

/* One kernel family under test. The scratch functions may be NULL (the variant needs none). */
typedef struct kc_variant {
    const char *name;
    kc_conv_fn conv;
    kc_conv_scratch_fn conv_scratch;
    kc_conv_fn dw;
    kc_fc_fn fc;
} kc_variant;

static long kc_checked, kc_failed;

#define KC_FAIL(...)                                                                                   \
    do {                                                                                               \
        kc_failed++;                                                                                   \
        if (kc_failed <= 20) {                                                                         \
            fprintf(stderr, __VA_ARGS__);                                                              \
            fputc('\n', stderr);                                                                       \
        }                                                                                              \
    } while (0)

/* ---- random numbers (splitmix64) ----------------------------------------------------------------- */
static uint64_t kc_rng = 0x243f6a8885a308d3ull;
static uint64_t kc_rnd64(void) { return splitmix64(&kc_rng); }
static int32_t kc_range(int32_t lo, int32_t hi) { return lo + (int32_t)(kc_rnd64() % (uint64_t)((int64_t)hi - lo + 1)); }
static int kc_chance(int percent) { return (int)(kc_rnd64() % 100) < percent; }

static int32_t kc_zero_point(void) {
    int r = (int)(kc_rnd64() % 10);
    return r == 0 ? -128 : r == 1 ? 127 : kc_range(-128, 127);
}

static void kc_fill_s8(int8_t *p, size_t n, int weights) {
    int allow_min = !weights || kc_chance(30); /* weights avoid -128 (docs/QUANTIZATION.md) but kernels must not care */
    int narrow = kc_chance(15);                /* small values: outputs away from the clamps */
    for (size_t i = 0; i < n; i++) {
        int32_t v = narrow ? kc_range(-3, 3) : kc_range(allow_min ? -128 : -127, 127);
        p[i] = (int8_t)v;
    }
}

/* multipliers and shifts: mostly converter-like (M in [2^30, 2^31), shift in [-14, 1]), sometimes
 * anything in range, 0, or large left shifts that saturate */
static void kc_fill_quant(int32_t *mult, int32_t *shift, int32_t n) {
    int mode = (int)(kc_rnd64() % 6);
    for (int32_t i = 0; i < n; i++) {
        switch (mode) {
        case 0: case 1: case 2:
            mult[i] = (int32_t)((1u << 30) + (uint32_t)(kc_rnd64() >> 34));
            shift[i] = kc_range(-14, 1);
            break;
        case 3:
            mult[i] = (int32_t)(kc_rnd64() >> 33);
            shift[i] = kc_range(-31, 30);
            break;
        case 4:
            mult[i] = kc_chance(20) ? 0 : kc_chance(20) ? INT32_MAX : (int32_t)(1u << 30);
            shift[i] = kc_chance(50) ? -31 : kc_range(-31, 30);
            break;
        default:
            mult[i] = (int32_t)((1u << 30) + (uint32_t)(kc_rnd64() >> 34));
            shift[i] = kc_range(10, 30); /* saturating acc * 2^shift */
            break;
        }
    }
}

static int32_t *kc_bias(int32_t n, int *is_null) {
    int32_t *b = (int32_t *)malloc((size_t)n * sizeof(int32_t));
    int mode = (int)(kc_rnd64() % 8);
    *is_null = mode == 0;
    for (int32_t i = 0; i < n; i++)
        b[i] = mode == 1 ? (int32_t)(uint32_t)kc_rnd64()           /* any int32: the sum wraps */
               : mode == 2 ? INT32_MAX - kc_range(0, 1000)         /* wraps on the first products */
                           : kc_range(-20000, 20000);
    return b;
}

static kdrt_activation kc_activation(int32_t zp_out) {
    kdrt_activation a;
    int r = (int)(kc_rnd64() % 4);
    if (r == 0) a.min = -128, a.max = 127;
    else if (r == 1) a.min = zp_out, a.max = 127;
    else {
        a.min = kc_range(-128, 127);
        a.max = kc_range(a.min, 127);
    }
    return a;
}

/* Random legal window geometry along one axis: filter k, stride s, pad p, output count. */
static void kc_axis(int32_t in, int32_t *k, int32_t *s, int32_t *p, int32_t *out, int pointwise) {
    *k = pointwise ? 1 : kc_chance(50) ? 3 : kc_range(1, 5);
    *s = kc_chance(60) ? 1 : kc_chance(80) ? 2 : 3;
    *p = kc_range(0, *k - 1);
    if (kc_chance(40)) *p = (*k - 1) / 2;
    int32_t max_out = (in - 1 + *p) / *s + 1;
    *out = kc_chance(60) ? max_out : kc_range(1, max_out);
}

/* Scratch of exactly `need` bytes at a random misalignment, in its own allocation. */
static void *kc_scratch(size_t need, kdrt_ctx *ctx, void **base) {
    size_t off = (size_t)kc_range(0, 7);
    *base = malloc(need + off + 1);
    ctx->buf = (char *)*base + off;
    ctx->size = need;
    return ctx->buf;
}

#define KC_GUARD 64

/* Runs `run` on a fresh copy of the output (filled with a pattern, KC_GUARD bytes after it) and
 * compares with want. */
static int kc_same(const char *what, const char *variant, const int8_t *got, const int8_t *want, size_t n,
                   const char *shape) {
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            KC_FAIL("%s %s: byte %zu of %zu is %d, _ref %d (%s)", what, variant, i, n, got[i], want[i], shape);
            return 0;
        }
    for (size_t i = 0; i < KC_GUARD; i++)
        if (got[n + i] != (int8_t)0x5a) {
            KC_FAIL("%s %s: wrote past the output (%s)", what, variant, shape);
            return 0;
        }
    return 1;
}

typedef struct kc_conv_problem {
    kdrt_dims in_d, out_d, f_d;
    kdrt_conv_params p;
    kdrt_channel_quant q;
    int8_t *in, *filter;
    int32_t *bias, *mult, *shift;
    int bias_null;
    char shape[160];
} kc_conv_problem;

static void kc_conv_make(kc_conv_problem *pr, int depthwise, int32_t N, int32_t H, int32_t W, int32_t C,
                         int32_t OC, int shapes_random) {
    int pointwise = !depthwise && kc_chance(30);
    pr->in_d.n = N, pr->in_d.h = H, pr->in_d.w = W, pr->in_d.c = C;
    int32_t kh, kw, sh, sw, ph, pw, oh, ow;
    kc_axis(H, &kh, &sh, &ph, &oh, pointwise);
    kc_axis(W, &kw, &sw, &pw, &ow, pointwise);
    if (!shapes_random) { /* the caller's shape: 3x3 (or 1x1 for pointwise), pad (k-1)/2 */
        kh = kw = OC < 0 ? 1 : 3;
        sh = sw = 1;
        ph = pw = (kh - 1) / 2;
        oh = H, ow = W;
    }
    if (OC < 0) OC = -OC;
    if (depthwise) OC = C;
    pr->out_d.n = N, pr->out_d.h = oh, pr->out_d.w = ow, pr->out_d.c = OC;
    pr->f_d.n = depthwise ? 1 : OC, pr->f_d.h = kh, pr->f_d.w = kw, pr->f_d.c = C;
    pr->p.input_zero_point = kc_zero_point();
    pr->p.output_zero_point = kc_zero_point();
    pr->p.stride.h = sh, pr->p.stride.w = sw, pr->p.padding.h = ph, pr->p.padding.w = pw;
    pr->p.activation = kc_activation(pr->p.output_zero_point);
    size_t in_n = (size_t)N * H * W * C, f_n = (size_t)pr->f_d.n * kh * kw * C;
    pr->in = (int8_t *)malloc(in_n);
    pr->filter = (int8_t *)malloc(f_n);
    kc_fill_s8(pr->in, in_n, 0);
    kc_fill_s8(pr->filter, f_n, 1);
    pr->bias = kc_bias(OC, &pr->bias_null);
    pr->mult = (int32_t *)malloc((size_t)OC * sizeof(int32_t));
    pr->shift = (int32_t *)malloc((size_t)OC * sizeof(int32_t));
    kc_fill_quant(pr->mult, pr->shift, OC);
    pr->q.multiplier = pr->mult, pr->q.shift = pr->shift;
    snprintf(pr->shape, sizeof pr->shape, "%s in %dx%dx%dx%d out %dx%dx%d k %dx%d s %d,%d p %d,%d zp %d,%d act [%d,%d]%s",
             depthwise ? "dw" : "conv", N, H, W, C, oh, ow, OC, kh, kw, sh, sw, ph, pw, pr->p.input_zero_point,
             pr->p.output_zero_point, pr->p.activation.min, pr->p.activation.max, pr->bias_null ? " no bias" : "");
}

static void kc_conv_free(kc_conv_problem *pr) {
    free(pr->in), free(pr->filter), free(pr->bias), free(pr->mult), free(pr->shift);
}

/* One conv / depthwise problem through every variant. Returns 0 when a variant is unsupported. */
static void kc_conv_run(const kc_conv_problem *pr, int depthwise, const kc_variant *vs, int nv) {
    size_t out_n = (size_t)pr->out_d.n * pr->out_d.h * pr->out_d.w * pr->out_d.c;
    int8_t *want = (int8_t *)malloc(out_n + KC_GUARD), *got = (int8_t *)malloc(out_n + KC_GUARD);
    const int32_t *bias = pr->bias_null ? NULL : pr->bias;
    memset(want, 0x5a, out_n + KC_GUARD);
    kdrt_status st = (depthwise ? kdrt_depthwise_conv2d_s8_ref : kdrt_conv2d_s8_ref)(
        NULL, want, &pr->out_d, pr->in, &pr->in_d, pr->filter, &pr->f_d, bias, &pr->p, &pr->q);
    if (st != KDRT_STATUS_OK) KC_FAIL("_ref refused its problem: %d (%s)", (int)st, pr->shape);
    for (int v = 0; v < nv; v++) {
        kc_conv_fn fn = depthwise ? vs[v].dw : vs[v].conv;
        if (!fn) continue;
        size_t need = !depthwise && vs[v].conv_scratch ? vs[v].conv_scratch(&pr->out_d, &pr->in_d, &pr->f_d) : 0;
        kdrt_ctx ctx = {NULL, 0};
        void *base = NULL;
        if (need) kc_scratch(need, &ctx, &base);
        memset(got, 0x5a, out_n + KC_GUARD);
        st = fn(need ? &ctx : NULL, got, &pr->out_d, pr->in, &pr->in_d, pr->filter, &pr->f_d, bias, &pr->p, &pr->q);
        kc_checked++;
        if (st == KDRT_STATUS_UNSUPPORTED) {
            free(base);
            continue;
        }
        if (st != KDRT_STATUS_OK) KC_FAIL("%s %s: status %d (%s)", depthwise ? "dw" : "conv", vs[v].name, (int)st, pr->shape);
        else kc_same(depthwise ? "dw" : "conv", vs[v].name, got, want, out_n, pr->shape);
        if (need) { /* one byte short, or no ctx at all: NO_SCRATCH and the output untouched */
            memset(got, 0x5a, out_n + KC_GUARD);
            ctx.size = need - 1;
            st = fn(&ctx, got, &pr->out_d, pr->in, &pr->in_d, pr->filter, &pr->f_d, bias, &pr->p, &pr->q);
            kdrt_status st2 = fn(NULL, got, &pr->out_d, pr->in, &pr->in_d, pr->filter, &pr->f_d, bias, &pr->p, &pr->q);
            int untouched = 1;
            for (size_t i = 0; i < out_n + KC_GUARD; i++) untouched &= got[i] == (int8_t)0x5a;
            if (st != KDRT_STATUS_NO_SCRATCH || st2 != KDRT_STATUS_NO_SCRATCH || !untouched)
                KC_FAIL("conv %s: scratch %zu - 1 gave %d, NULL ctx %d, output %s (%s)", vs[v].name, need, (int)st,
                        (int)st2, untouched ? "untouched" : "written", pr->shape);
        }
        free(base);
    }
    free(want);
    free(got);
}

static void kc_fc_run(int32_t N, int32_t F, int32_t O, const kc_variant *vs, int nv) {
    kdrt_dims in_d, out_d;
    /* F features as H x W x C in a random factorisation (the kernel reads them flat) */
    in_d.n = N, in_d.h = 1, in_d.w = 1, in_d.c = F;
    if (F % 16 == 0 && kc_chance(50)) in_d.h = 4, in_d.w = 4, in_d.c = F / 16;
    out_d.n = N, out_d.h = 1, out_d.w = 1, out_d.c = O;
    kdrt_fc_params p;
    p.input_zero_point = kc_zero_point();
    p.output_zero_point = kc_zero_point();
    p.activation = kc_activation(p.output_zero_point);
    int8_t *in = (int8_t *)malloc((size_t)N * F), *w = (int8_t *)malloc((size_t)O * F);
    kc_fill_s8(in, (size_t)N * F, 0);
    kc_fill_s8(w, (size_t)O * F, 1);
    int bias_null;
    int32_t *bias = kc_bias(O, &bias_null);
    int32_t *mult = (int32_t *)malloc((size_t)O * 4), *shift = (int32_t *)malloc((size_t)O * 4);
    kc_fill_quant(mult, shift, O);
    kdrt_channel_quant q;
    q.multiplier = mult, q.shift = shift;
    char shape[128];
    snprintf(shape, sizeof shape, "fc %dx%d -> %d zp %d,%d act [%d,%d]%s", N, F, O, p.input_zero_point,
             p.output_zero_point, p.activation.min, p.activation.max, bias_null ? " no bias" : "");
    size_t out_n = (size_t)N * O;
    int8_t *want = (int8_t *)malloc(out_n + KC_GUARD), *got = (int8_t *)malloc(out_n + KC_GUARD);
    memset(want, 0x5a, out_n + KC_GUARD);
    if (kdrt_fully_connected_s8_ref(NULL, want, &out_d, in, &in_d, w, bias_null ? NULL : bias, &p, &q) != KDRT_STATUS_OK)
        KC_FAIL("_ref refused %s", shape);
    for (int v = 0; v < nv; v++) {
        if (!vs[v].fc) continue;
        memset(got, 0x5a, out_n + KC_GUARD);
        kdrt_status st = vs[v].fc(NULL, got, &out_d, in, &in_d, w, bias_null ? NULL : bias, &p, &q);
        kc_checked++;
        if (st == KDRT_STATUS_UNSUPPORTED) continue;
        if (st != KDRT_STATUS_OK) KC_FAIL("fc %s: status %d (%s)", vs[v].name, (int)st, shape);
        else kc_same("fc", vs[v].name, got, want, out_n, shape);
    }
    free(in), free(w), free(bias), free(mult), free(shift), free(want), free(got);
}

/* Bad arguments: every variant returns what `_ref` returns and leaves the output alone. */
static void kc_bad_args(const kc_variant *vs, int nv) {
    kc_conv_problem pr;
    kc_conv_make(&pr, 0, 1, 5, 5, 3, 4, 0);
    int8_t out[5 * 5 * 4 + 16];
    for (int trial = 0; trial < 9; trial++) {
        kc_conv_problem b = pr;
        const int8_t *filter = b.filter;
        switch (trial) {
        case 0: b.p.input_zero_point = 128; break;
        case 1: b.p.activation.min = 5, b.p.activation.max = 4; break;
        case 2: b.f_d.c = 2; break;
        case 3: b.out_d.h = 9; break;
        case 4: b.p.padding.h = 3; break;
        case 5: b.shift[1] = 31; break;
        case 6: b.mult[2] = -1; break;
        case 7: filter = NULL; break;
        default: b.out_d.n = 2; break;
        }
        kdrt_status want = kdrt_conv2d_s8_ref(NULL, out, &b.out_d, b.in, &b.in_d, filter, &b.f_d, b.bias, &b.p, &b.q);
        kdrt_status want_dw = kdrt_depthwise_conv2d_s8_ref(NULL, out, &b.out_d, b.in, &b.in_d, filter, &b.f_d, b.bias,
                                                           &b.p, &b.q);
        for (int v = 0; v < nv; v++) {
            memset(out, 0x5a, sizeof out);
            kdrt_status st = want;
            if (vs[v].conv) {
                st = vs[v].conv(NULL, out, &b.out_d, b.in, &b.in_d, filter, &b.f_d, b.bias, &b.p, &b.q);
                if (st != want) KC_FAIL("bad conv call %d: %s gave %d, _ref %d", trial, vs[v].name, (int)st, (int)want);
            }
            if (vs[v].dw) {
                st = vs[v].dw(NULL, out, &b.out_d, b.in, &b.in_d, filter, &b.f_d, b.bias, &b.p, &b.q);
                if (st != want_dw)
                    KC_FAIL("bad dw call %d: %s gave %d, _ref %d", trial, vs[v].name, (int)st, (int)want_dw);
            }
            for (size_t i = 0; i < sizeof out; i++)
                if (out[i] != (int8_t)0x5a) {
                    KC_FAIL("bad call %d: %s wrote its output", trial, vs[v].name);
                    break;
                }
            kc_checked++;
        }
        pr.shift[1] = 0, pr.mult[2] = 1 << 30;
    }
    kdrt_fc_params fp = {0, 0, {-128, 127}};
    kdrt_dims fi = {1, 1, 1, 8}, fo = {1, 1, 1, 4};
    for (int v = 0; v < nv; v++)
        if (vs[v].fc) {
            memset(out, 0x5a, sizeof out);
            fp.input_zero_point = -129;
            kdrt_status st = vs[v].fc(NULL, out, &fo, pr.in, &fi, pr.filter, NULL, &fp, &pr.q);
            fp.input_zero_point = 0;
            fo.h = 2;
            kdrt_status st2 = vs[v].fc(NULL, out, &fo, pr.in, &fi, pr.filter, NULL, &fp, &pr.q);
            fo.h = 1;
            kdrt_status st3 = vs[v].fc(NULL, out, &fo, pr.in, &fi, NULL, NULL, &fp, &pr.q);
            if (st != KDRT_STATUS_BAD_QUANT || st2 != KDRT_STATUS_BAD_SHAPE || st3 != KDRT_STATUS_BAD_ARG ||
                out[0] != (int8_t)0x5a)
                KC_FAIL("bad fc calls: %s gave %d %d %d", vs[v].name, (int)st, (int)st2, (int)st3);
            kc_checked++;
        }
    kc_conv_free(&pr);
}

/* kdrt_max_pool2d_s8 / kdrt_avg_pool2d_s8 (the dispatched pools) against the `_ref` pools. */
static void kc_pool_run(int32_t N, int32_t H, int32_t W, int32_t C, int global) {
    kdrt_dims in_d = {N, H, W, C}, out_d = {N, 1, 1, C};
    kdrt_pool_params p;
    if (global) {
        p.filter.h = p.stride.h = H;
        p.filter.w = p.stride.w = W;
        p.padding.h = p.padding.w = 0;
    } else {
        kc_axis(H, &p.filter.h, &p.stride.h, &p.padding.h, &out_d.h, 0);
        kc_axis(W, &p.filter.w, &p.stride.w, &p.padding.w, &out_d.w, 0);
    }
    int32_t zp = kc_zero_point();
    p.activation = kc_activation(zp);
    size_t ni = (size_t)N * H * W * C, no = (size_t)N * out_d.h * out_d.w * C;
    int8_t *in = malloc(ni), *want = malloc(no + KC_GUARD), *got = malloc(no + KC_GUARD);
    kc_fill_s8(in, ni, 0);
    char shape[160];
    snprintf(shape, sizeof shape, "N%d %dx%dx%d -> %dx%d, window %dx%d stride %d,%d pad %d,%d", (int)N, (int)H,
             (int)W, (int)C, (int)out_d.h, (int)out_d.w, (int)p.filter.h, (int)p.filter.w, (int)p.stride.h,
             (int)p.stride.w, (int)p.padding.h, (int)p.padding.w);
    for (int avg = 0; avg < 2; avg++) {
        memset(want, 0x5a, no + KC_GUARD);
        memset(got, 0x5a, no + KC_GUARD);
        kdrt_status sr = avg ? kdrt_avg_pool2d_s8_ref(want, &out_d, in, &in_d, &p)
                             : kdrt_max_pool2d_s8_ref(want, &out_d, in, &in_d, &p);
        kdrt_status sg = avg ? kdrt_avg_pool2d_s8(got, &out_d, in, &in_d, &p)
                             : kdrt_max_pool2d_s8(got, &out_d, in, &in_d, &p);
        if (sr != sg) KC_FAIL("%s pool: status %d, _ref %d (%s)", avg ? "avg" : "max", (int)sg, (int)sr, shape);
        else if (sr == KDRT_STATUS_OK) kc_same(avg ? "avg pool" : "max pool", "dispatched", got, want, no, shape);
        kc_checked++;
    }
    /* a bad call gets _ref's status and leaves the output alone */
    kdrt_pool_params bad = p;
    bad.activation.min = 100;
    bad.activation.max = -100;
    memset(got, 0x5a, 1);
    if (kdrt_max_pool2d_s8(got, &out_d, in, &in_d, &bad) != KDRT_STATUS_BAD_QUANT || got[0] != 0x5a ||
        kdrt_avg_pool2d_s8(NULL, &out_d, in, &in_d, &p) != KDRT_STATUS_BAD_ARG)
        KC_FAIL("bad pool calls (%s)", shape);
    kc_checked++;
    free(in);
    free(want);
    free(got);
}

/* kdrt_add_s8 (dispatched) and, on x86-64, kdrt_add_s8_avx512 called directly, against _ref, on
 * n elements with the parameters kdrt_add_prepare gives for random scales. */
static void kc_add_run(int32_t n) {
    kdrt_quant q1 = {(float)(0.001 + kc_range(1, 5000) * 1e-4), kc_zero_point()};
    kdrt_quant q2 = {(float)(0.001 + kc_range(1, 5000) * 1e-4), kc_zero_point()};
    kdrt_quant qo = {(float)(0.001 + kc_range(1, 9000) * 1e-4), kc_zero_point()};
    kdrt_add_params p;
    if (kdrt_add_prepare(&p, q1, q2, qo, kc_activation(qo.zero_point)) != KDRT_STATUS_OK) return;
    kdrt_dims d = {1, 1, 1, n};
    int8_t *a = malloc((size_t)n), *b = malloc((size_t)n), *want = malloc((size_t)n + KC_GUARD),
           *got = malloc((size_t)n + KC_GUARD);
    kc_fill_s8(a, (size_t)n, 0);
    kc_fill_s8(b, (size_t)n, 0);
    char shape[96];
    snprintf(shape, sizeof shape, "add of %d elements, scales %g %g -> %g", (int)n, (double)q1.scale,
             (double)q2.scale, (double)qo.scale);
    memset(want, 0x5a, (size_t)n + KC_GUARD);
    if (kdrt_add_s8_ref(want, a, b, &d, &p) != KDRT_STATUS_OK) KC_FAIL("add _ref refused (%s)", shape);
    for (int v = 0; v < 2; v++) {
        memset(got, 0x5a, (size_t)n + KC_GUARD);
        kdrt_status st = v == 0 ? kdrt_add_s8(got, a, b, &d, &p)
#if defined(__x86_64__)
                                : kdrt_add_s8_avx512(got, a, b, &d, &p);
#else
                                : kdrt_add_s8(got, a, b, &d, &p);
#endif
        if (st == KDRT_STATUS_UNSUPPORTED) continue;
        if (st != KDRT_STATUS_OK) KC_FAIL("add %s: status %d (%s)", v ? "avx512" : "dispatched", (int)st, shape);
        else kc_same("add", v ? "avx512" : "dispatched", got, want, (size_t)n, shape);
        kc_checked++;
    }
    kdrt_add_params bad = p;
    bad.left_shift = 23;
    if (kdrt_add_s8(got, a, b, &d, &bad) != KDRT_STATUS_BAD_QUANT || kdrt_add_s8(got, NULL, b, &d, &p) != KDRT_STATUS_BAD_ARG)
        KC_FAIL("bad add calls (%s)", shape);
    free(a); free(b); free(want); free(got);
}

/* Every variant built for this architecture, the dispatchers first; returns how many (<= 4). */
static int kc_variants(kc_variant *vs) {
    int nv = 0;
    kc_variant d = {"dispatch", kdrt_conv2d_s8, kdrt_conv2d_s8_scratch_size, kdrt_depthwise_conv2d_s8,
                    kdrt_fully_connected_s8};
    vs[nv++] = d;
#if defined(__x86_64__)
    kc_variant a512 = {"avx512", kdrt_conv2d_s8_avx512, kdrt_conv2d_s8_avx512_scratch_size,
                       kdrt_depthwise_conv2d_s8_avx512, kdrt_fully_connected_s8_avx512};
    kc_variant a2 = {"avx2", kdrt_conv2d_s8_avx2, kdrt_conv2d_s8_avx2_scratch_size, kdrt_depthwise_conv2d_s8_avx2,
                     kdrt_fully_connected_s8_avx2};
    vs[nv++] = a512;
    vs[nv++] = a2;
#endif
#if defined(__aarch64__)
    kc_variant neon = {"neon", kdrt_conv2d_s8_neon, kdrt_conv2d_s8_neon_scratch_size, kdrt_depthwise_conv2d_s8_neon,
                       kdrt_fully_connected_s8_neon};
    vs[nv++] = neon;
#endif
    return nv;
}

/* The zoo's layer shapes (examples/models), then `problems` random ones of each kind. */
static void kc_run_all(const kc_variant *vs, int nv, int problems) {
    static const int32_t zoo_conv[][5] = {
        /* H, W, C, OC (negative: 1x1), N */
        {28, 28, 1, 8, 1},  {14, 14, 8, 16, 1}, {28, 28, 1, 16, 1}, {14, 14, 16, -32, 1},
        {7, 7, 32, -64, 1}, {7, 7, 64, -64, 1}, {28, 28, 1, 32, 1}, {14, 14, 8, 16, 3},
    };
    for (size_t i = 0; i < sizeof zoo_conv / sizeof zoo_conv[0]; i++) {
        kc_conv_problem pr;
        kc_conv_make(&pr, 0, zoo_conv[i][4], zoo_conv[i][0], zoo_conv[i][1], zoo_conv[i][2], zoo_conv[i][3], 0);
        kc_conv_run(&pr, 0, vs, nv);
        kc_conv_free(&pr);
    }
    static const int32_t zoo_dw[][3] = {{28, 28, 16}, {14, 14, 32}, {7, 7, 64}};
    for (size_t i = 0; i < sizeof zoo_dw / sizeof zoo_dw[0]; i++) {
        kc_conv_problem pr;
        kc_conv_make(&pr, 1, 1, zoo_dw[i][0], zoo_dw[i][1], zoo_dw[i][2], 0, 1);
        kc_conv_run(&pr, 1, vs, nv);
        kc_conv_free(&pr);
    }
    static const int32_t zoo_fc[][3] = {{1, 784, 10}, {1, 784, 128}, {1, 128, 10}, {1, 64, 10}, {4, 784, 128}};
    for (size_t i = 0; i < sizeof zoo_fc / sizeof zoo_fc[0]; i++) kc_fc_run(zoo_fc[i][0], zoo_fc[i][1], zoo_fc[i][2], vs, nv);

    static const int32_t zoo_pool[][4] = {{28, 28, 8, 0}, {14, 14, 16, 0}, {7, 7, 64, 1}, {28, 28, 32, 0}};
    for (size_t i = 0; i < sizeof zoo_pool / sizeof zoo_pool[0]; i++)
        kc_pool_run(1, zoo_pool[i][0], zoo_pool[i][1], zoo_pool[i][2], zoo_pool[i][3]);

    kc_add_run(7 * 7 * 64); /* mobilenet-s's residual add */
    for (int i = 0; i < problems; i++) {
        kc_add_run(kc_chance(50) ? kc_range(1, 40) : kc_range(41, 5000));
        kc_pool_run(kc_chance(80) ? 1 : kc_range(2, 3), kc_range(1, 20), kc_range(1, 20),
                    kc_chance(50) ? kc_range(1, 20) : kc_range(21, 150), kc_chance(20));
        kc_conv_problem pr;
        int32_t N = kc_chance(80) ? 1 : kc_range(2, 3);
        int32_t H = kc_chance(15) ? kc_range(14, 30) : kc_range(1, 12), W = kc_chance(15) ? kc_range(14, 30) : kc_range(1, 12);
        int32_t C = kc_chance(50) ? kc_range(1, 9) : kc_range(10, 70);
        int32_t OC = kc_chance(40) ? kc_range(1, 17) : kc_range(18, 80);
        kc_conv_make(&pr, 0, N, H, W, C, OC, 1);
        kc_conv_run(&pr, 0, vs, nv);
        kc_conv_free(&pr);

        kc_conv_make(&pr, 1, N, H, W, kc_chance(50) ? kc_range(1, 20) : kc_range(21, 100), 0, 1);
        kc_conv_run(&pr, 1, vs, nv);
        kc_conv_free(&pr);

        int32_t F = kc_chance(30) ? 64 * kc_range(1, 20) + kc_range(-1, 1) : kc_range(1, 900);
        if (F < 1) F = 1;
        kc_fc_run(kc_chance(80) ? 1 : kc_range(2, 5), F, kc_chance(50) ? kc_range(1, 20) : kc_range(21, 140), vs, nv);
    }
    kc_bad_args(vs, nv);
}

#endif
