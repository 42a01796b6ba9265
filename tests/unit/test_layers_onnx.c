/* The layers of imported (ONNX) models (issue 13), through the model: YAML -> shapes -> forward ->
 * backward. Each layer and option against PyTorch (tests/golden/gen_layers.py writes the fixtures
 * tests/golden/layers/<case>.kdgf, kinks included), against central differences (inputs and
 * parameters), the same bits for every thread count, shape errors with the file, line and layer,
 * and the writer -> reader round trip. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/model.h"
#include "golden/kdgf.h"
#include "test.h"

#ifndef KD_SOURCE_DIR
#define KD_SOURCE_DIR "."
#endif

static kd_rng rng;

static kd_model *build(const char *layers, int C, int H, int W) {
    char y[2048];
    snprintf(y, sizeof y, "name: t\ninput: [%d, %d, %d]\nlayers:\n%s  - {type: flatten}\n", C, H, W, layers);
    kd_model *m = NULL;
    kd_error err = {0};
    CHECK_MSG(kd_model_from_yaml(&m, y, "t.yaml", 7, &err) == KD_STATUS_OK, "%s: %s", layers, err.msg);
    return m;
}

/* The first layer with parameters, or NULL. */
static const kd_layer *param_layer(const kd_model *m) {
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].w_size) return &m->layers[i];
    return NULL;
}

/* ------------------------------------------------------------------ PyTorch goldens */
static void compare(const char *cs, const char *what, const float *got, const fx_array *want, size_t n) {
    CHECK_MSG(want && want->n == n, "%s: '%s' missing or not %zu values", cs, what, n);
    if (!want || want->n != n) return;
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)got[i] - want->data[i]) <= 1e-5 + 1e-5 * fabs(want->data[i]))) {
            if (bad++ < 3) fprintf(stderr, "  %s %s[%zu]: %.9g, PyTorch %.9g\n", cs, what, i, got[i], want->data[i]);
        }
    CHECK_MSG(bad == 0, "%s: %s: %d of %zu values differ from PyTorch", cs, what, bad, n);
}

static void golden(const char *cs, const char *layers) {
    char path[512];
    snprintf(path, sizeof path, "%s/tests/golden/layers/%s.kdgf", KD_SOURCE_DIR, cs);
    fx_file f;
    int rc = kdgf_load(&f, path, cs);
    CHECK_MSG(rc == KDGF_OK, "%s: missing or malformed (run tests/golden/gen_layers.py)", path);
    if (rc != KDGF_OK) return;
    const fx_array *in = fx_find(&f, "in"), *w = fx_find(&f, "weight"), *b = fx_find(&f, "bias");
    kd_model *m = in && in->ndim == 4 ? build(layers, in->dims[1], in->dims[2], in->dims[3]) : NULL;
    CHECK_MSG(m, "%s: no model", cs);
    if (m) {
        int B = in->dims[0];
        const kd_layer *L = param_layer(m);
        CHECK_MSG(!w == !L, "%s: fixture and model disagree about parameters", cs);
        if (w && L && w->n == L->w_size && b && b->n == L->b_size) {
            memcpy(m->params + L->w_off, w->data, w->n * sizeof(float));
            memcpy(m->params + L->b_off, b->data, b->n * sizeof(float));
        }
        float *din = calloc(in->n, sizeof(float));
        kd_error err;
        CHECK(kd_model_set_batch(m, B, 2, &err) == KD_STATUS_OK);
        kd_model_set_input_grad(m, din);
        const float *out = kd_model_forward(m, in->data, B, 1, &rng);
        compare(cs, "out", out, fx_find(&f, "out"), (size_t)B * m->n_classes);
        const fx_array *dout = fx_find(&f, "dout");
        if (dout && dout->n == (size_t)B * m->n_classes) {
            kd_model_zero_grad(m);
            kd_model_backward(m, dout->data);
            compare(cs, "din", din, fx_find(&f, "din"), in->n);
            if (L && w) {
                compare(cs, "dweight", m->grads + L->w_off, fx_find(&f, "dweight"), L->w_size);
                compare(cs, "dbias", m->grads + L->b_off, fx_find(&f, "dbias"), L->b_size);
            }
        }
        free(din);
    }
    kd_model_free(m);
    fx_free(&f);
}

/* The YAML of each case of gen_layers.py. */
static void test_golden(void) {
    static const struct { const char *name, *layers; } cases[] = {
        {"hard_swish", "  - {type: hard_swish}\n"},
        {"hard_sigmoid_torch", "  - {type: hard_sigmoid, alpha: 0.166666667, beta: 0.5}\n"},
        {"hard_sigmoid_onnx", "  - {type: hard_sigmoid}\n"},
        {"sigmoid", "  - {type: sigmoid}\n"},
        {"leaky_relu", "  - {type: leaky_relu, alpha: 0.1}\n"},
        {"relu6", "  - {type: clip}\n"},
        {"clip", "  - {type: clip, lo: -1, hi: 2}\n"},
        {"maxpool_k3_s2_p1_ceil", "  - {type: maxpool, kernel: 3, stride: 2, pad: 1, ceil_mode: true}\n"},
        {"avgpool_k3_s2_p1_ceil", "  - {type: avgpool, kernel: 3, stride: 2, pad: 1, ceil_mode: true}\n"},
        {"avgpool_k3_s2_p1_ceil_nopad",
         "  - {type: avgpool, kernel: 3, stride: 2, pad: 1, ceil_mode: true, count_pad: false}\n"},
        {"avgpool_k2_s2_ceil", "  - {type: avgpool, kernel: 2, ceil_mode: true}\n"},
        {"conv_dilation2", "  - {type: conv2d, out: 4, kernel: 3, pad: 2, dilation: 2}\n"},
        {"conv_dw_dilation2_s2", "  - {type: conv2d, out: 3, kernel: 3, stride: 2, pad: 1, dilation: 2, groups: 3}\n"},
        {"mul_se", "  - {name: g, type: global_avgpool}\n  - {type: mul, inputs: [input, g]}\n"},
        {"add_bcast", "  - {name: g, type: global_avgpool}\n  - {type: add, inputs: [g, input]}\n"},
        {"mul_spatial", "  - {name: c, type: conv2d, out: 1, kernel: 1}\n  - {type: mul, inputs: [c, input]}\n"},
        {"pad", "  - {type: pad, pads: [1, 0, 2, 3], value: 0.5}\n"},
        {"concat", "  - {name: s, type: sigmoid}\n  - {type: concat, inputs: [input, s, input]}\n"},
        {"scale", "  - {type: scale}\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) golden(cases[i].name, cases[i].layers);
}

/* ------------------------------------------------------------------ finite differences */
static double loss(kd_model *m, const float *x, int B, const float *R) {
    const float *out = kd_model_forward(m, x, B, 1, &rng);
    double l = 0;
    for (int i = 0; i < B * m->n_classes; i++) l += (double)out[i] * R[i];
    return l;
}

static int fd_compare(const char *what, kd_model *m, float *v, size_t n, const float *grad, const float *x, int B,
                      const float *R, float h, double tol) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        float save = v[i];
        v[i] = save + h;
        double lp = loss(m, x, B, R);
        v[i] = save - h;
        double lm = loss(m, x, B, R);
        v[i] = save;
        double num = (lp - lm) / (2.0 * h);
        if (fabs(num - grad[i]) > tol * (1.0 + fabs(num)) && bad++ < 3)
            fprintf(stderr, "  %s[%zu]: analytic %g numeric %g\n", what, i, grad[i], num);
    }
    return bad;
}

/* L = sum(out * R) of the model `layers` (+ flatten) on B = 2 random inputs (C, H, W) * scale,
 * kept 0.05 away from every kink of the activations; d/d(input) and d/d(every parameter) against
 * central differences with step h; then forward and backward with 1 and 3 threads give the same
 * bits (threads_same: models without a GEMM, whose partition depends on the thread count). */
static void fd(const char *layers, int C, int H, int W, float scale, float h, int threads_same) {
    kd_model *m = build(layers, C, H, W);
    if (!m) return;
    const int B = 2;
    size_t nx = (size_t)B * C * H * W, no = (size_t)B * m->n_classes;
    float *x = malloc(nx * sizeof(float)), *R = malloc(no * sizeof(float)), *dx = calloc(nx, sizeof(float));
    static const float kinks[] = {0.f, -3.f, 3.f, 6.f, -2.5f, 2.5f, -1.f, 2.f};
    for (size_t i = 0; i < nx; i++) {
        x[i] = scale * kd_rng_normal(&rng);
        for (size_t k = 0; k < sizeof kinks / sizeof kinks[0]; k++)
            if (fabsf(x[i] - kinks[k]) < 0.05f) x[i] = kinks[k] + 0.1f;
    }
    for (size_t i = 0; i < no; i++) R[i] = kd_rng_normal(&rng);
    kd_error err;
    CHECK(kd_model_set_batch(m, B, 2, &err) == KD_STATUS_OK);
    kd_model_set_input_grad(m, dx);
    /* parameters away from their init (scale: 1 and 0) */
    for (size_t i = 0; i < m->n_params; i++) m->params[i] += 0.3f * kd_rng_normal(&rng);
    loss(m, x, B, R);
    kd_model_zero_grad(m);
    kd_model_backward(m, R);
    float *g = malloc((m->n_params ? m->n_params : 1) * sizeof(float));
    memcpy(g, m->grads, m->n_params * sizeof(float));
    float *dx1 = malloc(nx * sizeof(float));
    memcpy(dx1, dx, nx * sizeof(float));
    kd_model_set_input_grad(m, NULL);
    int bad = fd_compare("din", m, x, nx, dx1, x, B, R, h, 5e-3);
    bad += fd_compare("dparams", m, m->params, m->n_params, g, x, B, R, h, 5e-3);
    CHECK_MSG(bad == 0, "%s: %d gradient entries disagree with finite differences", layers, bad);
    if (threads_same) {
        const float *o = kd_model_forward(m, x, B, 1, &rng);
        float *o1 = malloc(no * sizeof(float));
        memcpy(o1, o, no * sizeof(float));
        CHECK(kd_model_set_batch(m, B, 3, &err) == KD_STATUS_OK);
        kd_model_set_input_grad(m, dx);
        o = kd_model_forward(m, x, B, 1, &rng);
        kd_model_zero_grad(m);
        kd_model_backward(m, R);
        CHECK_MSG(!memcmp(o, o1, no * sizeof(float)) && !memcmp(dx, dx1, nx * sizeof(float)) &&
                      !memcmp(g, m->grads, m->n_params * sizeof(float)),
                  "%s: 3 threads give other bits than 2", layers);
        free(o1);
    }
    free(x); free(R); free(dx); free(dx1); free(g);
    kd_model_free(m);
}

static void test_fd(void) {
    fd("  - {type: clip, lo: -1, hi: 2}\n", 3, 4, 4, 2.f, 1e-2f, 1);
    fd("  - {type: clip}\n", 3, 4, 4, 4.f, 1e-2f, 1);
    fd("  - {type: leaky_relu, alpha: 0.2}\n", 3, 4, 4, 1.f, 1e-2f, 1);
    fd("  - {type: sigmoid}\n", 3, 4, 4, 2.f, 1e-2f, 1);
    fd("  - {type: hard_sigmoid}\n", 3, 4, 4, 3.f, 1e-2f, 1);
    fd("  - {type: hard_sigmoid, alpha: 0.166666667}\n", 3, 4, 4, 4.f, 1e-2f, 1);
    fd("  - {type: hard_swish}\n", 3, 4, 4, 4.f, 1e-2f, 1);
    fd("  - {type: pad, pads: [2, 1, 0, 3], value: -1.5}\n", 2, 3, 4, 1.f, 1e-2f, 1);
    fd("  - {type: scale}\n", 3, 4, 4, 1.f, 1e-2f, 1);
    fd("  - {type: scale, per_channel: false}\n", 3, 4, 4, 1.f, 1e-2f, 1);
    /* concat of 3 inputs, one of them twice; a scale before it so a parameter's gradient passes */
    fd("  - {name: a, type: scale}\n  - {name: b, type: sigmoid, inputs: [input]}\n"
       "  - {type: concat, inputs: [a, input, b, a]}\n", 2, 3, 3, 1.f, 1e-2f, 1);
    /* broadcasting both ways, channel (SE) and spatial, for add and mul; x * x on one input */
    fd("  - {name: g, type: global_avgpool}\n  - {name: s, type: scale, inputs: [g]}\n"
       "  - {type: mul, inputs: [input, s]}\n", 3, 4, 4, 1.f, 1e-2f, 1);
    fd("  - {name: g, type: global_avgpool}\n  - {name: s, type: scale, inputs: [g]}\n"
       "  - {type: mul, inputs: [s, input]}\n", 3, 4, 4, 1.f, 1e-2f, 1);
    fd("  - {name: c, type: conv2d, out: 1, kernel: 1}\n  - {type: mul, inputs: [input, c]}\n", 3, 4, 4, 1.f, 1e-2f, 0);
    fd("  - {name: c, type: conv2d, out: 1, kernel: 1}\n  - {name: g, type: global_avgpool, inputs: [input]}\n"
       "  - {type: add, inputs: [c, g]}\n", 3, 4, 4, 1.f, 1e-2f, 0); /* (1,H,W) + (C,1,1): both broadcast */
    fd("  - {name: g, type: global_avgpool}\n  - {type: add, inputs: [input, g]}\n", 3, 4, 4, 1.f, 1e-2f, 1);
    fd("  - {type: mul, inputs: [input, input]}\n", 2, 3, 3, 1.f, 1e-2f, 1);
    /* conv dilation: im2col, 1 thread and depthwise paths */
    fd("  - {type: conv2d, out: 3, kernel: 3, pad: 2, dilation: 2}\n", 2, 6, 6, 1.f, 1e-2f, 0);
    fd("  - {type: conv2d, out: 2, kernel: 3, stride: 2, pad: 1, dilation: 3, groups: 2}\n", 2, 8, 8, 1.f, 1e-2f, 0);
    fd("  - {type: conv2d, out: 4, kernel: 2, pad: 1, dilation: 2, groups: 2}\n", 2, 5, 5, 1.f, 1e-2f, 0);
    /* pools: pad, ceil_mode, count_pad */
    fd("  - {type: maxpool, kernel: 3, stride: 2, pad: 1}\n", 2, 5, 5, 1.f, 1e-3f, 1);
    fd("  - {type: maxpool, kernel: 2, stride: 2, ceil_mode: true}\n", 2, 5, 5, 1.f, 1e-3f, 1);
    fd("  - {type: maxpool, kernel: 3, stride: 2, pad: 1, ceil_mode: true}\n", 2, 6, 6, 1.f, 1e-3f, 1);
    fd("  - {type: avgpool, kernel: 3, stride: 2, pad: 1}\n", 2, 5, 5, 1.f, 1e-2f, 1);
    fd("  - {type: avgpool, kernel: 3, stride: 2, pad: 1, count_pad: false}\n", 2, 5, 5, 1.f, 1e-2f, 1);
    fd("  - {type: avgpool, kernel: 3, stride: 2, pad: 1, ceil_mode: true}\n", 2, 6, 6, 1.f, 1e-2f, 1);
    fd("  - {type: avgpool, kernel: 2, stride: 2, ceil_mode: true, count_pad: false}\n", 2, 5, 5, 1.f, 1e-2f, 1);
}

/* ------------------------------------------------------------------ shapes and the YAML */
static void expect_error(const char *layers, const char *n1, const char *n2) {
    char y[2048];
    snprintf(y, sizeof y, "name: t\ninput: [3, 8, 8]\nlayers:\n%s  - {type: flatten}\n", layers);
    kd_model *m = NULL;
    kd_error err = {0};
    CHECK_MSG(kd_model_from_yaml(&m, y, "e.yaml", 1, &err) == KD_STATUS_BAD_MODEL && !m, "accepted: %s", layers);
    CHECK_MSG(strstr(err.msg, n1) && (!n2 || strstr(err.msg, n2)), "'%s' / '%s' not in: %s", n1, n2 ? n2 : "",
              err.msg);
    kd_model_free(m);
}

static void test_shapes(void) {
    kd_model *m = build("  - {name: a, type: conv2d, out: 4, kernel: 3, pad: 1}\n"
                        "  - {name: p, type: maxpool, kernel: 3, stride: 2, pad: 1, ceil_mode: true}\n"
                        "  - {name: d, type: conv2d, out: 2, kernel: 3, dilation: 2, inputs: [input]}\n"
                        "  - {name: q, type: pad, pads: [1, 0, 0, 2], inputs: [d]}\n"
                        "  - {name: c, type: concat, inputs: [a, input, a]}\n"
                        "  - {name: g, type: global_avgpool}\n"
                        "  - {name: m, type: mul, inputs: [g, c]}\n"
                        "  - {name: s, type: scale, per_channel: false}\n",
                        3, 9, 9);
    if (m) {
        const kd_layer *L = m->layers;
        CHECK(L[1].c == 4 && L[1].h == 5 && L[1].w == 5); /* ceil((9+2-3)/2)+1 = 5 */
        CHECK(L[2].h == 5 && L[2].w == 5);                /* 9 - 2*2 */
        CHECK(L[3].h == 6 && L[3].w == 7);
        CHECK(L[4].c == 11 && L[4].h == 9 && L[4].n_inputs == 3);
        CHECK(L[6].c == 11 && L[6].h == 9 && L[6].w == 9 && L[6].macs == 11 * 81);
        CHECK(L[7].w_size == 1 && L[7].b_size == 1 && L[7].macs == 11 * 81);
        CHECK(m->params[L[7].w_off] == 1.f && m->params[L[7].b_off] == 0.f);
        CHECK(L[2].macs == 2LL * 3 * 9 * 25);
    }
    kd_model_free(m);
    /* ceil_mode: the last window must start inside the input or its left padding (PyTorch) */
    m = build("  - {type: maxpool, kernel: 2, stride: 2, pad: 1, ceil_mode: true}\n", 1, 5, 5);
    CHECK(m && m->layers[0].h == 3); /* ceil(6/2)+1 = 4 would start at 6 >= 5 + 1 */
    kd_model_free(m);

    expect_error("  - {name: a, type: conv2d, out: 4}\n  - {name: c, type: concat, inputs: [a, input]}\n", "e.yaml:5:",
                 "layer c: input 2 is 8x8, input 1 is 6x6");
    expect_error("  - {type: concat, inputs: [input]}\n", "e.yaml:4:", "expects 2 to 8 inputs");
    expect_error("  - {type: concat, inputs: [input, input, input, input, input, input, input, input, input]}\n",
                 "e.yaml:4:", "expects 2 to 8 inputs");
    expect_error("  - {type: concat}\n", "e.yaml:4:", "concat needs 'inputs");
    expect_error("  - {type: mul, inputs: [input]}\n", "e.yaml:4:", "expects 2 input(s)");
    expect_error("  - {name: a, type: conv2d, out: 2, pad: 1}\n  - {name: x, type: mul, inputs: [a, input]}\n",
                 "e.yaml:5:", "layer x: inputs have different shapes [2,8,8] and [3,8,8]");
    expect_error("  - {name: a, type: conv2d, out: 3}\n  - {name: x, type: add, inputs: [a, input]}\n", "e.yaml:5:",
                 "layer x: inputs have different shapes [3,6,6] and [3,8,8]");
    expect_error("  - {type: conv2d, out: 4, kernel: 3, dilation: 4}\n", "e.yaml:4:",
                 "kernel 3 (dilation 4, pad 0) does not fit the 8x8 input");
    expect_error("  - {type: conv2d, out: 4, dilation: 0}\n", "e.yaml:4:", "'dilation'");
    expect_error("  - {type: maxpool, kernel: 3, pad: 2}\n", "e.yaml:4:", "pad 2 is more than half the window 3");
    expect_error("  - {type: avgpool, kernel: 9}\n", "e.yaml:4:", "window 9 is larger than the 8x8 input");
    expect_error("  - {type: maxpool, count_pad: false}\n", "e.yaml:4:", "unknown option 'count_pad'");
    expect_error("  - {type: avgpool, ceil_mode: maybe}\n", "e.yaml:4:", "'ceil_mode' must be true or false");
    expect_error("  - {type: clip, lo: 2, hi: 1}\n", "e.yaml:4:", "lo <= hi");
    expect_error("  - {type: clip, lo: nan}\n", "e.yaml:4:", "'lo'");
    expect_error("  - {type: clip, low: 0}\n", "e.yaml:4:", "unknown option 'low'");
    expect_error("  - {type: leaky_relu, alpha: 1000}\n", "e.yaml:4:", "'alpha'");
    expect_error("  - {type: hard_sigmoid, beta: x}\n", "e.yaml:4:", "'beta'");
    expect_error("  - {type: pad}\n", "e.yaml:4:", "pads: [top, left, bottom, right]");
    expect_error("  - {type: pad, pads: [1, 1, -1, 1]}\n", "e.yaml:4:", "pads: [top, left, bottom, right]");
    expect_error("  - {type: pad, pads: [1, 1, 1]}\n", "e.yaml:4:", "pads: [top, left, bottom, right]");
    expect_error("  - {type: pad, pads: [1, 1, 1, 1], value: inf}\n", "e.yaml:4:", "'value'");
    expect_error("  - {type: scale, per_channel: 2}\n", "e.yaml:4:", "'per_channel'");
    expect_error("  - {type: sigmoid, alpha: 1}\n", "e.yaml:4:", "unknown option 'alpha'");
}

/* Every new layer and option, written and read back: the same layers, parameters and outputs. */
static void test_round_trip(void) {
    kd_model *m = build("  - {name: 'c/1', type: conv2d, out: 4, kernel: 3, pad: 2, dilation: 2, bias: false}\n"
                        "  - {name: p, type: maxpool, kernel: 3, stride: 2, pad: 1, ceil_mode: true}\n"
                        "  - {name: v, type: avgpool, kernel: 3, stride: 1, pad: 1, count_pad: false, inputs: ['c/1']}\n"
                        "  - {name: k, type: clip, lo: -0.25, hi: inf}\n"
                        "  - {name: l, type: leaky_relu, alpha: 0.125}\n"
                        "  - {name: hs, type: hard_sigmoid, alpha: 0.166666672, beta: 0.4}\n"
                        "  - {name: hw, type: hard_swish, inputs: [l]}\n"
                        "  - {name: sg, type: sigmoid}\n"
                        "  - {name: pd, type: pad, pads: [0, 1, 2, 3], value: -0.75, inputs: [hs]}\n"
                        "  - {name: cat, type: concat, inputs: [hw, input, sg, 'c/1']}\n"
                        "  - {name: g, type: global_avgpool}\n"
                        "  - {name: se, type: mul, inputs: [cat, g]}\n"
                        "  - {name: sc, type: scale}\n"
                        "  - {name: s1, type: scale, per_channel: false}\n"
                        "  - {name: ad, type: add, inputs: [g, s1]}\n",
                        3, 7, 7);
    if (!m) return;
    char *yaml = NULL;
    kd_error err;
    kd_model *again = NULL;
    CHECK_MSG(kd_model_yaml_from_layers(m, m->layers, m->n_layers, &yaml, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK_MSG(yaml && kd_model_from_yaml(&again, yaml, "written.yaml", 7, &err) == KD_STATUS_OK, "%s", err.msg);
    if (again) {
        CHECK(again->n_layers == m->n_layers && again->n_params == m->n_params);
        for (int i = 0; i < m->n_layers && i < again->n_layers; i++) {
            kd_layer a = m->layers[i], b = again->layers[i];
            CHECK_MSG(!memcmp(&a, &b, sizeof a), "layer %s differs after the round trip", a.name);
        }
    }
    free(yaml);
    kd_model_free(again);
    kd_model_free(m);
}

int main(void) {
    kd_rng_seed(&rng, 13, 1);
    test_golden();
    test_fd();
    test_shapes();
    test_round_trip();
    TEST_DONE();
}
