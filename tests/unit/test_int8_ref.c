/* kdrt's int8 reference kernels (runtime/src/kernels_ref.c) against this file's own oracles:
 * requantization bit-exact against an int64 floor-division formulation on millions of random and
 * edge values (and within its rounding bound of exact long-double math); every kernel bit-exact
 * against a plain float-free loop on random shapes, strides, paddings and output sizes; conv and
 * fully connected within a stated error budget of float math; bad arguments give statuses and leave
 * the output alone. The arithmetic under test is specified in docs/QUANTIZATION.md. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kdrt_kernels.h"
#include "runtime/int8_oracle.h"
#include "test.h"

/* ---- Random numbers (splitmix64: self-contained and reproducible) ---------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd64(void) { return splitmix64(&rng_state); }
static int32_t rnd_s32(void) { return (int32_t)(uint32_t)rnd64(); }
/* uniform in [lo, hi] */
static int32_t rnd_range(int32_t lo, int32_t hi) { return lo + (int32_t)(rnd64() % (uint64_t)((int64_t)hi - lo + 1)); }
static double rnd_unit(void) { return (double)(rnd64() >> 11) / 9007199254740992.0; } /* [0, 1) */

/* ---- Oracles for the fixed-point primitives: tests/runtime/int8_oracle.h -------------------- */

static long n_requant_checked;

static void check_requant(int32_t acc, int32_t m, int s) {
    int32_t got = kdrt_requantize(acc, m, s), want = ref_requant(acc, m, s);
    n_requant_checked++;
    if (got != want) CHECK_MSG(got == want, "requantize(%d, %d, %d) = %d, want %d", acc, m, s, got, want);
    /* and within its two roundings of the exact value (long double holds a 64-bit product) */
    if (s <= 0 && m >= 0) {
        long double exact = (long double)acc * m * ldexpl(1.0L, s - 31);
        long double bound = 0.5L + 0.5L * ldexpl(1.0L, s) + 1e-9L;
        if (fabsl((long double)got - exact) > bound)
            CHECK_MSG(0, "requantize(%d, %d, %d) = %d, exact %.6Lf", acc, m, s, got, exact);
    }
}

static void test_requantize(void) {
    const int32_t accs[] = {INT32_MIN, INT32_MIN + 1, -(1 << 30) - 1, -(1 << 30), -(1 << 30) + 1, -65537, -3, -2, -1,
                            0, 1, 2, 3, 65537, (1 << 30) - 1, 1 << 30, (1 << 30) + 1, INT32_MAX - 1, INT32_MAX};
    const int32_t mults[] = {0, 1, 2, 1 << 29, (1 << 30) - 1, 1 << 30, (1 << 30) + 1, 1518500250, INT32_MAX - 1,
                             INT32_MAX};
    const int na = (int)(sizeof accs / sizeof accs[0]), nm = (int)(sizeof mults / sizeof mults[0]);
    /* edges x edges x every shift */
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nm; j++)
            for (int s = -31; s <= 30; s++) check_requant(accs[i], mults[j], s);
    /* the primitives on their own, full signed ranges, including INT32_MIN * INT32_MIN */
    CHECK(kdrt_doubling_high_mul(INT32_MIN, INT32_MIN) == INT32_MAX);
    CHECK(kdrt_doubling_high_mul(INT32_MIN, INT32_MAX) == -INT32_MAX);
    CHECK(kdrt_doubling_high_mul(1 << 30, 1) == 1);   /* 0.5 -> 1 */
    CHECK(kdrt_doubling_high_mul(-(1 << 30), 1) == 0); /* -0.5 -> 0: ties toward +infinity */
    CHECK(kdrt_doubling_high_mul(-(1 << 30) - 1, 1) == -1);
    CHECK(kdrt_doubling_high_mul(3 << 28, -4) == -1); /* -1.5 -> -1 */
    CHECK(kdrt_rounding_divide_by_pot(-3, 1) == -2);  /* -1.5 -> -2: ties away from zero */
    CHECK(kdrt_rounding_divide_by_pot(3, 1) == 2);
    CHECK(kdrt_rounding_divide_by_pot(-5, 2) == -1);  /* -1.25 */
    CHECK(kdrt_rounding_divide_by_pot(INT32_MIN, 31) == -1);
    CHECK(kdrt_rounding_divide_by_pot(INT32_MAX, 31) == 1);
    CHECK(kdrt_requantize(1000, 1 << 30, -1) == 250);
    CHECK(kdrt_requantize(3, 1 << 30, 0) == 2);        /* 1.5 -> 2 (first rounding) */
    CHECK(kdrt_requantize(INT32_MAX, INT32_MAX, 30) == INT32_MAX - 1); /* saturated left shift */
    int bad = 0;
    for (int i = 0; i < na; i++)
        for (int j = 0; j < na; j++) {
            if (kdrt_doubling_high_mul(accs[i], accs[j]) != ref_high_mul(accs[i], accs[j])) bad++;
            for (int e = 0; e <= 31; e++)
                if (kdrt_rounding_divide_by_pot(accs[i], e) != ref_div_pot(accs[i], e)) bad++;
        }
    CHECK_MSG(bad == 0, "%d primitive mismatches on edge values", bad);

    bad = 0;
    for (long k = 0; k < 1000000; k++) {
        int32_t a = rnd_s32(), b = rnd_s32(), x = rnd_s32();
        int e = (int)(rnd64() % 32);
        if (kdrt_doubling_high_mul(a, b) != ref_high_mul(a, b)) bad++;
        if (kdrt_rounding_divide_by_pot(x, e) != ref_div_pot(x, e)) bad++;
        /* exact ties of the division */
        if (e > 0) {
            int32_t t = (int32_t)((rnd_s32() >> e) * 2 + 1) * (int32_t)((uint32_t)1 << (e - 1));
            if (kdrt_rounding_divide_by_pot(t, e) != ref_div_pot(t, e)) bad++;
        }
    }
    CHECK_MSG(bad == 0, "%d primitive mismatches on random values", bad);

    /* random: full-range and small accumulators, kernel-style multipliers in [2^30, 2^31) and any
     * multiplier in [0, 2^31), every shift; exact ties via multiplier 2^30 and odd accumulators */
    long before = kd_test_fail;
    for (long k = 0; k < 3000000 && kd_test_fail - before < 10; k++) {
        int32_t acc;
        switch (k % 4) {
        case 0: acc = rnd_s32(); break;
        case 1: acc = rnd_range(-70000, 70000); break;
        case 2: {
            int32_t v = rnd_s32();
            acc = v >> (rnd64() % 31);
            break;
        }
        default: acc = (rnd_range(-1000000, 1000000) * 2 + 1); break;
        }
        int32_t m = (k % 3 == 0) ? (int32_t)(rnd64() >> 33) : (int32_t)((1u << 30) + (uint32_t)(rnd64() >> 34));
        if (k % 4 == 3) m = 1 << 30;
        int s = (int)(rnd64() % 62) - 31;
        check_requant(acc, m, s);
    }
    printf("requantize: %ld cases bit-exact\n", n_requant_checked);
}

/* frexp-based TFLite QuantizeMultiplier */
static void ref_quantize_multiplier(double r, int32_t *m, int *s) {
    if (r == 0.0) { *m = 0; *s = 0; return; }
    int e;
    double q = frexp(r, &e);
    long long qf = llround(q * 2147483648.0);
    if (qf == 2147483648ll) { qf /= 2; e++; }
    if (e < -31) { e = 0; qf = 0; }
    if (e > 30) { e = 30; qf = INT32_MAX; }
    *m = (int32_t)qf;
    *s = e;
}

static void test_quantize_multiplier(void) {
    int32_t m;
    int s;
    const double bad[] = {-1.0, -1e-30, INFINITY, -INFINITY, NAN};
    for (int i = 0; i < 5; i++) CHECK(kdrt_quantize_multiplier(bad[i], &m, &s) == KDRT_STATUS_BAD_QUANT);
    CHECK(kdrt_quantize_multiplier(1.0, NULL, &s) == KDRT_STATUS_BAD_ARG);
    CHECK(kdrt_quantize_multiplier(-0.0, &m, &s) == KDRT_STATUS_OK && m == 0 && s == 0);
    CHECK(kdrt_quantize_multiplier(1.0, &m, &s) == KDRT_STATUS_OK && m == 1 << 30 && s == 1);
    CHECK(kdrt_quantize_multiplier(0.5, &m, &s) == KDRT_STATUS_OK && m == 1 << 30 && s == 0);
    CHECK(kdrt_quantize_multiplier(nextafter(1.0, 0.0), &m, &s) == KDRT_STATUS_OK && m == 1 << 30 && s == 1);
    CHECK(kdrt_quantize_multiplier(4.9e-324, &m, &s) == KDRT_STATUS_OK && m == 0 && s == 0);
    CHECK(kdrt_quantize_multiplier(1e300, &m, &s) == KDRT_STATUS_OK && m == INT32_MAX && s == 30);
    int bad_n = 0;
    for (int k = 0; k < 200000; k++) {
        double mant = 0.5 + 0.5 * rnd_unit();
        int ex = (int)(rnd64() % 90) - 45;
        double r = ldexp(mant, ex);
        if (k % 7 == 0) r = ldexp(1.0, ex) * (1.0 - ldexp(1.0, -(int)(rnd64() % 54))); /* just below 2^ex */
        int32_t rm;
        int rs;
        ref_quantize_multiplier(r, &rm, &rs);
        if (kdrt_quantize_multiplier(r, &m, &s) != KDRT_STATUS_OK || m != rm || s != rs) bad_n++;
        else if (s > -31 && s < 30 && m != 0 && fabs(ldexp((double)m, s - 31) - r) > ldexp(1.0, s - 32)) bad_n++;
    }
    CHECK_MSG(bad_n == 0, "%d quantize_multiplier mismatches", bad_n);
}

/* ---- Random kernel problems ------------------------------------------------------------------ */

/* Random dimensions in [lo, hi] drawn in the order n, h, w, c (an initializer list would leave the
 * order of the draws to the compiler, and with it which problems get tested). */
static kdrt_dims rnd_dims(const int32_t lo[4], const int32_t hi[4]) {
    kdrt_dims d;
    d.n = rnd_range(lo[0], hi[0]);
    d.h = rnd_range(lo[1], hi[1]);
    d.w = rnd_range(lo[2], hi[2]);
    d.c = rnd_range(lo[3], hi[3]);
    return d;
}

static kdrt_quant rnd_quant(double lo, double span) {
    kdrt_quant q;
    q.scale = (float)(lo + span * rnd_unit());
    q.zero_point = rnd_range(-128, 127);
    return q;
}

static void fill_s8(int8_t *p, size_t n, int lo, int hi) {
    for (size_t i = 0; i < n; i++) p[i] = (int8_t)rnd_range(lo, hi);
}

static kdrt_activation rnd_activation(int32_t zp) {
    kdrt_activation a = {-128, 127};
    switch (rnd64() % 3) {
    case 0: break;
    case 1: a.min = zp; break; /* fused ReLU */
    default:
        a.min = rnd_range(-128, 127);
        a.max = rnd_range(a.min, 127);
    }
    return a;
}

/* A spatial geometry where every window overlaps the input: pad in [0, k-1], any out in
 * [1, (in - 1 + pad) / stride + 1] (covers VALID, SAME and everything between). */
static void rnd_window(int32_t in, int32_t k, int32_t *stride, int32_t *pad, int32_t *out) {
    *stride = rnd_range(1, 3);
    *pad = rnd_range(0, k - 1);
    *out = rnd_range(1, (in - 1 + *pad) / *stride + 1);
}

/* Multipliers that put typical outputs in range: real ~ 60 / (sqrt(K) * 74 * 64), spread 10x either
 * way, sometimes > 1 (positive shifts) for small K. */
static void rnd_channel_quant(int32_t *mult, int32_t *shift, int32_t n, int32_t K) {
    for (int32_t ch = 0; ch < n; ch++) {
        double real = 60.0 / (sqrt((double)K) * 74.0 * 64.0) * exp((rnd_unit() * 2 - 1) * log(10.0));
        if (rnd64() % 8 == 0) real = 1.0 + 3.0 * rnd_unit();
        int s;
        CHECK(kdrt_quantize_multiplier(real, &mult[ch], &s) == KDRT_STATUS_OK);
        shift[ch] = s;
    }
}

#define AT4(D, B_, Y_, X_, C_) ((((B_) * (D).h + (Y_)) * (D).w + (X_)) * (D).c + (C_))

/* conv2d (depthwise = 0) or depthwise conv2d (1): plain loops, int64 sums */
static void ref_conv(int depthwise, int8_t *out, kdrt_dims od, const int8_t *in, kdrt_dims id, const int8_t *f,
                     kdrt_dims fd, const int32_t *bias, const kdrt_conv_params *p, const int32_t *mult,
                     const int32_t *shift) {
    for (int b = 0; b < od.n; b++)
        for (int oy = 0; oy < od.h; oy++)
            for (int ox = 0; ox < od.w; ox++)
                for (int o = 0; o < od.c; o++) {
                    int64_t acc = bias ? bias[o] : 0;
                    for (int ky = 0; ky < fd.h; ky++)
                        for (int kx = 0; kx < fd.w; kx++) {
                            int iy = oy * p->stride.h - p->padding.h + ky, ix = ox * p->stride.w - p->padding.w + kx;
                            if (iy < 0 || iy >= id.h || ix < 0 || ix >= id.w) continue;
                            if (depthwise)
                                acc += (int64_t)(in[AT4(id, b, iy, ix, o)] - p->input_zero_point) *
                                       f[AT4(fd, 0, ky, kx, o)];
                            else
                                for (int c = 0; c < id.c; c++)
                                    acc += (int64_t)(in[AT4(id, b, iy, ix, c)] - p->input_zero_point) *
                                           f[AT4(fd, o, ky, kx, c)];
                        }
                    out[AT4(od, b, oy, ox, o)] = ref_out(acc, mult[o], shift[o], p->output_zero_point, p->activation.min, p->activation.max);
                }
}

static void test_conv_random(int depthwise) {
    int mismatches = 0, trials = depthwise ? 300 : 250;
    for (int t = 0; t < trials; t++) {
        kdrt_dims id = rnd_dims((const int32_t[4]){1, 1, 1, 1}, (const int32_t[4]){2, 10, 10, 9});
        kdrt_dims fd = rnd_dims((const int32_t[4]){1, 1, 1, id.c}, (const int32_t[4]){depthwise ? 1 : 9, 5, 5, id.c});
        kdrt_conv_params p;
        kdrt_dims od = {id.n, 0, 0, depthwise ? id.c : fd.n};
        rnd_window(id.h, fd.h, &p.stride.h, &p.padding.h, &od.h);
        rnd_window(id.w, fd.w, &p.stride.w, &p.padding.w, &od.w);
        p.input_zero_point = rnd_range(-128, 127);
        p.output_zero_point = rnd_range(-128, 127);
        p.activation = rnd_activation(p.output_zero_point);
        size_t ni = (size_t)id.n * id.h * id.w * id.c, nf = (size_t)fd.n * fd.h * fd.w * fd.c;
        size_t no = (size_t)od.n * od.h * od.w * od.c;
        int8_t *in = malloc(ni), *f = malloc(nf), *out = malloc(no), *want = malloc(no);
        int32_t bias[16], mult[16], shift[16];
        fill_s8(in, ni, -128, 127);
        fill_s8(f, nf, -127, 127);
        for (int o = 0; o < od.c; o++) bias[o] = rnd_range(-40000, 40000);
        int32_t K = depthwise ? fd.h * fd.w : fd.h * fd.w * fd.c;
        rnd_channel_quant(mult, shift, od.c, K);
        kdrt_channel_quant q = {mult, shift};
        const int32_t *bp = (t % 5 == 0) ? NULL : bias;
        ref_conv(depthwise, want, od, in, id, f, fd, bp, &p, mult, shift);
        kdrt_status st = depthwise ? kdrt_depthwise_conv2d_s8_ref(NULL, out, &od, in, &id, f, &fd, bp, &p, &q)
                                   : kdrt_conv2d_s8_ref(NULL, out, &od, in, &id, f, &fd, bp, &p, &q);
        CHECK(st == KDRT_STATUS_OK);
        if (st == KDRT_STATUS_OK && memcmp(out, want, no) != 0) {
            mismatches++;
            fprintf(stderr, "%s mismatch: in %dx%dx%dx%d filter %dx%dx%dx%d out %dx%dx%dx%d\n",
                    depthwise ? "depthwise" : "conv2d", id.n, id.h, id.w, id.c, fd.n, fd.h, fd.w, fd.c, od.n, od.h,
                    od.w, od.c);
        }
        if (p.activation.min == p.output_zero_point && p.activation.max == 127)
            for (size_t i = 0; i < no; i++) CHECK(out[i] >= p.output_zero_point); /* fused ReLU */
        free(in); free(f); free(out); free(want);
    }
    CHECK_MSG(mismatches == 0, "%s: %d of %d random problems differ", depthwise ? "depthwise" : "conv2d",
              mismatches, trials);
}

/* The 32-bit accumulator wraps modulo 2^32 (and is UB-free under UBSan): bias near INT32_MAX. */
static void test_conv_wraps(void) {
    kdrt_dims id = {1, 1, 1, 4}, fd = {1, 1, 1, 4}, od = {1, 1, 1, 1};
    int8_t in[4] = {127, 127, 127, 127}, f[4] = {127, 127, 127, 127}, out, want;
    int32_t bias = INT32_MAX - 10, mult = 1 << 30, shift = -20;
    kdrt_conv_params p = {-128, 0, {1, 1}, {0, 0}, {-128, 127}};
    kdrt_channel_quant q = {&mult, &shift};
    CHECK(kdrt_conv2d_s8_ref(NULL, &out, &od, in, &id, f, &fd, &bias, &p, &q) == KDRT_STATUS_OK);
    int64_t acc = (int64_t)bias + 4 * 255 * 127;
    want = ref_out(acc, mult, shift, 0, p.activation.min, p.activation.max);
    CHECK(out == want && out == -128); /* wrapped to a large negative value */
}

static void test_fully_connected_random(void) {
    int mismatches = 0;
    for (int t = 0; t < 300; t++) {
        kdrt_dims id = rnd_dims((const int32_t[4]){1, 1, 1, 1}, (const int32_t[4]){3, 4, 4, 20});
        kdrt_dims od = {id.n, 1, 1, rnd_range(1, 12)};
        int32_t F = id.h * id.w * id.c;
        kdrt_fc_params p;
        p.input_zero_point = rnd_range(-128, 127);
        p.output_zero_point = rnd_range(-128, 127);
        p.activation = rnd_activation(p.output_zero_point);
        int8_t *in = malloc((size_t)id.n * F), *w = malloc((size_t)od.c * F);
        int8_t out[3 * 12], want[3 * 12];
        int32_t bias[12], mult[12], shift[12];
        fill_s8(in, (size_t)id.n * F, -128, 127);
        fill_s8(w, (size_t)od.c * F, -127, 127);
        for (int o = 0; o < od.c; o++) bias[o] = rnd_range(-40000, 40000);
        rnd_channel_quant(mult, shift, od.c, F);
        kdrt_channel_quant q = {mult, shift};
        const int32_t *bp = (t % 5 == 0) ? NULL : bias;
        for (int b = 0; b < id.n; b++)
            for (int o = 0; o < od.c; o++) {
                int64_t acc = bp ? bp[o] : 0;
                for (int i = 0; i < F; i++) acc += (int64_t)(in[b * F + i] - p.input_zero_point) * w[o * F + i];
                want[b * od.c + o] = ref_out(acc, mult[o], shift[o], p.output_zero_point, p.activation.min, p.activation.max);
            }
        CHECK(kdrt_fully_connected_s8_ref(NULL, out, &od, in, &id, w, bp, &p, &q) == KDRT_STATUS_OK);
        if (memcmp(out, want, (size_t)id.n * od.c) != 0) mismatches++;
        free(in); free(w);
    }
    CHECK_MSG(mismatches == 0, "fully connected: %d of 300 random problems differ", mismatches);
}

static void test_pool_random(int average) {
    int mismatches = 0;
    for (int t = 0; t < 300; t++) {
        kdrt_dims id = rnd_dims((const int32_t[4]){1, 1, 1, 1}, (const int32_t[4]){2, 10, 10, 6});
        kdrt_pool_params p;
        kdrt_dims od = {id.n, 0, 0, id.c};
        p.filter.h = rnd_range(1, 5);
        p.filter.w = rnd_range(1, 5);
        rnd_window(id.h, p.filter.h, &p.stride.h, &p.padding.h, &od.h);
        rnd_window(id.w, p.filter.w, &p.stride.w, &p.padding.w, &od.w);
        p.activation = rnd_activation(rnd_range(-128, 127));
        size_t ni = (size_t)id.n * id.h * id.w * id.c, no = (size_t)od.n * od.h * od.w * od.c;
        int8_t *in = malloc(ni), *out = malloc(no), *want = malloc(no);
        fill_s8(in, ni, -128, 127);
        if (t % 3 == 0) fill_s8(in, ni, -3, 3); /* many exact .5 averages */
        for (int b = 0; b < od.n; b++)
            for (int oy = 0; oy < od.h; oy++)
                for (int ox = 0; ox < od.w; ox++)
                    for (int c = 0; c < od.c; c++) {
                        int64_t sum = 0, n = 0, mx = -1000;
                        for (int ky = 0; ky < p.filter.h; ky++)
                            for (int kx = 0; kx < p.filter.w; kx++) {
                                int iy = oy * p.stride.h - p.padding.h + ky, ix = ox * p.stride.w - p.padding.w + kx;
                                if (iy < 0 || iy >= id.h || ix < 0 || ix >= id.w) continue;
                                int v = in[AT4(id, b, iy, ix, c)];
                                sum += v;
                                n++;
                                if (v > mx) mx = v;
                            }
                        /* mean to nearest, ties away from zero: sign * floor((2|sum| + n) / 2n) */
                        int64_t as = sum < 0 ? -sum : sum, avg = (2 * as + n) / (2 * n);
                        int64_t r = average ? (sum < 0 ? -avg : avg) : mx;
                        if (r < p.activation.min) r = p.activation.min;
                        if (r > p.activation.max) r = p.activation.max;
                        want[AT4(od, b, oy, ox, c)] = (int8_t)r;
                    }
        kdrt_status st = average ? kdrt_avg_pool2d_s8_ref(out, &od, in, &id, &p)
                                 : kdrt_max_pool2d_s8_ref(out, &od, in, &id, &p);
        CHECK(st == KDRT_STATUS_OK);
        if (memcmp(out, want, no) != 0) mismatches++;
        free(in); free(out); free(want);
    }
    CHECK_MSG(mismatches == 0, "%s pool: %d of 300 random problems differ", average ? "avg" : "max", mismatches);
    /* avg rounding by hand: 2.5 -> 3, -2.5 -> -3, -1.5 -> -2, 1.25 -> 1 */
    kdrt_dims id = {1, 1, 4, 1}, od = {1, 1, 2, 1};
    kdrt_pool_params p = {{1, 2}, {1, 2}, {0, 0}, {-128, 127}};
    int8_t in[4] = {2, 3, -2, -3}, out[2];
    if (average) {
        CHECK(kdrt_avg_pool2d_s8_ref(out, &od, in, &id, &p) == KDRT_STATUS_OK && out[0] == 3 && out[1] == -3);
        int8_t in2[4] = {-1, -2, 1, 1};
        CHECK(kdrt_avg_pool2d_s8_ref(out, &od, in2, &id, &p) == KDRT_STATUS_OK && out[0] == -2 && out[1] == 1);
    }
}

static void test_add_random(void) {
    int mismatches = 0;
    double worst = 0;
    for (int t = 0; t < 400; t++) {
        kdrt_dims d = rnd_dims((const int32_t[4]){1, 1, 1, 1}, (const int32_t[4]){1, 8, 8, 8});
        kdrt_quant q1 = rnd_quant(0.01, 0.1);
        kdrt_quant q2 = rnd_quant(0.01, 0.1);
        kdrt_quant qo = rnd_quant(0.02, 0.2);
        kdrt_activation act = rnd_activation(qo.zero_point);
        kdrt_add_params p;
        CHECK(kdrt_add_prepare(&p, q1, q2, qo, act) == KDRT_STATUS_OK);
        CHECK(p.left_shift == 20 && p.input1_shift <= 0 && p.input2_shift <= 0);
        int32_t n = d.h * d.w * d.c;
        int8_t a[512], b[512], out[512];
        fill_s8(a, (size_t)n, -128, 127);
        fill_s8(b, (size_t)n, -128, 127);
        CHECK(kdrt_add_s8_ref(out, a, b, &d, &p) == KDRT_STATUS_OK);
        for (int32_t i = 0; i < n; i++) {
            int32_t x = ref_requant((a[i] - p.input1_zero_point) * (1 << p.left_shift), p.input1_multiplier,
                                    p.input1_shift);
            int32_t y = ref_requant((b[i] - p.input2_zero_point) * (1 << p.left_shift), p.input2_multiplier,
                                    p.input2_shift);
            int8_t want = ref_out((int64_t)x + y, p.output_multiplier, p.output_shift, p.output_zero_point, act.min, act.max);
            if (out[i] != want) mismatches++;
            /* float: within half an output step (+ 0.02 for the fixed-point intermediates) unless clamped */
            double real = q1.scale * (double)(a[i] - q1.zero_point) + q2.scale * (double)(b[i] - q2.zero_point);
            double ideal = real / qo.scale + qo.zero_point;
            if (ideal > act.min && ideal < act.max) {
                double e = fabs(out[i] - ideal);
                if (e > worst) worst = e;
            }
        }
    }
    CHECK_MSG(mismatches == 0, "add: %d elements differ", mismatches);
    CHECK_MSG(worst <= 0.52, "add: worst error %.4f output steps", worst);
    printf("add: worst error vs float %.4f output LSB (budget 0.52)\n", worst);
}

static void test_argmax_dequantize(void) {
    kdrt_dims d = {2, 1, 1, 5};
    int8_t x[10] = {3, 9, 9, -1, 0, -128, -128, -128, -128, -128};
    int32_t idx[2] = {-1, -1};
    CHECK(kdrt_argmax_s8_ref(idx, x, &d) == KDRT_STATUS_OK && idx[0] == 1 && idx[1] == 0); /* ties: lowest */
    for (int t = 0; t < 200; t++) {
        kdrt_dims r = rnd_dims((const int32_t[4]){1, 1, 1, 1}, (const int32_t[4]){3, 3, 1, 30});
        int8_t v[3 * 3 * 30];
        int32_t got[9];
        int rows = r.n * r.h;
        fill_s8(v, (size_t)rows * r.c, -128, 127);
        CHECK(kdrt_argmax_s8_ref(got, v, &r) == KDRT_STATUS_OK);
        for (int i = 0; i < rows; i++) {
            int best = 0;
            for (int c = 0; c < r.c; c++)
                if (v[i * r.c + c] > v[i * r.c + best]) best = c;
            CHECK(got[i] == best);
        }
    }
    int8_t all[256];
    float f[256];
    for (int i = 0; i < 256; i++) all[i] = (int8_t)(i - 128);
    kdrt_quant q = {0.0371f, -17};
    CHECK(kdrt_dequantize_s8_ref(f, all, 256, q) == KDRT_STATUS_OK);
    int bad = 0;
    for (int i = 0; i < 256; i++) {
        float want = q.scale * (float)(all[i] - q.zero_point);
        if (memcmp(&f[i], &want, sizeof want) != 0) bad++;
    }
    CHECK(bad == 0);
    kdrt_quant inf_q = {INFINITY, 0}, zero_q = {0.0f, 0}, zp_q = {1.0f, 128};
    CHECK(kdrt_dequantize_s8_ref(f, all, 4, inf_q) == KDRT_STATUS_BAD_QUANT);
    CHECK(kdrt_dequantize_s8_ref(f, all, 4, zero_q) == KDRT_STATUS_BAD_QUANT);
    CHECK(kdrt_dequantize_s8_ref(f, all, 4, zp_q) == KDRT_STATUS_BAD_QUANT);
    CHECK(kdrt_dequantize_s8_ref(f, all, -1, q) == KDRT_STATUS_BAD_ARG);
    CHECK(kdrt_dequantize_s8_ref(NULL, NULL, 0, q) == KDRT_STATUS_OK);
}

/* ---- Quantization error of conv and fully connected vs float math ------------------------------ */
/* Float layer y = b + sum x w. Quantized: x^ = s_x (x_q - zp_x), w^ = s_w[c] w_q, b^ = s_x s_w[c] b_q.
 * Budget per output (stated in docs/QUANTIZATION.md):
 *   |deq(out) - clamp(y)| <= s_out * (0.5 + 0.5 * 2^shift + 1e-5)                (requantization)
 *                            + sum |w^| |x^ - x| + |x| |w^ - w| + |b^ - b|        (operand rounding)
 * and, checked separately, the integer output against the exact rational value of the quantized
 * operands: |out - zp_out - acc * real| <= 0.5 + 0.5 * 2^shift + 1e-5 unless clamped. */

typedef struct {
    double worst_requant;  /* output LSB */
    double worst_vs_float; /* output LSB */
    double worst_ratio;    /* error / budget */
} err_stats;

static int8_t quant_s8(double v, double s, int32_t zp) {
    double q = round(v / s) + zp;
    return (int8_t)(q < -128 ? -128 : q > 127 ? 127 : q);
}

/* One problem: conv (fc = 0) over (1, H, W, C) -> (1, OH, OW, OC), or fc over F features -> O. */
static void float_budget_case(int fc, err_stats *st) {
    kdrt_dims id = rnd_dims((const int32_t[4]){2, 3, 3, 1}, (const int32_t[4]){2, 9, 9, 8});
    /* fc: 32 rows, so the output range is calibrated on a few hundred values, as it would be */
    if (fc) id = rnd_dims((const int32_t[4]){32, 1, 1, 8}, (const int32_t[4]){32, 1, 1, 200});
    kdrt_dims fd = rnd_dims((const int32_t[4]){1, 1, 1, id.c}, (const int32_t[4]){8, fc ? 1 : 3, fc ? 1 : 3, id.c});
    kdrt_conv_params cp = {0};
    kdrt_dims od = {id.n, 1, 1, fd.n};
    if (!fc) {
        cp.stride = (kdrt_hw){1, 1};
        cp.padding = (kdrt_hw){fd.h / 2, fd.w / 2};
        od.h = id.h + 2 * (fd.h / 2) - fd.h + 1;
        od.w = id.w + 2 * (fd.w / 2) - fd.w + 1;
    }
    int32_t K = fd.h * fd.w * fd.c;
    size_t ni = (size_t)id.n * id.h * id.w * id.c, nf = (size_t)fd.n * K, no = (size_t)od.n * od.h * od.w * od.c;
    double *x = malloc(ni * sizeof *x), *w = malloc(nf * sizeof *w), *y = malloc(no * sizeof *y);
    double *bnd = malloc(no * sizeof *bnd);
    int8_t *xq = malloc(ni), *wq = malloc(nf), *out = malloc(no);
    int32_t *acc = malloc(no * sizeof *acc);
    float *deq = malloc(no * sizeof *deq);
    double b[8], wscale[8], bhat[8];
    int32_t bq[8], mult[8], shift[8];
    float wscale_f[8];

    /* activations in [lo, hi] (post-ReLU-like when lo = 0); weights ~ uniform, per-channel spread */
    double lo = (rnd64() % 2) ? 0.0 : -1.0 - rnd_unit(), hi = 1.0 + 3.0 * rnd_unit();
    for (size_t i = 0; i < ni; i++) x[i] = lo + (hi - lo) * rnd_unit();
    float sx = (float)((hi - lo) / 255.0);
    int32_t zpx = (int32_t)lround(-128.0 - lo / sx);
    if (zpx > 127) zpx = 127;
    for (size_t i = 0; i < ni; i++) xq[i] = quant_s8(x[i], sx, zpx);
    for (int o = 0; o < fd.n; o++) {
        double amp = 0.05 + rnd_unit(), mx = 0;
        for (int k = 0; k < K; k++) {
            w[o * K + k] = amp * (2 * rnd_unit() - 1);
            if (fabs(w[o * K + k]) > mx) mx = fabs(w[o * K + k]);
        }
        wscale_f[o] = (float)(mx / 127.0);
        wscale[o] = wscale_f[o];
        for (int k = 0; k < K; k++) wq[o * K + k] = quant_s8(w[o * K + k], wscale[o], 0);
        b[o] = 0.5 * (2 * rnd_unit() - 1);
        double bs = (double)sx * wscale[o];
        bq[o] = (int32_t)lround(b[o] / bs);
        bhat[o] = bs * bq[o];
    }
    /* float outputs, their range -> output quantization, and the operand-rounding budget */
    double ymin = 0, ymax = 0;
    for (int bt = 0; bt < od.n; bt++)
        for (int oy = 0; oy < od.h; oy++)
            for (int ox = 0; ox < od.w; ox++)
                for (int o = 0; o < od.c; o++) {
                    double s = b[o], e = fabs(bhat[o] - b[o]), a = (double)bq[o];
                    for (int ky = 0; ky < fd.h; ky++)
                        for (int kx = 0; kx < fd.w; kx++) {
                            int iy = oy - cp.padding.h + ky, ix = ox - cp.padding.w + kx;
                            if (iy < 0 || iy >= id.h || ix < 0 || ix >= id.w) continue;
                            for (int c = 0; c < id.c; c++) {
                                size_t xi = AT4(id, bt, iy, ix, c), wi = (size_t)AT4(fd, o, ky, kx, c);
                                double xh = sx * (double)(xq[xi] - zpx), wh = wscale[o] * wq[wi];
                                s += x[xi] * w[wi];
                                e += fabs(wh) * fabs(xh - x[xi]) + fabs(x[xi]) * fabs(wh - w[wi]);
                                a += (double)(xq[xi] - zpx) * wq[wi];
                            }
                        }
                    size_t oi = AT4(od, bt, oy, ox, o);
                    y[oi] = s;
                    bnd[oi] = e;
                    acc[oi] = (int32_t)a;
                    if (s < ymin) ymin = s;
                    if (s > ymax) ymax = s;
                }
    kdrt_quant qo = {(float)((ymax - ymin) / 255.0), 0};
    qo.zero_point = (int32_t)lround(-128.0 - ymin / qo.scale);
    if (qo.zero_point > 127) qo.zero_point = 127;
    if (qo.zero_point < -128) qo.zero_point = -128;
    CHECK(kdrt_prepare_channel_quant(mult, shift, fd.n, sx, wscale_f, qo.scale) == KDRT_STATUS_OK);
    kdrt_channel_quant q = {mult, shift};
    kdrt_status s;
    if (fc) {
        kdrt_fc_params fp = {zpx, qo.zero_point, {-128, 127}};
        s = kdrt_fully_connected_s8_ref(NULL, out, &od, xq, &id, wq, bq, &fp, &q);
    } else {
        cp.input_zero_point = zpx;
        cp.output_zero_point = qo.zero_point;
        cp.activation = (kdrt_activation){-128, 127};
        s = kdrt_conv2d_s8_ref(NULL, out, &od, xq, &id, wq, &fd, bq, &cp, &q);
    }
    CHECK(s == KDRT_STATUS_OK);
    CHECK(kdrt_dequantize_s8_ref(deq, out, (int32_t)no, qo) == KDRT_STATUS_OK);
    double lo_rep = qo.scale * (double)(-128 - qo.zero_point), hi_rep = qo.scale * (double)(127 - qo.zero_point);
    int fails = 0;
    for (size_t i = 0; i < no; i++) {
        int o = (int)(i % (size_t)od.c);
        /* requantization, in output LSB; 1e-5 covers the float multiply of the dequantization */
        double rq = 0.5 + 0.5 * ldexp(1.0, shift[o]) + 1e-5;
        /* integer output vs the exact value of the quantized operands */
        double real = (double)sx * wscale[o] / (double)qo.scale;
        double ideal = acc[i] * real + qo.zero_point;
        if (ideal > -128 && ideal < 127) {
            double e = fabs(out[i] - ideal);
            if (e > st->worst_requant) st->worst_requant = e;
            if (e > rq) fails++;
        }
        /* dequantized output vs float math on the unquantized operands */
        double yc = y[i] < lo_rep ? lo_rep : y[i] > hi_rep ? hi_rep : y[i];
        double e = fabs((double)deq[i] - yc), budget = qo.scale * rq + bnd[i] + 1e-9;
        if (e / qo.scale > st->worst_vs_float) st->worst_vs_float = e / qo.scale;
        if (e / budget > st->worst_ratio) st->worst_ratio = e / budget;
        if (e > budget) fails++;
    }
    CHECK_MSG(fails == 0, "%s: %d outputs outside the error budget", fc ? "fc" : "conv", fails);
    free(x); free(w); free(y); free(bnd); free(xq); free(wq); free(out); free(acc); free(deq);
}

static void test_float_budget(void) {
    for (int fc = 0; fc < 2; fc++) {
        err_stats st = {0, 0, 0};
        for (int t = 0; t < 150; t++) float_budget_case(fc, &st);
        printf("%s vs float: requantization error <= %.4f LSB (budget 0.5 + 2^(shift-1)); "
               "total error <= %.3f LSB, <= %.1f%% of the stated budget\n",
               fc ? "fully connected" : "conv2d", st.worst_requant, st.worst_vs_float, 100 * st.worst_ratio);
    }
}

/* ---- Bad arguments ------------------------------------------------------------------------------ */

static void test_bad_args(void) {
    kdrt_dims id = {1, 4, 4, 2}, fd = {3, 3, 3, 2}, od = {1, 2, 2, 3};
    int8_t in[32] = {0}, f[96] = {0}, out[64];
    int32_t mult[3] = {1 << 30, 1 << 30, 1 << 30}, shift[3] = {-8, -8, -8};
    kdrt_channel_quant q = {mult, shift};
    kdrt_conv_params good = {0, 0, {1, 1}, {0, 0}, {-128, 127}};
    memset(out, 0x5a, sizeof out);
#define CONV(p_, od_, fd_, q_) kdrt_conv2d_s8_ref(NULL, out, od_, in, &id, f, fd_, NULL, p_, q_)
    CHECK(CONV(&good, &od, &fd, &q) == KDRT_STATUS_OK);
    memset(out, 0x5a, sizeof out);
    CHECK(kdrt_conv2d_s8_ref(NULL, NULL, &od, in, &id, f, &fd, NULL, &good, &q) == KDRT_STATUS_BAD_ARG);
    CHECK(CONV(NULL, &od, &fd, &q) == KDRT_STATUS_BAD_ARG);
    CHECK(CONV(&good, &od, &fd, NULL) == KDRT_STATUS_BAD_ARG);
    CHECK(CONV(&good, NULL, &fd, &q) == KDRT_STATUS_BAD_SHAPE);
    kdrt_dims od_big = {1, 5, 2, 3}, od_c = {1, 2, 2, 4}, od_n = {2, 2, 2, 3}, fd_c = {3, 3, 3, 1}, zero = {1, 0, 2, 3};
    kdrt_dims huge = {65536, 65536, 1, 3};
    CHECK(CONV(&good, &od_big, &fd, &q) == KDRT_STATUS_BAD_SHAPE); /* last window off the input */
    CHECK(CONV(&good, &od_c, &fd, &q) == KDRT_STATUS_BAD_SHAPE);
    CHECK(CONV(&good, &od_n, &fd, &q) == KDRT_STATUS_BAD_SHAPE);
    CHECK(CONV(&good, &od, &fd_c, &q) == KDRT_STATUS_BAD_SHAPE);
    CHECK(CONV(&good, &zero, &fd, &q) == KDRT_STATUS_BAD_SHAPE);
    CHECK(CONV(&good, &huge, &fd, &q) == KDRT_STATUS_BAD_SHAPE);
    kdrt_conv_params p = good;
    p.padding.h = 3; /* = filter size */
    CHECK(CONV(&p, &od, &fd, &q) == KDRT_STATUS_BAD_SHAPE);
    p = good;
    p.stride.w = 0;
    CHECK(CONV(&p, &od, &fd, &q) == KDRT_STATUS_BAD_SHAPE);
    p = good;
    p.input_zero_point = 128;
    CHECK(CONV(&p, &od, &fd, &q) == KDRT_STATUS_BAD_QUANT);
    p = good;
    p.activation = (kdrt_activation){10, 9};
    CHECK(CONV(&p, &od, &fd, &q) == KDRT_STATUS_BAD_QUANT);
    shift[1] = 31;
    CHECK(CONV(&good, &od, &fd, &q) == KDRT_STATUS_BAD_QUANT);
    shift[1] = -8;
    mult[2] = -1;
    CHECK(CONV(&good, &od, &fd, &q) == KDRT_STATUS_BAD_QUANT);
    mult[2] = 1 << 30;
    int untouched = 1;
    for (int i = 0; i < 64; i++) untouched &= out[i] == 0x5a;
    CHECK_MSG(untouched, "a rejected call wrote its output");
#undef CONV
    kdrt_dims dfd = {1, 3, 3, 2}, dod = {1, 2, 2, 2}, dod_c = {1, 2, 2, 3};
    CHECK(kdrt_depthwise_conv2d_s8_ref(NULL, out, &dod, in, &id, f, &dfd, NULL, &good, &q) == KDRT_STATUS_OK);
    CHECK(kdrt_depthwise_conv2d_s8_ref(NULL, out, &dod_c, in, &id, f, &dfd, NULL, &good, &q) == KDRT_STATUS_BAD_SHAPE);
    CHECK(kdrt_depthwise_conv2d_s8_ref(NULL, out, &dod, in, &id, f, &fd, NULL, &good, &q) == KDRT_STATUS_BAD_SHAPE);

    kdrt_fc_params fp = {0, 0, {-128, 127}};
    kdrt_dims fo = {1, 1, 1, 3}, fo_hw = {1, 2, 1, 3};
    CHECK(kdrt_fully_connected_s8_ref(NULL, out, &fo, in, &id, f, NULL, &fp, &q) == KDRT_STATUS_OK);
    CHECK(kdrt_fully_connected_s8_ref(NULL, out, &fo_hw, in, &id, f, NULL, &fp, &q) == KDRT_STATUS_BAD_SHAPE);
    CHECK(kdrt_fully_connected_s8_ref(NULL, out, &fo, in, &id, NULL, NULL, &fp, &q) == KDRT_STATUS_BAD_ARG);
    fp.output_zero_point = -129;
    CHECK(kdrt_fully_connected_s8_ref(NULL, out, &fo, in, &id, f, NULL, &fp, &q) == KDRT_STATUS_BAD_QUANT);

    kdrt_pool_params pp = {{2, 2}, {2, 2}, {0, 0}, {-128, 127}};
    kdrt_dims po = {1, 2, 2, 2}, po_c = {1, 2, 2, 1}, po_big = {1, 3, 2, 2};
    CHECK(kdrt_max_pool2d_s8_ref(out, &po, in, &id, &pp) == KDRT_STATUS_OK);
    CHECK(kdrt_avg_pool2d_s8_ref(out, &po_c, in, &id, &pp) == KDRT_STATUS_BAD_SHAPE);
    CHECK(kdrt_avg_pool2d_s8_ref(out, &po_big, in, &id, &pp) == KDRT_STATUS_BAD_SHAPE);
    pp.filter.h = 0;
    CHECK(kdrt_max_pool2d_s8_ref(out, &po, in, &id, &pp) == KDRT_STATUS_BAD_SHAPE);
    pp.filter = (kdrt_hw){300, 300};
    CHECK(kdrt_avg_pool2d_s8_ref(out, &po, in, &id, &pp) == KDRT_STATUS_BAD_SHAPE);

    kdrt_add_params ap;
    kdrt_quant q1 = {0.1f, 0}, qbad = {-0.1f, 0}, qnan = {NAN, 0};
    kdrt_activation none = {-128, 127};
    CHECK(kdrt_add_prepare(&ap, q1, qbad, q1, none) == KDRT_STATUS_BAD_QUANT);
    CHECK(kdrt_add_prepare(&ap, q1, q1, qnan, none) == KDRT_STATUS_BAD_QUANT);
    CHECK(kdrt_add_prepare(NULL, q1, q1, q1, none) == KDRT_STATUS_BAD_ARG);
    CHECK(kdrt_add_prepare(&ap, q1, q1, q1, none) == KDRT_STATUS_OK);
    CHECK(kdrt_add_s8_ref(out, in, in, &id, &ap) == KDRT_STATUS_OK);
    /* 0.1 (q - 0) + 0.1 (q - 0) at scale 0.1: out = 2q */
    int8_t a3[3] = {1, -5, 100}, b3[3] = {2, -5, 100}, o3[3];
    kdrt_dims d3 = {1, 1, 1, 3};
    CHECK(kdrt_add_s8_ref(o3, a3, b3, &d3, &ap) == KDRT_STATUS_OK && o3[0] == 3 && o3[1] == -10 && o3[2] == 127);
    ap.left_shift = 23;
    CHECK(kdrt_add_s8_ref(out, in, in, &id, &ap) == KDRT_STATUS_BAD_QUANT);
    ap.left_shift = 20;
    ap.input1_shift = 1;
    CHECK(kdrt_add_s8_ref(out, in, in, &id, &ap) == KDRT_STATUS_BAD_QUANT);
    CHECK(kdrt_argmax_s8_ref(NULL, in, &id) == KDRT_STATUS_BAD_ARG);
    int32_t idx[4];
    CHECK(kdrt_argmax_s8_ref(idx, in, &zero) == KDRT_STATUS_BAD_SHAPE);

    float ws[3] = {0.1f, 0.0f, 0.1f};
    CHECK(kdrt_prepare_channel_quant(mult, shift, 3, 0.1f, ws, 0.1f) == KDRT_STATUS_BAD_QUANT);
    ws[1] = INFINITY;
    CHECK(kdrt_prepare_channel_quant(mult, shift, 3, 0.1f, ws, 0.1f) == KDRT_STATUS_BAD_QUANT);
    ws[1] = 0.2f;
    CHECK(kdrt_prepare_channel_quant(mult, shift, 3, 0.1f, ws, 0.1f) == KDRT_STATUS_OK);
    CHECK(mult[1] >= 1 << 30 && shift[1] == -2); /* 0.1 * 0.2 / 0.1 = 0.8 * 2^-2 */
}

int main(void) {
    test_requantize();
    test_quantize_multiplier();
    test_conv_random(0);
    test_conv_random(1);
    test_conv_wraps();
    test_fully_connected_random();
    test_pool_random(0);
    test_pool_random(1);
    test_add_random();
    test_argmax_dequantize();
    test_float_budget();
    test_bad_args();
    TEST_DONE();
}
