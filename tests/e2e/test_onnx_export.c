#define _GNU_SOURCE /* memmem */
/* `distill export --format onnx` checked by a real ONNX runtime (issue 13): cnn-s and mobilenet-s
 * (fixtures in tests/e2e/onnx_export/, made by `distill train -m MODEL -e 1 --limit 20000 --val 0`:
 * training them here under ASan would cost half a minute) and mlp-s, trained briefly here, are
 * exported and run by onnxruntime-node (tests/peers/ort_run.js,
 * installed by scripts/install-peers.sh) on all 10,000 Fashion-MNIST test images: the same top-1 as
 * distill on every image and logits within 1e-4. Their int8 models (kd_int8_quantize, as `distill
 * quantize`) exported as ONNX (float Conv on exact integers, then kdrt's requantization in integer
 * operators; QLinearAdd, QLinearAveragePool) agree with kdrt (kdrt_invoke on the .kdm) on >= 99.5%
 * of the images (measured: 100%, int8 logits identical on every image). Without onnxruntime-node the runtime half prints "SKIP: ..." and the test returns
 * 77 (ctest's SKIP_RETURN_CODE); the library's own checks (names, errors) run either way. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "distill/checkpoint.h"
#include "distill/data.h"
#include "distill/export.h"
#include "distill/fileio.h"
#include "distill/onnx.h"
#include "distill/quantize.h"
#include "distill/rng.h"
#include "distill/version.h"
#include "kdrt_model.h"
#include "test.h"

#define SKIP_CODE 77
#define DIR KD_BINARY_DIR "/onnx_export"

/* Run a shell command, its output in DIR/log.txt; the exit code (-1 if it did not exit). */
static int sh(const char *fmt, ...) {
    char cmd[4096], full[4400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "%s > %s/log.txt 2>&1", cmd, DIR);
    int rc = system(full);
    return rc == -1 || !WIFEXITED(rc) ? -1 : WEXITSTATUS(rc);
}

static void show_log(void) {
    char *b = NULL;
    size_t n = 0;
    kd_error e;
    if (kd_read_file(DIR "/log.txt", &b, &n, &e) == KD_STATUS_OK) fprintf(stderr, "%.*s", (int)n, b);
    free(b);
}

static float *read_floats(const char *path, size_t want) {
    char *b = NULL;
    size_t n = 0;
    kd_error e;
    if (kd_read_file(path, &b, &n, &e) != KD_STATUS_OK || n != want * sizeof(float)) {
        free(b);
        return NULL;
    }
    return (float *)b;
}

static int argmax(const float *v, int n) {
    int k = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[k]) k = i;
    return k;
}

/* onnxruntime's logits of model on the n inputs of DIR/input.f32 (NULL on failure, reported). */
static float *ort_logits(const char *onnx, int n, int classes) {
    int rc = sh("node %s/tests/peers/ort_run.js %s %s/input.f32 %d 1 28 28 %s/ort.f32 2", KD_SOURCE_DIR, onnx, DIR, n,
                DIR);
    show_log();
    CHECK_MSG(rc == 0, "onnxruntime on %s exited %d", onnx, rc);
    float *y = rc == 0 ? read_floats(DIR "/ort.f32", (size_t)n * classes) : NULL;
    CHECK_MSG(y != NULL, "no logits from onnxruntime for %s", onnx);
    return y;
}

/* Export a checkpoint of `model` as fp32 ONNX (the fixture, or when limit > 0 the model trained
 * here on `limit` images) and compare onnxruntime with distill's forward on every test image.
 * Returns the model (or NULL). */
static kd_model *check_fp32(const char *model, int limit, const float *x, int n) {
    char ck[512], onnx[512];
    int rc = 0;
    snprintf(onnx, sizeof onnx, DIR "/%s.onnx", model);
    if (limit > 0) {
        snprintf(ck, sizeof ck, DIR "/%s.safetensors", model);
        rc = sh("%s train -m %s -e 1 --limit %d --val 0 -b 64 -j 2 -o %s", KD_CLI_PATH, model, limit, ck);
        CHECK_MSG(rc == 0, "training %s exited %d", model, rc);
    } else {
        snprintf(ck, sizeof ck, KD_SOURCE_DIR "/tests/e2e/onnx_export/%s.safetensors", model);
    }
    kd_model *m = NULL;
    kd_error err;
    if (rc || kd_checkpoint_load(ck, &m, &err) != KD_STATUS_OK) {
        show_log();
        return NULL;
    }
    rc = sh("%s export %s -o %s", KD_CLI_PATH, ck, onnx);
    CHECK_MSG(rc == 0, "export of %s exited %d", model, rc);
    int B = 250, C = m->n_classes;
    size_t img = 784;
    float *ref = malloc((size_t)n * C * sizeof(float));
    CHECK(kd_model_set_batch(m, B, 2, &err) == KD_STATUS_OK);
    for (int b0 = 0; b0 < n; b0 += B) {
        int nb = n - b0 < B ? n - b0 : B;
        const float *lg = kd_model_forward(m, x + (size_t)b0 * img, nb, 0, NULL);
        memcpy(ref + (size_t)b0 * C, lg, (size_t)nb * C * sizeof(float));
    }
    float *y = rc == 0 ? ort_logits(onnx, n, C) : NULL;
    if (y) {
        int same = 0;
        double maxd = 0;
        for (int i = 0; i < n; i++) {
            same += argmax(y + (size_t)i * C, C) == argmax(ref + (size_t)i * C, C);
            for (int k = 0; k < C; k++) {
                double d = fabs((double)y[(size_t)i * C + k] - ref[(size_t)i * C + k]);
                maxd = d > maxd ? d : maxd;
            }
        }
        printf("fp32 %-12s onnxruntime vs distill: top-1 identical on %d/%d images, logits max |diff| %.3g\n", model,
               same, n, maxd);
        CHECK_MSG(same == n, "%s: top-1 differs on %d images", model, n - same);
        CHECK_MSG(maxd <= 1e-4, "%s: logits differ by %g", model, maxd);
    }
    free(y);
    free(ref);
    return m;
}

/* Quantize m (int8, 500 calibration images), export the int8 file as ONNX (`--int8-ops ops`) and
 * compare onnxruntime's top-1 with kdrt's (kdrt_invoke on the .kdm, batch 1) on every test image: at
 * least min_agree of them agree. (exact repeats kdrt's double rounding in integer operators, so the
 * int8 logits are expected to be identical; qlinear rounds once, in float; docs/ONNX.md.) */
static void check_int8(kd_model *m, const kd_dataset *train, const float *x, const int32_t *labels, int n,
                       const char *ops, double min_agree) {
    kd_error err;
    kd_calib_config cfg;
    kd_calib_config_default(&cfg);
    cfg.n_images = 500;
    cfg.threads = 2;
    kd_int8_model *q = NULL;
    CHECK_MSG(kd_int8_quantize(m, train, &cfg, &q, &err) == KD_STATUS_OK, "%s", err.msg);
    if (!q) return;
    char i8[512], onnx[512];
    snprintf(i8, sizeof i8, DIR "/%s.int8.safetensors", m->name);
    snprintf(onnx, sizeof onnx, DIR "/%s.int8.%s.onnx", m->name, ops);
    CHECK_MSG(kd_int8_save(i8, q, &err) == KD_STATUS_OK, "%s", err.msg);
    int rc = sh("%s export %s --int8-ops %s -o %s", KD_CLI_PATH, i8, ops, onnx);
    CHECK_MSG(rc == 0, "export of %s exited %d", i8, rc);
    float *y = rc == 0 ? ort_logits(onnx, n, q->n_classes) : NULL;

    unsigned char *bytes = NULL;
    size_t len = 0;
    kdrt_model rm;
    void *arena = NULL;
    int ok = kd_kdm_write(q, &bytes, &len, &err) == KD_STATUS_OK && kdrt_model_load(&rm, bytes, len) == KDRT_STATUS_OK;
    size_t need = ok ? kdrt_arena_size(&rm) : 0;
    ok = ok && (arena = aligned_alloc(64, (need + 63) / 64 * 64)) && kdrt_prepare(&rm, arena, need) == KDRT_STATUS_OK;
    CHECK_MSG(ok, "%s: the .kdm does not load in kdrt", m->name);
    if (ok && y) {
        int C = q->n_classes, agree = 0, same_q = 0, maxd = 0, right_ort = 0, right_kdrt = 0;
        size_t img = 784;
        int8_t in[784], lg[64];
        for (int i = 0; i < n; i++) {
            kd_int8_quantize_input(q, in, x + (size_t)i * img, 1);
            if (kdrt_invoke(&rm, in, lg) != KDRT_STATUS_OK) {
                CHECK_MSG(0, "kdrt_invoke failed on image %d", i);
                break;
            }
            const float *o = y + (size_t)i * C;
            int a = argmax(o, C), k8 = (int)kdrt_output_argmax(&rm, lg);
            agree += a == k8;
            right_ort += a == labels[i];
            right_kdrt += k8 == labels[i];
            int same = 1; /* ORT's logits back on the int8 grid of the last layer */
            kdrt_quant oq = q->layers[q->n_layers - 1].out_q;
            for (int k = 0; k < C; k++) {
                int v = (int)lrintf(o[k] / oq.scale) + oq.zero_point, d = abs(v - lg[k]);
                same &= d == 0;
                maxd = d > maxd ? d : maxd;
            }
            same_q += same;
        }
        printf("int8 %-12s (%s) onnxruntime vs kdrt: top-1 agrees on %d/%d images (%.2f%%), int8 logits identical on "
               "%d, max |diff| %d steps; accuracy %.2f%% (onnxruntime) vs %.2f%% (kdrt)\n", m->name, ops, agree, n,
               100.0 * agree / n, same_q, maxd, 100.0 * right_ort / n, 100.0 * right_kdrt / n);
        CHECK_MSG(agree >= min_agree * n, "%s (%s): int8 top-1 agreement %d/%d below %.1f%%", m->name, ops, agree, n,
                  100 * min_agree);
    }
    free(arena);
    free(bytes);
    free(y);
    kd_int8_free(q);
}

/* ---- The layers of issue 13 against their definitions in model.h, through onnxruntime ----------- *
 * A model using every new layer (clip, leaky ReLU, sigmoid, hard sigmoid, hard swish, broadcast mul,
 * concat, pad, scale, dilated conv, pools with padding, ceil mode and counted padding), built here as
 * a layer table, is exported and run by onnxruntime; its output is compared with a plain C
 * computation of model.h's definitions (the training engine's own forward comes with the layers). */

typedef struct tmodel {
    kd_model m;
    kd_layer L[16];
    float params[512];
} tmodel;

static int add_layer(tmodel *t, kd_layer_type type, const char *name, int in0, int in1, int in2) {
    kd_model *m = &t->m;
    kd_layer *L = &t->L[m->n_layers];
    memset(L, 0, sizeof *L);
    L->type = type;
    snprintf(L->name, sizeof L->name, "%s", name);
    int ins[3] = {in0, in1, in2};
    for (int k = 0; k < 3 && ins[k] != -2; k++) L->inputs[L->n_inputs++] = ins[k];
    const kd_layer *P = in0 < 0 ? NULL : &t->L[in0];
    L->in_c = P ? P->c : m->in_c;
    L->in_h = P ? P->h : m->in_h;
    L->in_w = P ? P->w : m->in_w;
    L->c = L->in_c;
    L->h = L->in_h;
    L->w = L->in_w;
    L->dilation = 1;
    return m->n_layers++;
}

static void add_params(tmodel *t, kd_layer *L, size_t nw, size_t nb, size_t *used) {
    L->w_off = *used;
    L->w_size = nw;
    L->b_off = *used + nw;
    L->b_size = nb;
    for (size_t i = 0; i < nw + nb; i++) t->params[*used + i] = (float)((int)((*used + i) * 37 % 23) - 11) / 16.f;
    *used += nw + nb;
}

static void build_new_layers(tmodel *t) {
    memset(t, 0, sizeof *t);
    kd_model *m = &t->m;
    snprintf(m->name, sizeof m->name, "new-layers");
    m->in_c = 2; m->in_h = 5; m->in_w = 4;
    m->layers = t->L;
    m->params = t->params;
    size_t used = 0;
    kd_layer *L;
    int clip = add_layer(t, KD_LAYER_CLIP, "clip", -1, -2, -2);
    t->L[clip].lo = -0.5f; t->L[clip].hi = 0.7f;
    int leaky = add_layer(t, KD_LAYER_LEAKY_RELU, "leaky", -1, -2, -2);
    t->L[leaky].alpha = 0.1f;
    int sig = add_layer(t, KD_LAYER_SIGMOID, "sig", clip, -2, -2);
    int hsig = add_layer(t, KD_LAYER_HARD_SIGMOID, "hsig", leaky, -2, -2);
    t->L[hsig].alpha = 0.2f; t->L[hsig].beta = 0.5f;
    int hsw = add_layer(t, KD_LAYER_HARD_SWISH, "hswish", -1, -2, -2);
    int gap = add_layer(t, KD_LAYER_GLOBAL_AVGPOOL, "gap", hsig, -2, -2);
    t->L[gap].h = t->L[gap].w = 1;
    int mul = add_layer(t, KD_LAYER_MUL, "se_mul", sig, gap, -2); /* (2,5,4) * (2,1,1) */
    int cat = add_layer(t, KD_LAYER_CONCAT, "cat", hsw, mul, -1);
    t->L[cat].c = 6;
    int pad = add_layer(t, KD_LAYER_PAD, "pad", cat, -2, -2);
    L = &t->L[pad];
    L->pads[0] = 1; L->pads[1] = 0; L->pads[2] = 2; L->pads[3] = 1; L->value = 0.25f;
    L->h = 5 + 3; L->w = 4 + 1;
    int sc = add_layer(t, KD_LAYER_SCALE, "scale", pad, -2, -2);
    add_params(t, &t->L[sc], 6, 6, &used);
    int conv = add_layer(t, KD_LAYER_CONV2D, "dconv", sc, -2, -2);
    L = &t->L[conv];
    L->out = L->c = 3; L->kernel = 3; L->stride = 1; L->pad = 2; L->dilation = 2; L->groups = 1; L->bias = 1;
    add_params(t, L, 3 * 6 * 9, 3, &used); /* output (3, 8, 5) */
    int mp = add_layer(t, KD_LAYER_MAXPOOL, "maxpool", conv, -2, -2);
    L = &t->L[mp];
    L->kernel = 3; L->stride = 2; L->pad = 1; L->ceil_mode = 1;
    L->h = 5; L->w = 3; /* PyTorch: ceil((8 + 2 - 3) / 2) + 1 = 5 (last window starts at 8 < 8 + 1), ceil(4 / 2) + 1 = 3 */
    int ap = add_layer(t, KD_LAYER_AVGPOOL, "avgpool", mp, -2, -2);
    L = &t->L[ap];
    L->kernel = 2; L->stride = 2; L->pad = 1; L->count_pad = 1;
    L->h = 3; L->w = 2;
    int fl = add_layer(t, KD_LAYER_FLATTEN, "flatten", ap, -2, -2);
    t->L[fl].c = 3 * 3 * 2; t->L[fl].h = t->L[fl].w = 1;
    m->n_classes = 18;
    m->n_params = used;
}

/* model.h's definition of each layer, one sample, NCHW; out of every layer in bufs[i]. */
static float *ref_at(float **bufs, const float *x, int j) { return j < 0 ? (float *)x : bufs[j]; }

static void ref_forward(const tmodel *t, const float *x, float **bufs) {
    const kd_model *m = &t->m;
    for (int i = 0; i < m->n_layers; i++) {
        const kd_layer *L = &m->layers[i];
        const float *a = ref_at(bufs, x, L->inputs[0]), *w = m->params + L->w_off, *b = m->params + L->b_off;
        float *o = bufs[i];
        int C = L->in_c, H = L->in_h, W = L->in_w, n = C * H * W;
        switch (L->type) {
        case KD_LAYER_CLIP: for (int k = 0; k < n; k++) o[k] = fminf(fmaxf(a[k], L->lo), L->hi); break;
        case KD_LAYER_LEAKY_RELU: for (int k = 0; k < n; k++) o[k] = a[k] > 0 ? a[k] : L->alpha * a[k]; break;
        case KD_LAYER_SIGMOID: for (int k = 0; k < n; k++) o[k] = 1.f / (1.f + expf(-a[k])); break;
        case KD_LAYER_HARD_SIGMOID:
            for (int k = 0; k < n; k++) o[k] = fminf(fmaxf(L->alpha * a[k] + L->beta, 0.f), 1.f);
            break;
        case KD_LAYER_HARD_SWISH: for (int k = 0; k < n; k++) o[k] = a[k] * fminf(fmaxf(a[k] / 6 + 0.5f, 0.f), 1.f); break;
        case KD_LAYER_GLOBAL_AVGPOOL:
            for (int c = 0; c < C; c++) {
                float s = 0;
                for (int k = 0; k < H * W; k++) s += a[c * H * W + k];
                o[c] = s / (H * W);
            }
            break;
        case KD_LAYER_MUL: {
            const float *g = ref_at(bufs, x, L->inputs[1]); /* (C, 1, 1) */
            for (int k = 0; k < n; k++) o[k] = a[k] * g[k / (H * W)];
            break;
        }
        case KD_LAYER_CONCAT: {
            size_t off = 0;
            for (int k = 0; k < L->n_inputs; k++) {
                int j = L->inputs[k];
                size_t len = j < 0 ? (size_t)m->in_c * m->in_h * m->in_w : kd_layer_out_size(&m->layers[j]);
                memcpy(o + off, ref_at(bufs, x, j), len * sizeof(float));
                off += len;
            }
            break;
        }
        case KD_LAYER_PAD:
            for (int c = 0; c < C; c++)
                for (int y = 0; y < L->h; y++)
                    for (int xx = 0; xx < L->w; xx++) {
                        int sy = y - L->pads[0], sx = xx - L->pads[1];
                        o[(c * L->h + y) * L->w + xx] = sy >= 0 && sy < H && sx >= 0 && sx < W ? a[(c * H + sy) * W + sx] : L->value;
                    }
            break;
        case KD_LAYER_SCALE: for (int k = 0; k < n; k++) o[k] = a[k] * w[k / (H * W)] + b[k / (H * W)]; break;
        case KD_LAYER_CONV2D:
            for (int oc = 0; oc < L->c; oc++)
                for (int y = 0; y < L->h; y++)
                    for (int xx = 0; xx < L->w; xx++) {
                        double s = b[oc];
                        for (int c = 0; c < C; c++)
                            for (int ky = 0; ky < L->kernel; ky++)
                                for (int kx = 0; kx < L->kernel; kx++) {
                                    int sy = y * L->stride - L->pad + ky * L->dilation;
                                    int sx = xx * L->stride - L->pad + kx * L->dilation;
                                    if (sy >= 0 && sy < H && sx >= 0 && sx < W)
                                        s += (double)a[(c * H + sy) * W + sx] *
                                             w[((oc * C + c) * L->kernel + ky) * L->kernel + kx];
                                }
                        o[(oc * L->h + y) * L->w + xx] = (float)s;
                    }
            break;
        case KD_LAYER_MAXPOOL:
        case KD_LAYER_AVGPOOL:
            for (int c = 0; c < C; c++)
                for (int y = 0; y < L->h; y++)
                    for (int xx = 0; xx < L->w; xx++) {
                        int y0 = y * L->stride - L->pad, x0 = xx * L->stride - L->pad;
                        /* PyTorch: the divisor counts the window inside the padded input */
                        int y1 = y0 + L->kernel < H + L->pad ? y0 + L->kernel : H + L->pad;
                        int x1 = x0 + L->kernel < W + L->pad ? x0 + L->kernel : W + L->pad;
                        int div = L->count_pad ? (y1 - y0) * (x1 - x0) : 0;
                        float mx = -INFINITY, s = 0;
                        for (int sy = y0 > 0 ? y0 : 0; sy < y1 && sy < H; sy++)
                            for (int sx = x0 > 0 ? x0 : 0; sx < x1 && sx < W; sx++) {
                                mx = fmaxf(mx, a[(c * H + sy) * W + sx]);
                                s += a[(c * H + sy) * W + sx];
                                if (!L->count_pad) div++;
                            }
                        o[(c * L->h + y) * L->w + xx] = L->type == KD_LAYER_MAXPOOL ? mx : s / div;
                    }
            break;
        case KD_LAYER_FLATTEN: memcpy(o, a, (size_t)n * sizeof(float)); break;
        default: break;
        }
    }
}

static void check_new_layers(void) {
    static tmodel t;
    build_new_layers(&t);
    kd_error err;
    unsigned char *bytes = NULL;
    size_t len = 0;
    CHECK_MSG(kd_onnx_export_fp32(&t.m, &bytes, &len, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(kd_write_file_atomic(DIR "/new-layers.onnx", bytes, len, &err) == KD_STATUS_OK);
    free(bytes);
    enum { N = 3, IN = 2 * 5 * 4 };
    float x[N * IN], want[N * 18], *bufs[16];
    kd_rng r;
    kd_rng_seed(&r, 7, 7);
    for (int i = 0; i < N * IN; i++) x[i] = 8.f * kd_rng_uniform(&r) - 4.f;
    for (int i = 0; i < t.m.n_layers; i++) bufs[i] = malloc(kd_layer_out_size(&t.L[i]) * sizeof(float));
    for (int b = 0; b < N; b++) {
        ref_forward(&t, x + b * IN, bufs);
        memcpy(want + b * 18, bufs[t.m.n_layers - 1], 18 * sizeof(float));
    }
    for (int i = 0; i < t.m.n_layers; i++) free(bufs[i]);
    CHECK(kd_write_file_atomic(DIR "/new-layers.f32", x, sizeof x, &err) == KD_STATUS_OK);
    int rc = sh("node %s/tests/peers/ort_run.js %s/new-layers.onnx %s/new-layers.f32 %d 2 5 4 %s/ort.f32 1", KD_SOURCE_DIR,
                DIR, DIR, N, DIR);
    CHECK_MSG(rc == 0, "onnxruntime on the new layers exited %d", rc);
    if (rc) show_log();
    float *y = rc ? NULL : read_floats(DIR "/ort.f32", N * 18);
    CHECK_MSG(rc || y, "onnxruntime's output of the new layers is not (%d, 18)", N);
    double maxd = 0;
    for (int i = 0; y && i < N * 18; i++) maxd = fmax(maxd, fabs((double)y[i] - want[i]));
    if (y) printf("fp32 new layers  onnxruntime vs model.h's definitions: max |diff| %.3g\n", maxd);
    CHECK_MSG(maxd <= 1e-5, "the new layers differ by %g", maxd);
    free(y);
}

/* The training engine's own forward of a model with every layer type, against onnxruntime on the
 * first 64 test images. Before the engine knows the issue-13 layers (branch layers) the model YAML
 * refuses them: this part says so and is left out. */
static void check_yaml_layers(const float *x) {
    const char *yaml =
        "name: every-layer\ninput: [1, 28, 28]\nlayers:\n"
        "  - {name: stem, type: conv2d, out: 8, kernel: 3, pad: 2, dilation: 2}\n"
        "  - {name: bn, type: batchnorm}\n"
        "  - {name: relu6, type: clip, lo: 0, hi: 6}\n"
        "  - {name: pool1, type: maxpool, kernel: 3, stride: 2, pad: 1, ceil_mode: true}\n"
        "  - {name: leaky, type: leaky_relu, alpha: 0.1}\n"
        "  - {name: padded, type: pad, pads: [1, 0, 2, 1], value: 0.5}\n"
        "  - {name: dw, type: conv2d, out: 8, kernel: 3, groups: 8}\n"
        "  - {name: hswish, type: hard_swish}\n"
        "  - {name: se_pool, type: global_avgpool}\n"
        "  - {name: se_fc, type: conv2d, out: 8, kernel: 1}\n"
        "  - {name: se_gate, type: hard_sigmoid}\n"
        "  - {name: se, type: mul, inputs: [hswish, se_gate]}\n"
        "  - {name: sig, type: sigmoid, inputs: [dw]}\n"
        "  - {name: cat, type: concat, inputs: [se, sig]}\n"
        "  - {name: sc, type: scale}\n"
        "  - {name: sc1, type: scale, per_channel: false}\n"
        "  - {name: res, type: add, inputs: [sc1, cat]}\n"
        "  - {name: pool2, type: avgpool, kernel: 2, stride: 2, pad: 1, count_pad: false, ceil_mode: true}\n"
        "  - {name: pool3, type: avgpool, kernel: 3, stride: 1, pad: 1}\n"
        "  - {name: gelu, type: gelu}\n"
        "  - {name: drop, type: dropout}\n"
        "  - {name: fc, type: linear, out: 10}\n";
    kd_error err;
    kd_model *m = NULL;
    if (kd_model_from_yaml(&m, yaml, "every-layer.yaml", 5, &err) != KD_STATUS_OK) {
        printf("note: this build's model YAML does not take the issue-13 layers (%s): the training engine's "
               "forward of them is not compared\n", err.msg);
        return;
    }
    kd_rng r; /* parameters away from their initial 1 and 0, running statistics away from 0 and 1 */
    kd_rng_seed(&r, 11, 11);
    for (int i = 0; i < m->n_layers; i++) {
        kd_layer *L = &m->layers[i];
        if (L->type == KD_LAYER_SCALE)
            for (size_t k = 0; k < L->w_size + L->b_size; k++) m->params[L->w_off + k] = 0.5f + kd_rng_uniform(&r);
        if (L->type == KD_LAYER_BATCHNORM)
            for (int k = 0; k < 2 * L->c; k++) m->buffers[L->buf_off + k] = 0.2f + kd_rng_uniform(&r);
    }
    enum { N = 64 };
    unsigned char *bytes = NULL;
    size_t len = 0;
    CHECK_MSG(kd_onnx_export_fp32(m, &bytes, &len, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(kd_write_file_atomic(DIR "/every-layer.onnx", bytes, len, &err) == KD_STATUS_OK);
    CHECK(kd_write_file_atomic(DIR "/few.f32", x, (size_t)N * 784 * sizeof(float), &err) == KD_STATUS_OK);
    free(bytes);
    CHECK(kd_model_set_batch(m, N, 2, &err) == KD_STATUS_OK);
    const float *want = kd_model_forward(m, x, N, 0, NULL);
    int rc = sh("node %s/tests/peers/ort_run.js %s/every-layer.onnx %s/few.f32 %d 1 28 28 %s/ort.f32 1", KD_SOURCE_DIR,
                DIR, DIR, N, DIR);
    CHECK_MSG(rc == 0, "onnxruntime on every-layer.onnx exited %d", rc);
    if (rc) show_log();
    float *y = rc ? NULL : read_floats(DIR "/ort.f32", N * 10);
    double maxd = 0;
    for (int i = 0; y && i < N * 10; i++) maxd = fmax(maxd, fabs((double)y[i] - want[i]));
    if (y) printf("fp32 every layer onnxruntime vs distill's forward (%d images): max |diff| %.3g\n", N, maxd);
    CHECK_MSG(y && maxd <= 1e-4, "every-layer.onnx differs from distill by %g", maxd);
    free(y);
    kd_model_free(m);
}

/* What needs no runtime: the graph's names and producer, and the errors. */
static void check_library(const kd_dataset *train) {
    kd_error err;
    kd_model *m = NULL;
    unsigned char *b = NULL;
    size_t n = 0;
    CHECK(kd_model_create(&m, "mobilenet-s", 1, &err) == KD_STATUS_OK);
    if (!m) return;
    CHECK(kd_onnx_export_fp32(m, &b, &n, &err) == KD_STATUS_OK);
    const char *want[] = {"distill", KD_VERSION_STRING, "mobilenet-s", KD_ONNX_INPUT_NAME, KD_ONNX_OUTPUT_NAME,
                          "BatchNormalization", "GlobalAveragePool", "res3_relu"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        CHECK_MSG(b && memmem(b, n, want[i], strlen(want[i])), "'%s' not in the exported graph", want[i]);
    free(b);
    kd_model_free(m);
    char *log = NULL;
    size_t ln = 0;
    CHECK(sh("%s export cnn-s --format onnnx -o %s/x.onnx", KD_CLI_PATH, DIR) == 2);
    CHECK(kd_read_file(DIR "/log.txt", &log, &ln, &err) == KD_STATUS_OK && strstr(log, "kdm, c or onnx, got 'onnnx'"));
    free(log);

    /* a layer whose name is the graph input's: an error naming it, no bytes */
    const char *yaml = "name: clash\ninput: [1, 4, 4]\nlayers:\n  - {name: input, type: relu}\n"
                       "  - {type: flatten}\n  - {type: linear, out: 3}\n";
    CHECK(kd_model_from_yaml(&m, yaml, "clash.yaml", 1, &err) == KD_STATUS_OK);
    b = (unsigned char *)"x";
    CHECK(m && kd_onnx_export_fp32(m, &b, &n, &err) == KD_STATUS_BAD_MODEL && b == NULL &&
          strstr(err.msg, "'input'"));
    kd_model_free(m);

    /* an int8 model whose layer does not read what its input gives: an error naming the layer */
    CHECK(kd_model_create(&m, "cnn-s", 3, &err) == KD_STATUS_OK);
    kd_calib_config cfg;
    kd_calib_config_default(&cfg);
    cfg.n_images = 8;
    kd_int8_model *q = NULL;
    CHECK(m && kd_int8_quantize(m, train, &cfg, &q, &err) == KD_STATUS_OK);
    if (q) {
        /* qlinear: QLinearConv for every conv and fc, no integer requantization */
        CHECK(kd_onnx_export_int8(q, KD_ONNX_INT8_QLINEAR, &b, &n, &err) == KD_STATUS_OK &&
              memmem(b, n, "QLinearConv", 11) && !memmem(b, n, "/requant", 8));
        free(b);
        b = NULL;
        /* kdrt's requantization in integer operators, no QLinearConv */
        CHECK(kd_onnx_export_int8(q, KD_ONNX_INT8_EXACT, &b, &n, &err) == KD_STATUS_OK && memmem(b, n, "/requant11", 10) &&
              !memmem(b, n, "QLinearConv", 11));
        free(b);
        /* a multiplier above 1 (shift > 0) is not expressed in integers: that layer is a QLinearConv */
        b = NULL;
        int32_t shift0 = q->layers[0].shift[0];
        q->layers[0].shift[0] = 1;
        CHECK_MSG(kd_onnx_export_int8(q, KD_ONNX_INT8_EXACT, &b, &n, &err) == KD_STATUS_OK && memmem(b, n, "QLinearConv", 11) &&
                  memmem(b, n, "/requant11", 10), "%s", err.msg);
        q->layers[0].shift[0] = shift0;
        free(b);
        /* the same model read back from its .kdm (layers named by the runtime's loader) */
        unsigned char *kdm = NULL;
        size_t kn = 0;
        kd_int8_model *q2 = NULL;
        CHECK(kd_kdm_write(q, &kdm, &kn, &err) == KD_STATUS_OK && kd_kdm_read(kdm, kn, &q2, &err) == KD_STATUS_OK);
        b = NULL;
        CHECK_MSG(q2 && kd_onnx_export_int8(q2, KD_ONNX_INT8_EXACT, &b, &n, &err) == KD_STATUS_OK && memmem(b, n, "/requant11", 10),
                  "%s", err.msg);
        free(b);
        free(kdm);
        kd_int8_free(q2);
        q->layers[2].in_dims.h = 5;
        CHECK(kd_onnx_export_int8(q, KD_ONNX_INT8_EXACT, &b, &n, &err) == KD_STATUS_BAD_MODEL && b == NULL &&
              strstr(err.msg, q->layers[2].name));
    }
    kd_int8_free(q);
    kd_model_free(m);

    /* a 3-channel int8 model: its metadata has the normalisation once per channel, as the fp32
     * export and the importer's metadata reader have it */
    yaml = "name: rgb\ninput: [3, 4, 4]\nnormalize: {mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}\n"
           "layers:\n  - {type: flatten}\n  - {type: linear, out: 3}\n";
    uint8_t px[8 * 48];
    int32_t lab[8];
    for (int i = 0; i < 8 * 48; i++) px[i] = (uint8_t)(i * 37);
    for (int i = 0; i < 8; i++) lab[i] = i % 3;
    kd_dataset rgb = {.n = 8, .c = 3, .h = 4, .w = 4, .n_classes = 3, .pixels = px, .labels = lab, .mean = 0.5f,
                      .std = 0.25f};
    m = NULL;
    q = NULL;
    b = NULL;
    CHECK_MSG(kd_model_from_yaml(&m, yaml, "rgb.yaml", 1, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK_MSG(m && kd_int8_quantize(m, &rgb, &cfg, &q, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK_MSG(q && kd_onnx_export_int8(q, KD_ONNX_INT8_EXACT, &b, &n, &err) == KD_STATUS_OK, "%s", err.msg);
    const char *norm_meta[] = {"distill.normalize.mean", "0.5,0.5,0.5", "distill.normalize.std", "0.25,0.25,0.25"};
    for (size_t i = 0; i < 4; i++)
        CHECK_MSG(b && memmem(b, n, norm_meta[i], strlen(norm_meta[i])), "'%s' not in the int8 graph's metadata",
                  norm_meta[i]);
    free(b);
    if (q) { /* no input channels: an error naming the model, no bytes */
        q->in_c = 0;
        b = (unsigned char *)"x";
        CHECK_MSG(kd_onnx_export_int8(q, KD_ONNX_INT8_EXACT, &b, &n, &err) == KD_STATUS_BAD_MODEL && b == NULL &&
                  strstr(err.msg, "rgb: its input is 0x4x4"), "%s", err.msg);
    }
    kd_int8_free(q);
    kd_model_free(m);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    mkdir(DIR, 0755);
    kd_error err;
    kd_dataset test, train;
    CHECK_MSG(kd_dataset_load(&test, "fashion-mnist", "test", &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK_MSG(kd_dataset_load(&train, "fashion-mnist", "train", &err) == KD_STATUS_OK, "%s", err.msg);
    if (kd_test_fail) TEST_DONE();
    check_library(&train);
    int probe = sh("node %s/tests/peers/ort_run.js", KD_SOURCE_DIR); /* 1: usage, i.e. ORT loads */
    if (probe != 1) {
        show_log();
        printf("SKIP: onnxruntime-node cannot run here (exit %d; scripts/install-peers.sh installs it): the "
               "export is not checked against a runtime\n", probe);
        kd_dataset_free(&test);
        kd_dataset_free(&train);
        if (kd_test_fail) TEST_DONE();
        printf("%d passed, %d failed\n", kd_test_pass, kd_test_fail);
        return SKIP_CODE;
    }
    check_new_layers();
    int n = test.n;
    size_t img = (size_t)test.c * test.h * test.w;
    float *x = malloc((size_t)n * img * sizeof(float));
    const int32_t *lab = test.labels;
    for (size_t i = 0; i < (size_t)n * img; i++) /* the inputs every runtime gets (none of the models normalises) */
        x[i] = ((float)test.pixels[i] / 255.f - test.mean) / test.std;
    CHECK(kd_write_file_atomic(DIR "/input.f32", x, (size_t)n * img * sizeof(float), &err) == KD_STATUS_OK);
    check_yaml_layers(x);

    kd_model *m = check_fp32("cnn-s", 0, x, n);
    if (m) check_int8(m, &train, x, lab, n, "exact", 0.995);
    if (m) check_int8(m, &train, x, lab, n, "qlinear", 0.995);
    kd_model_free(m);
    m = check_fp32("mobilenet-s", 0, x, n);
    if (m) check_int8(m, &train, x, lab, n, "exact", 0.995);
    /* QLinearConv rounds once, kdrt twice: 99.22% measured (docs/ONNX.md); the bound guards the form */
    if (m) check_int8(m, &train, x, lab, n, "qlinear", 0.99);
    kd_model_free(m);
    kd_model_free(check_fp32("mlp-s", 2000, x, n));

    free(x);
    kd_dataset_free(&test);
    kd_dataset_free(&train);
    TEST_DONE();
}
