/* bench_kernels: kdrt's int8 kernels on the zoo models' layer shapes (examples/models), batch 1:
 * ns per call and GOPS (2 ops per multiply-accumulate) of `_ref`, AVX2, AVX-512 VNNI and the
 * dispatcher, plus this machine's VNNI int8 peak measured with a tight vpdpbusd loop, and the share
 * of it the biggest conv reaches. Prints a Markdown table (docs/KERNELS.md). Runtime only.
 *   bench_kernels [min_ms_per_measurement]   (default 20; the best of 7 measurements is shown) */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kdrt_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { CONV, DW, FC };

typedef struct layer {
    const char *model, *name;
    int kind;
    int32_t H, W, C, OC, K, stride, pad; /* FC: C = input features, OC = outputs */
} layer;

static const layer layers[] = {
    {"cnn-s", "conv1 3x3 1->8", CONV, 28, 28, 1, 8, 3, 1, 1},
    {"cnn-s", "conv2 3x3 8->16", CONV, 14, 14, 8, 16, 3, 1, 1},
    {"cnn-s", "fc 784->10", FC, 1, 1, 784, 10, 1, 1, 0},
    {"mobilenet-s", "stem 3x3 1->16", CONV, 28, 28, 1, 16, 3, 1, 1},
    {"mobilenet-s", "dw1 3x3/2 16", DW, 28, 28, 16, 16, 3, 2, 1},
    {"mobilenet-s", "pw1 1x1 16->32", CONV, 14, 14, 16, 32, 1, 1, 0},
    {"mobilenet-s", "dw2 3x3/2 32", DW, 14, 14, 32, 32, 3, 2, 1},
    {"mobilenet-s", "pw2 1x1 32->64", CONV, 7, 7, 32, 64, 1, 1, 0},
    {"mobilenet-s", "dw3 3x3 64", DW, 7, 7, 64, 64, 3, 1, 1},
    {"mobilenet-s", "pw3 1x1 64->64", CONV, 7, 7, 64, 64, 1, 1, 0},
    {"mobilenet-s", "fc 64->10", FC, 1, 1, 64, 10, 1, 1, 0},
    {"mlp-s", "fc1 784->128", FC, 1, 1, 784, 128, 1, 1, 0},
    {"mlp-s", "fc2 128->10", FC, 1, 1, 128, 10, 1, 1, 0},
    {"cnn-t", "conv1 3x3 1->32", CONV, 28, 28, 1, 32, 3, 1, 1},
    {"cnn-t", "conv2 3x3 32->64", CONV, 28, 28, 32, 64, 3, 1, 1},
    {"cnn-t", "conv3 3x3 64->128", CONV, 14, 14, 64, 128, 3, 1, 1},
    {"cnn-t", "fc1 6272->256", FC, 1, 1, 6272, 256, 1, 1, 0},
};
#define N_LAYERS ((int)(sizeof layers / sizeof layers[0]))

typedef kdrt_status (*conv_fn)(const kdrt_ctx *, int8_t *, const kdrt_dims *, const int8_t *, const kdrt_dims *,
                               const int8_t *, const kdrt_dims *, const int32_t *, const kdrt_conv_params *,
                               const kdrt_channel_quant *);
typedef kdrt_status (*fc_fn)(const kdrt_ctx *, int8_t *, const kdrt_dims *, const int8_t *, const kdrt_dims *,
                             const int8_t *, const int32_t *, const kdrt_fc_params *, const kdrt_channel_quant *);

typedef struct variant {
    const char *name;
    conv_fn conv, dw;
    fc_fn fc;
} variant;

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One prepared layer: buffers and parameters. */
typedef struct problem {
    kdrt_dims in_d, out_d, f_d;
    kdrt_conv_params cp;
    kdrt_fc_params fp;
    kdrt_channel_quant q;
    int8_t *in, *w, *out;
    int32_t *bias, *mult, *shift;
    kdrt_ctx ctx;
    double macs;
} problem;

static void setup(problem *p, const layer *L) {
    srand(1);
    memset(p, 0, sizeof *p);
    p->in_d = (kdrt_dims){1, L->H, L->W, L->C};
    int32_t OH = (L->H + 2 * L->pad - L->K) / L->stride + 1, OW = (L->W + 2 * L->pad - L->K) / L->stride + 1;
    if (L->kind == FC) OH = OW = 1;
    p->out_d = (kdrt_dims){1, OH, OW, L->OC};
    p->f_d = (kdrt_dims){L->kind == DW ? 1 : L->OC, L->K, L->K, L->C};
    size_t wn = L->kind == FC ? (size_t)L->OC * L->C : (size_t)p->f_d.n * L->K * L->K * L->C;
    size_t in_n = (size_t)L->H * L->W * L->C;
    p->in = malloc(in_n);
    p->w = malloc(wn);
    p->out = malloc((size_t)OH * OW * L->OC);
    p->bias = malloc((size_t)L->OC * 4);
    p->mult = malloc((size_t)L->OC * 4);
    p->shift = malloc((size_t)L->OC * 4);
    for (size_t i = 0; i < in_n; i++) p->in[i] = (int8_t)(rand() % 256 - 128);
    for (size_t i = 0; i < wn; i++) p->w[i] = (int8_t)(rand() % 255 - 127);
    for (int32_t i = 0; i < L->OC; i++) {
        p->bias[i] = rand() % 20001 - 10000;
        p->mult[i] = (1 << 30) + rand() % (1 << 29);
        p->shift[i] = -(rand() % 10) - 4;
    }
    p->q.multiplier = p->mult, p->q.shift = p->shift;
    p->cp.input_zero_point = -3, p->cp.output_zero_point = -128;
    p->cp.stride = (kdrt_hw){L->stride, L->stride};
    p->cp.padding = (kdrt_hw){L->pad, L->pad};
    p->cp.activation = (kdrt_activation){-128, 127};
    p->fp.input_zero_point = -3, p->fp.output_zero_point = 5, p->fp.activation = (kdrt_activation){5, 127};
    size_t need = L->kind == CONV ? kdrt_conv2d_s8_scratch_size(&p->out_d, &p->in_d, &p->f_d) : 0;
    p->ctx.buf = need ? malloc(need) : NULL;
    p->ctx.size = need;
    double taps = L->kind == DW ? (double)L->K * L->K : L->kind == FC ? (double)L->C : (double)L->K * L->K * L->C;
    p->macs = (double)OH * OW * L->OC * taps;
}

static void teardown(problem *p) {
    free(p->in), free(p->w), free(p->out), free(p->bias), free(p->mult), free(p->shift), free(p->ctx.buf);
}

static kdrt_status run(const problem *p, const layer *L, const variant *v) {
    if (L->kind == FC)
        return v->fc(&p->ctx, p->out, &p->out_d, p->in, &p->in_d, p->w, p->bias, &p->fp, &p->q);
    conv_fn f = L->kind == CONV ? v->conv : v->dw;
    return f(&p->ctx, p->out, &p->out_d, p->in, &p->in_d, p->w, &p->f_d, p->bias, &p->cp, &p->q);
}

/* the best of 7 measurements of at least min_ms each (the machine is shared: the minimum is the
 * least disturbed); ns per call, or -1 if unsupported */
static double time_ns(const problem *p, const layer *L, const variant *v, double min_ms) {
    if (run(p, L, v) != KDRT_STATUS_OK) return -1.0;
    double t[7];
    long iters = 1;
    for (;;) { /* calibrate */
        double t0 = now_ns();
        for (long i = 0; i < iters; i++) run(p, L, v);
        double dt = now_ns() - t0;
        if (dt > min_ms * 1e6 || iters > (1L << 30)) break;
        iters *= 2;
    }
    for (int r = 0; r < 7; r++) {
        double t0 = now_ns();
        for (long i = 0; i < iters; i++) run(p, L, v);
        t[r] = (now_ns() - t0) / (double)iters;
    }
    qsort(t, 7, sizeof t[0], cmp_double);
    return t[0];
}

#if defined(__x86_64__)
/* The VNNI int8 peak: 24 independent vpdpbusd chains on zmm0-23 in asm (so no compiler spills),
 * enough to cover latency x throughput on current cores; 64 multiply-accumulates each, 2 ops per MAC. */
#define DP(r) "vpdpbusd %%zmm30, %%zmm31, %%zmm" #r "\n\t"
__attribute__((target("avx512f,avx512vnni"), noinline)) static double vnni_peak_gops(double min_ms) {
    double best = 0.0;
    for (int r = 0; r < 5; r++) {
        long n = 0;
        double t0 = now_ns(), dt;
        do {
            long k = 10000;
            __asm__ volatile("vpxord %%zmm30, %%zmm30, %%zmm30\n\t"
                             "vpxord %%zmm31, %%zmm31, %%zmm31\n\t"
                             "1:\n\t" DP(0) DP(1) DP(2) DP(3) DP(4) DP(5) DP(6) DP(7) DP(8) DP(9) DP(10) DP(11)
                                 DP(12) DP(13) DP(14) DP(15) DP(16) DP(17) DP(18) DP(19) DP(20) DP(21) DP(22) DP(23)
                             "dec %0\n\t"
                             "jnz 1b\n\t"
                             : "+r"(k)
                             :
                             : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                               "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18",
                               "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm30", "xmm31", "cc");
            n += 10000;
            dt = now_ns() - t0;
        } while (dt < min_ms * 1e6);
        double gops = (double)n * 24 * 64 * 2 / dt;
        if (gops > best) best = gops;
    }
    return best;
}
#endif

int main(int argc, char **argv) {
    double min_ms = argc > 1 ? atof(argv[1]) : 20.0;
    variant vs[4];
    int nv = 0;
    vs[nv++] = (variant){"ref", kdrt_conv2d_s8_ref, kdrt_depthwise_conv2d_s8_ref, kdrt_fully_connected_s8_ref};
#if defined(__x86_64__)
    vs[nv++] = (variant){"avx2", kdrt_conv2d_s8_avx2, kdrt_depthwise_conv2d_s8_avx2, kdrt_fully_connected_s8_avx2};
    vs[nv++] = (variant){"avx512", kdrt_conv2d_s8_avx512, kdrt_depthwise_conv2d_s8_avx512, kdrt_fully_connected_s8_avx512};
#endif
#if defined(__aarch64__)
    vs[nv++] = (variant){"neon", kdrt_conv2d_s8_neon, kdrt_depthwise_conv2d_s8_neon, kdrt_fully_connected_s8_neon};
#endif
    vs[nv++] = (variant){"dispatch", kdrt_conv2d_s8, kdrt_depthwise_conv2d_s8, kdrt_fully_connected_s8};

    double peak = 0.0;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512vnni")) peak = vnni_peak_gops(min_ms);
#endif
    printf("| model | layer | MMAC |");
    for (int v = 0; v < nv; v++) printf(" %s ns |", vs[v].name);
    for (int v = 1; v < nv - 1; v++) printf(" %s GOPS |", vs[v].name);
    printf(" speed-up |\n|---|---|---:|");
    for (int v = 0; v < nv + nv - 2; v++) printf("---:|");
    printf("---:|\n");
    double best_conv_gops = 0.0, best_conv_macs = 0.0;
    const char *best_conv = "";
    double model_ns[8][4] = {{0}};
    const char *models[8];
    int n_models = 0;
    for (int l = 0; l < N_LAYERS; l++) {
        const layer *L = &layers[l];
        problem p;
        setup(&p, L);
        double ns[4];
        for (int v = 0; v < nv; v++) ns[v] = time_ns(&p, L, &vs[v], min_ms);
        printf("| %s | %s | %.3f |", L->model, L->name, p.macs / 1e6);
        for (int v = 0; v < nv; v++) printf(ns[v] < 0 ? " - |" : " %.0f |", ns[v]);
        for (int v = 1; v < nv - 1; v++) printf(ns[v] < 0 ? " - |" : " %.1f |", 2.0 * p.macs / ns[v]);
        printf(" %.1fx |\n", ns[0] / ns[nv - 1]);
        int m = 0;
        while (m < n_models && strcmp(models[m], L->model) != 0) m++;
        if (m == n_models) models[n_models++] = L->model;
        for (int v = 0; v < nv && v < 4; v++) model_ns[m][v] += ns[v];
        if (L->kind == CONV && p.macs >= best_conv_macs) {
            best_conv_macs = p.macs;
            best_conv = L->name;
            best_conv_gops = 2.0 * p.macs / ns[nv - 1];
        }
        teardown(&p);
    }
    printf("\nSum of the layers above per model (conv, depthwise, fc only; no pooling/add), ns:\n\n| model |");
    for (int v = 0; v < nv; v++) printf(" %s |", vs[v].name);
    printf("\n|---|");
    for (int v = 0; v < nv; v++) printf("---:|");
    printf("\n");
    for (int m = 0; m < n_models; m++) {
        printf("| %s |", models[m]);
        for (int v = 0; v < nv; v++) printf(" %.0f |", model_ns[m][v]);
        printf("\n");
    }
    if (peak > 0.0)
        printf("\nVNNI int8 peak (vpdpbusd zmm loop, 1 core): %.1f GOPS; the biggest conv (cnn-t %s, %.1f MMAC) "
               "through the dispatcher: %.1f GOPS = %.0f%% of peak\n",
               peak, best_conv, best_conv_macs / 1e6, best_conv_gops, 100.0 * best_conv_gops / peak);
    return 0;
}
