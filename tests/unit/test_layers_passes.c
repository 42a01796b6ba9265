/* The passes over a model with the layers of imported (ONNX) models (issue 13): channel pruning
 * stops at a concat and slices a per-channel scale, BN folding keeps dilation and pool options,
 * the fp32 checkpoint saves and loads scale's parameters, and the int8 build refuses what the
 * runtime cannot run, naming the layer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/checkpoint.h"
#include "distill/compress.h"
#include "distill/int8.h"
#include "distill/model.h"
#include "distill/quantize.h"
#include "test.h"

static kd_model *build(const char *layers) {
    char y[2048];
    snprintf(y, sizeof y, "name: p\ninput: [3, 8, 8]\nlayers:\n%s", layers);
    kd_model *m = NULL;
    kd_error err = {0};
    CHECK_MSG(kd_model_from_yaml(&m, y, "p.yaml", 3, &err) == KD_STATUS_OK, "%s", err.msg);
    return m;
}

static const kd_layer *layer(const kd_model *m, const char *name) {
    int i = m ? kd_model_find_layer(m, name) : -1;
    CHECK_MSG(i >= 0, "no layer %s", name);
    return i >= 0 ? &m->layers[i] : NULL;
}

/* Scale layer s of 8 channels: w = 1..8, b = -w, so a kept pair shows which channel it was. */
static void number_scale(kd_model *m) {
    const kd_layer *s = layer(m, "s");
    for (int k = 0; s && k < 8; k++) {
        m->params[s->w_off + k] = (float)(k + 1);
        m->params[s->b_off + k] = (float)(-k - 1);
    }
}

static void test_prune(void) {
    kd_model *m = build("  - {name: a, type: conv2d, out: 8, pad: 1}\n"
                        "  - {name: s, type: scale}\n"
                        "  - {name: r, type: hard_swish}\n"
                        "  - {name: b, type: conv2d, out: 4, pad: 1, inputs: [input]}\n"
                        "  - {name: cat, type: concat, inputs: [r, b]}\n"
                        "  - {name: c, type: conv2d, out: 8, pad: 1}\n"
                        "  - {name: g, type: global_avgpool}\n"
                        "  - {name: se, type: mul, inputs: [c, g]}\n"
                        "  - {name: d, type: conv2d, out: 6, pad: 1}\n"
                        "  - {type: global_avgpool}\n  - {type: linear, out: 5}\n");
    if (!m) return;
    number_scale(m);
    kd_model *p = NULL;
    kd_error err = {0};
    kd_channel_prune_config cfg = {0.5f, NULL, KD_CHANNEL_L1};
    CHECK_MSG(kd_prune_channels(m, &cfg, &p, NULL, &err) == KD_STATUS_OK, "%s", err.msg);
    if (p) {
        /* a, s, r feed the concat: kept whole; b too; c and se (SE: c * g) are one group with g */
        CHECK(layer(p, "a")->out == 8 && layer(p, "b")->out == 4 && layer(p, "cat")->c == 12);
        CHECK(layer(p, "c")->out == 4 && layer(p, "se")->c == 4 && layer(p, "d")->out == 3);
        const kd_layer *ps = layer(p, "s");
        CHECK(ps && ps->w_size == 8);
        float *o = malloc(5 * 2 * sizeof(float)), x[2 * 192];
        for (int i = 0; i < 2 * 192; i++) x[i] = (float)((i * 37) % 17) / 17.f - 0.5f;
        CHECK(kd_model_set_batch(p, 2, 1, &err) == KD_STATUS_OK);
        memcpy(o, kd_model_forward(p, x, 2, 0, NULL), 10 * sizeof(float));
        for (int i = 0; i < 10; i++) CHECK(isfinite(o[i]));
        free(o);
    }
    kd_model_free(p);
    p = NULL;
    kd_model_free(m);

    /* a per-channel scale between pruned layers takes the kept channels' pairs */
    m = build("  - {name: a, type: conv2d, out: 8, pad: 1}\n  - {name: s, type: scale}\n"
              "  - {name: c, type: conv2d, out: 4, pad: 1}\n  - {type: global_avgpool}\n  - {type: linear, out: 5}\n");
    if (!m) return;
    number_scale(m);
    CHECK_MSG(kd_prune_channels(m, &cfg, &p, NULL, &err) == KD_STATUS_OK, "%s", err.msg);
    if (p) {
        const kd_layer *ps = layer(p, "s");
        CHECK(layer(p, "a")->out == 4 && ps && ps->w_size == 4 && ps->b_size == 4);
        for (int k = 0; ps && k < 4; k++) {
            float w = p->params[ps->w_off + k], b = p->params[ps->b_off + k];
            CHECK_MSG(w == -b && w >= 1.f && w <= 8.f && (k == 0 || w > p->params[ps->w_off + k - 1]),
                      "kept pair %d: %g, %g", k, (double)w, (double)b);
        }
    }
    kd_model_free(p);
    kd_model_free(m);
}

/* BN folding rebuilds the model through the writer: dilation and pool options survive, outputs agree. */
static void test_fold(void) {
    kd_model *m = build("  - {name: a, type: conv2d, out: 4, kernel: 3, pad: 2, dilation: 2}\n"
                        "  - {name: bn, type: batchnorm}\n"
                        "  - {name: p, type: avgpool, kernel: 3, stride: 2, pad: 1, ceil_mode: true, count_pad: false}\n"
                        "  - {name: k, type: clip}\n"
                        "  - {type: flatten}\n");
    if (!m) return;
    const kd_layer *bn = layer(m, "bn");
    for (int c = 0; bn && c < 4; c++) {
        m->params[bn->w_off + c] = 0.5f + 0.25f * c;
        m->params[bn->b_off + c] = 0.1f * c;
        m->buffers[bn->buf_off + c] = 0.05f * c;
        m->buffers[bn->buf_off + 4 + c] = 1.f + 0.5f * c;
    }
    kd_model *f = NULL;
    kd_error err = {0};
    int n = 0;
    CHECK_MSG(kd_fold_batchnorm(m, &f, &n, &err) == KD_STATUS_OK && n == 1, "%s", err.msg);
    if (f) {
        const kd_layer *a = layer(f, "a"), *p = layer(f, "p");
        CHECK(a && a->dilation == 2 && p && p->pad == 1 && p->ceil_mode && !p->count_pad);
        float x[192];
        for (int i = 0; i < 192; i++) x[i] = (float)((i * 29) % 23) / 23.f - 0.4f;
        CHECK(kd_model_set_batch(m, 1, 1, &err) == KD_STATUS_OK && kd_model_set_batch(f, 1, 1, &err) == KD_STATUS_OK);
        const float *y0 = kd_model_forward(m, x, 1, 0, NULL), *y1 = kd_model_forward(f, x, 1, 0, NULL);
        float worst = 0;
        for (int i = 0; i < m->n_classes; i++) worst = fmaxf(worst, fabsf(y0[i] - y1[i]));
        CHECK_MSG(f->n_classes == m->n_classes && worst < 1e-5f, "folded output differs by %g", (double)worst);
    }
    kd_model_free(f);
    kd_model_free(m);
}

static void test_checkpoint(void) {
    kd_model *m = build("  - {name: s, type: scale}\n  - {name: t, type: scale, per_channel: false}\n"
                        "  - {type: flatten}\n");
    if (!m) return;
    for (size_t i = 0; i < m->n_params; i++) m->params[i] = 0.5f + (float)i;
    kd_error err = {0};
    kd_model *back = NULL;
    CHECK_MSG(kd_checkpoint_save("layers_scale.ckpt", m, NULL, NULL, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK_MSG(kd_checkpoint_load("layers_scale.ckpt", &back, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(back && back->n_params == 8 && !memcmp(back->params, m->params, 8 * sizeof(float)));
    kd_model_free(back);
    remove("layers_scale.ckpt");
    kd_model_free(m);
}

/* kd_int8_build on ranges for every layer: the runtime's limits are errors naming the layer. */
static void expect_int8_refusal(const char *layers, const char *want) {
    kd_model *m = build(layers);
    if (!m) return;
    float lo[16], hi[16];
    for (int i = 0; i < 16; i++) lo[i] = -4.f, hi[i] = 4.f;
    kd_calib_ranges r = {m->n_layers, lo, hi, 0.f, 1.f, 0.5f, 0.25f};
    kd_calib_config cfg;
    kd_calib_config_default(&cfg);
    kd_int8_model *q = NULL;
    kd_error err = {0};
    CHECK_MSG(kd_int8_build(m, &r, &cfg, &q, &err) == KD_STATUS_BAD_MODEL && strstr(err.msg, want),
              "'%s' not in: %s", want, err.msg);
    kd_int8_free(q);
    kd_model_free(m);
}

static void test_int8(void) {
    static const char tail[] = "  - {type: global_avgpool}\n  - {type: linear, out: 3}\n";
    char y[1024];
#define T(body) (snprintf(y, sizeof y, "%s%s", body, tail), y)
    expect_int8_refusal(T("  - {name: dl, type: conv2d, out: 4, dilation: 2}\n"), "layer dl: conv2d with dilation 2");
    expect_int8_refusal(T("  - {name: mp, type: maxpool, kernel: 3, stride: 2, pad: 1}\n"),
                        "layer mp: maxpool with padding or ceil_mode");
    expect_int8_refusal(T("  - {name: ap, type: avgpool, kernel: 3, stride: 2, ceil_mode: true}\n  - {type: relu}\n"),
                        "layer ap: avgpool with padding or ceil_mode");
    expect_int8_refusal(T("  - {name: g, type: global_avgpool}\n  - {name: ad, type: add, inputs: [input, g]}\n"),
                        "layer ad: add with broadcasting");
    expect_int8_refusal(T("  - {name: sg, type: sigmoid}\n"), "layer sg: type sigmoid is not supported");
    expect_int8_refusal(T("  - {name: ct, type: concat, inputs: [input, input]}\n"), "layer ct: type concat");
#undef T
    /* ceil_mode that adds no window is the floor output: accepted */
    kd_model *m = build("  - {type: conv2d, out: 4, pad: 1}\n  - {type: maxpool, kernel: 2, ceil_mode: true}\n"
                        "  - {type: global_avgpool}\n  - {type: linear, out: 3}\n");
    if (!m) return;
    float lo[4] = {-4, -4, -4, -4}, hi[4] = {4, 4, 4, 4};
    kd_calib_ranges r = {4, lo, hi, 0.f, 1.f, 0.5f, 0.25f};
    kd_calib_config cfg;
    kd_calib_config_default(&cfg);
    kd_int8_model *q = NULL;
    kd_error err = {0};
    CHECK_MSG(kd_int8_build(m, &r, &cfg, &q, &err) == KD_STATUS_OK, "%s", err.msg);
    kd_int8_free(q);
    kd_model_free(m);
}

int main(void) {
    test_prune();
    test_fold();
    test_checkpoint();
    test_int8();
    TEST_DONE();
}
