/* Post-training int8 quantization (src/compress/quantize.c):
 * - weight quantize/dequantize error within half a step per channel;
 * - the int8 forward of a conv+relu+pool+linear model (which calls the runtime's kernels, NHWC, with
 *   transposed weights) equals, bit for bit, an integer-only NCHW loop written here from the
 *   specification (docs/QUANTIZATION.md) and the fp32 model's weights in their training layout;
 * - dequantized int8 logits stay within a stated budget of the fp32 logits (cnn-like and
 *   mobilenet-s with folded BN, depthwise, residual add, global pooling);
 * - calibration ranges: percentile and MSE never wider than min-max;
 * - bad calibration input and unsupported layers are errors naming the problem;
 * - int4 per-group weights: int4 values times a 4-bit group multiplier, error within half a group step;
 * - quantization-aware training: the fake-quantized weights are exactly the int8 model's (through
 *   the layout permutations), outputs sit on their int8 grids, the straight-through gradient is zero
 *   exactly where an output saturates, and the fake-quantized fp32 forward tracks the integer model
 *   much more closely than the plain fp32 forward does. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "distill/fileio.h"
#include "distill/compress.h"
#include "distill/model.h"
#include "distill/quantize.h"
#include "nn/fake_quant.h" /* QAT: the model's fake-quantization state and hooks */
#include "runtime/int8_oracle.h"
#include "test.h"
#include "test_models.h"

/* ---------------------------------------------------------------- integer-only reference
 * (requantization: ref_out of tests/runtime/int8_oracle.h) */

/* A 3x3 conv with padding 1, integer only: output (Co, Ho, Wo) NCHW; input element (c, y, x) at
 * in[c * sc + y * sy + x * sx] (so NHWC and NCHW inputs both work); weights OIHW; the output
 * clamped to [lo, 127]. */
static void ref_conv3x3(int8_t *out, int Co, int Ho, int Wo, int stride, const int8_t *in, int Ci, int Hi, int Wi,
                        int sc, int sy, int sx, int zp_in, const int8_t *w, const kd_int8_layer *Q, int lo) {
    for (int o = 0; o < Co; o++)
        for (int y = 0; y < Ho; y++)
            for (int xx = 0; xx < Wo; xx++) {
                int64_t acc = Q->bias[o];
                for (int c = 0; c < Ci; c++)
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            int iy = stride * y + ky - 1, ix = stride * xx + kx - 1;
                            if (iy < 0 || iy >= Hi || ix < 0 || ix >= Wi) continue;
                            acc += (int64_t)(in[c * sc + iy * sy + ix * sx] - zp_in) * w[((o * Ci + c) * 3 + ky) * 3 + kx];
                        }
                out[(o * Ho + y) * Wo + xx] = ref_out(acc, Q->mult[o], Q->shift[o], Q->out_q.zero_point, lo, 127);
            }
}

/* kd_int8_quantize with the default calibration on the first n_images of ds, batches of 16 (must
 * succeed); the model or NULL. */
static kd_int8_model *quantize_default(kd_model *m, const kd_dataset *ds, int n_images) {
    kd_calib_config cfg;
    kd_calib_config_default(&cfg);
    cfg.n_images = n_images;
    cfg.batch = 16;
    kd_int8_model *q = NULL;
    kd_error err;
    CHECK_MSG(kd_int8_quantize(m, ds, &cfg, &q, &err) == KD_STATUS_OK, "%s", err.msg);
    return q;
}

/* The model of test_bit_exact in NCHW, integer only: conv1 (3x3, pad 1) + ReLU, maxpool 2,
 * conv2 (3x3, stride 2, pad 1), flatten, fc. Weights are the fp32 model's in OIHW / (O, CHW),
 * quantized per channel here; biases, multipliers, shifts and zero points come from q. */
static void ref_forward(const kd_model *m, const kd_int8_model *q, const int8_t *in_nhwc, int B, int8_t *logits) {
    const kd_layer *c1 = &m->layers[0], *c2 = &m->layers[3], *fc = &m->layers[5];
    const kd_int8_layer *Q1 = &q->layers[0], *Q2 = &q->layers[2], *Qf = &q->layers[3];
    int C0 = m->in_c, H0 = m->in_h, W0 = m->in_w;
    int C1 = c1->out, H1 = c1->h, W1 = c1->w, H2 = m->layers[2].h, W2 = m->layers[2].w;
    int C3 = c2->out, H3 = c2->h, W3 = c2->w, F = C3 * H3 * W3, O = fc->out;
    int8_t *w1 = malloc(c1->w_size), *w2 = malloc(c2->w_size), *wf = malloc(fc->w_size);
    float *s1 = malloc(sizeof(float) * C1), *s2 = malloc(sizeof(float) * C3), *sf = malloc(sizeof(float) * O);
    kd_quantize_weights(w1, s1, m->params + c1->w_off, C1, c1->w_size / C1);
    kd_quantize_weights(w2, s2, m->params + c2->w_off, C3, c2->w_size / C3);
    kd_quantize_weights(wf, sf, m->params + fc->w_off, O, fc->w_size / O);
    for (int c = 0; c < C1; c++) CHECK(s1[c] == Q1->w_scale[c]);
    for (int c = 0; c < O; c++) CHECK(sf[c] == Qf->w_scale[c]);
    int8_t *a1 = malloc((size_t)C1 * H1 * W1), *a2 = malloc((size_t)C1 * H2 * W2), *a3 = malloc((size_t)F);
    for (int b = 0; b < B; b++) {
        const int8_t *x = in_nhwc + (size_t)b * C0 * H0 * W0;
        const int zp = Q1->out_q.zero_point; /* conv1 + ReLU: the clamp starts at the zero point */
        ref_conv3x3(a1, C1, H1, W1, 1, x, C0, H0, W0, 1, W0 * C0, C0, q->in_q.zero_point, w1, Q1, zp > -128 ? zp : -128);
        for (int c = 0; c < C1; c++)
            for (int y = 0; y < H2; y++)
                for (int xx = 0; xx < W2; xx++) {
                    int mx = -128;
                    for (int ky = 0; ky < 2; ky++)
                        for (int kx = 0; kx < 2; kx++) {
                            int v = a1[(c * H1 + 2 * y + ky) * W1 + 2 * xx + kx];
                            mx = v > mx ? v : mx;
                        }
                    a2[(c * H2 + y) * W2 + xx] = (int8_t)mx;
                }
        int zp1 = Q1->out_q.zero_point; /* pool keeps conv1's quantization */
        ref_conv3x3(a3, C3, H3, W3, 2, a2, C1, H2, W2, H2 * W2, W2, 1, zp1, w2, Q2, -128);
        for (int o = 0; o < O; o++) {
            int64_t acc = Qf->bias[o];
            for (int i = 0; i < F; i++) acc += (int64_t)(a3[i] - Q2->out_q.zero_point) * wf[(size_t)o * F + i];
            logits[b * O + o] = ref_out(acc, Qf->mult[o], Qf->shift[o], Qf->out_q.zero_point, -128, 127);
        }
    }
    free(w1); free(w2); free(wf); free(s1); free(s2); free(sf); free(a1); free(a2); free(a3);
}

static const char *small_yaml =
    "name: small\n"
    "input: [2, 10, 10]\n"
    "layers:\n"
    "  - {name: conv1, type: conv2d, out: 5, kernel: 3, pad: 1}\n"
    "  - {name: relu1, type: relu}\n"
    "  - {name: pool1, type: maxpool, kernel: 2}\n"
    "  - {name: conv2, type: conv2d, out: 6, kernel: 3, stride: 2, pad: 1}\n"
    "  - {name: flatten, type: flatten}\n"
    "  - {name: fc, type: linear, out: 7}\n";

/* ---------------------------------------------------------------- tests */

static void test_weights(void) {
    enum { C = 6, K = 37 };
    float w[C * K], s[C];
    int8_t q[C * K];
    kd_rng r;
    kd_rng_seed(&r, 7, 1);
    for (int i = 0; i < C * K; i++) w[i] = (kd_rng_uniform(&r) - 0.5f) * (float)(1 + i / K) * 0.3f;
    for (int k = 0; k < K; k++) w[2 * K + k] = 0.f;  /* a channel of zeros */
    w[4 * K + 5] = 3.f;                                 /* an outlier */
    kd_quantize_weights(q, s, w, C, K);
    double worst = 0;
    for (int c = 0; c < C; c++) {
        int maxq = 0;
        CHECK(s[c] > 0.f);
        for (int k = 0; k < K; k++) {
            int v = q[c * K + k];
            CHECK(v >= -127 && v <= 127);
            maxq = abs(v) > maxq ? abs(v) : maxq;
            double e = fabs((double)s[c] * v - w[c * K + k]) / s[c];
            worst = e > worst ? e : worst;
        }
        CHECK(c == 2 ? maxq == 0 : maxq == 127);
    }
    /* budget: half a step of the channel (plus float rounding of the scale) */
    CHECK_MSG(worst <= 0.5 + 1e-5, "worst weight error %.6f steps", worst);
    printf("weights: worst dequantization error %.4f steps (budget 0.5)\n", worst);

    /* activation parameters (section 1) */
    kdrt_quant a = kd_quant_from_range(-1.f, 3.f);
    CHECK_NEAR(a.scale, 4.0 / 255, 1e-7);
    CHECK(a.zero_point == -64);
    CHECK(kd_quantize_value(0.f, a) == a.zero_point);
    CHECK(kd_quantize_value(100.f, a) == 127 && kd_quantize_value(-100.f, a) == -128);
    kdrt_quant p = kd_quant_from_range(0.5f, 2.f); /* widened to include 0 */
    CHECK(p.zero_point == -128);
    CHECK_NEAR(p.scale, 2.0 / 255, 1e-7);
    kdrt_quant z = kd_quant_from_range(0.f, 0.f);
    CHECK(z.scale > 0.f);
}

static void test_bit_exact(void) {
    kd_error err;
    kd_model *m = NULL;
    CHECK_MSG(kd_model_from_yaml(&m, small_yaml, "small.yaml", 11, &err) == KD_STATUS_OK, "%s", err.msg);
    if (!m) return;
    kd_dataset ds;
    make_dataset(&ds, 64, 2, 10, 10, 7, 5);
    kd_int8_model *q = quantize_default(m, &ds, 64);
    if (q) {
        CHECK(q->n_layers == 4);
        CHECK(q->layers[0].op == KD_INT8_CONV && q->layers[0].relu);
        CHECK(q->layers[1].op == KD_INT8_MAXPOOL && q->layers[2].op == KD_INT8_CONV && q->layers[3].op == KD_INT8_FC);
        enum { B = 6 };
        size_t img = (size_t)2 * 10 * 10;
        int8_t in[B * 200], got[B * 7], want[B * 7];
        kd_rng r;
        kd_rng_seed(&r, 21, 2);
        for (size_t i = 0; i < B * img; i++) in[i] = (int8_t)((int)kd_rng_below(&r, 256) - 128);
        CHECK_MSG(kd_int8_forward_q(q, in, B, got, &err) == KD_STATUS_OK, "%s", err.msg);
        ref_forward(m, q, in, B, want);
        int diff = 0;
        for (int i = 0; i < B * 7; i++) diff += got[i] != want[i];
        CHECK_MSG(diff == 0, "%d of %d int8 logits differ from the reference loop", diff, B * 7);
        /* and on quantized real images */
        float x[B * 200];
        int32_t idx[B], y[B];
        for (int k = 0; k < B; k++) idx[k] = k;
        kd_batch_fill(x, y, &ds, NULL, NULL, idx, B);
        kd_int8_quantize_input(q, in, x, B);
        CHECK(kd_int8_forward_q(q, in, B, got, &err) == KD_STATUS_OK);
        ref_forward(m, q, in, B, want);
        CHECK(memcmp(got, want, sizeof got) == 0);
        /* input quantization: zp = round(255 mean - 128) (-51.5 here: float rounding picks a side),
         * scale 1 / (255 std), so pixel p -> p - 128 up to that rounding */
        CHECK(abs(q->in_q.zero_point - (-51)) <= 1 && fabs(255.0 * 0.3 - 128 - q->in_q.zero_point) <= 0.5 + 1e-4);
        CHECK_NEAR(q->in_q.scale, 1.0 / (255 * 0.35), 1e-7);
        CHECK(in[0] == kd_quantize_value(x[0], q->in_q));
        /* the file */
        char path[512];
        snprintf(path, sizeof path, "%s/test_quantize.int8.safetensors", KD_BINARY_DIR);
        CHECK_MSG(kd_int8_save(path, q, &err) == KD_STATUS_OK, "%s", err.msg);
        char *data = NULL;
        size_t len = 0;
        if (kd_read_file(path, &data, &len, &err) == KD_STATUS_OK) {
            uint64_t h = 0;
            for (int i = 0; i < 8; i++) h |= (uint64_t)(unsigned char)data[i] << (8 * i);
            CHECK(h % 8 == 0 && 8 + h < len);
            CHECK(strstr(data + 8, "\"conv1.weight\":{\"dtype\":\"I8\",\"shape\":[5,3,3,2]") != NULL);
            CHECK(strstr(data + 8, "distill-int8") != NULL);
            /* data: the int8 weights, then the int32 bias */
            CHECK(memcmp(data + 8 + h, q->layers[0].weight, 90) == 0);
            free(data);
        } else {
            CHECK_MSG(0, "%s", err.msg);
        }
        /* read back: same integers out */
        kd_int8_model *l = NULL;
        CHECK_MSG(kd_int8_load(path, &l, &err) == KD_STATUS_OK, "%s", err.msg);
        if (l) {
            int8_t again[B * 7];
            CHECK(l->n_layers == q->n_layers && l->in_q.zero_point == q->in_q.zero_point &&
                  l->in_q.scale == q->in_q.scale);
            CHECK_MSG(kd_int8_forward_q(l, in, B, again, &err) == KD_STATUS_OK, "%s", err.msg);
            CHECK(memcmp(again, got, sizeof got) == 0);
            kd_int8_free(l);
        }
        /* a truncated file is an error, not a crash */
        if (kd_read_file(path, &data, &len, &err) == KD_STATUS_OK) {
            char tpath[600];
            snprintf(tpath, sizeof tpath, "%s.trunc", path);
            CHECK(kd_write_file_atomic(tpath, data, len - 40, &err) == KD_STATUS_OK);
            l = NULL;
            CHECK(kd_int8_load(tpath, &l, &err) == KD_STATUS_BAD_FILE && l == NULL);
            printf("truncated int8 file: %s\n", err.msg);
            remove(tpath);
            free(data);
        }
        remove(path);
        /* evaluation = argmax of kd_int8_forward */
        int32_t *pred = malloc(sizeof(int32_t) * ds.n);
        double acc = -1;
        CHECK_MSG(kd_int8_evaluate(q, &ds, 10, 2, &acc, pred, &err) == KD_STATUS_OK, "%s", err.msg);
        CHECK(acc >= 0 && acc <= 1);
        kd_batch_fill(x, y, &ds, NULL, NULL, idx, B);
        CHECK(kd_int8_forward(q, x, B, got, &err) == KD_STATUS_OK);
        for (int b = 0; b < B; b++) {
            int best = 0;
            for (int c = 1; c < 7; c++) best = got[b * 7 + c] > got[b * 7 + best] ? c : best;
            CHECK(pred[b] == best);
        }
        free(pred);
    }
    kd_int8_free(q);
    kd_dataset_free(&ds);
    kd_model_free(m);
}

/* max |dequantized int8 logit - fp32 logit| in output steps, over n images of ds */
static double logit_error_steps(const char *what, kd_model *m, const kd_int8_model *q, const kd_dataset *ds, int n,
                                int *agree) {
    kd_error err;
    size_t img = (size_t)ds->c * ds->h * ds->w;
    int K = m->n_classes;
    float *x = malloc(sizeof(float) * img * n);
    int32_t *idx = malloc(sizeof(int32_t) * n), *y = malloc(sizeof(int32_t) * n);
    int8_t *lg = malloc((size_t)n * K);
    for (int k = 0; k < n; k++) idx[k] = k;
    kd_batch_fill(x, y, ds, NULL, NULL, idx, n);
    CHECK(kd_model_set_batch(m, n, 1, &err) == KD_STATUS_OK);
    const float *f = kd_model_forward(m, x, n, 0, NULL);
    CHECK_MSG(kd_int8_forward(q, x, n, lg, &err) == KD_STATUS_OK, "%s", err.msg);
    const kdrt_quant oq = q->layers[q->n_layers - 1].out_q;
    double worst = 0, range = 0;
    *agree = 0;
    for (int b = 0; b < n; b++) {
        int bf = 0, bq = 0;
        for (int c = 0; c < K; c++) {
            double d = oq.scale * (lg[b * K + c] - oq.zero_point);
            worst = fmax(worst, fabs(d - f[b * K + c]) / oq.scale);
            range = fmax(range, fabs(f[b * K + c]));
            bf = f[b * K + c] > f[b * K + bf] ? c : bf;
            bq = lg[b * K + c] > lg[b * K + bq] ? c : bq;
        }
        *agree += bf == bq;
    }
    printf("%s: int8 vs fp32 logits: worst %.2f output steps (step %.4g, |logit| up to %.3g), argmax agrees on %d/%d\n",
           what, worst, (double)oq.scale, range, *agree, n);
    free(x); free(idx); free(y); free(lg);
    return worst;
}

static void test_vs_fp32(void) {
    kd_error err;
    struct { const char *name; const char *yaml; double budget; } cases[] = {
        {"small", small_yaml, 3.0},
        {"mobilenet-s", NULL, 4.0},
    };
    for (int t = 0; t < 2; t++) {
        kd_model *m = NULL;
        kd_status st = cases[t].yaml ? kd_model_from_yaml(&m, cases[t].yaml, "m.yaml", 3, &err)
                                     : kd_model_create(&m, cases[t].name, 3, &err);
        CHECK_MSG(st == KD_STATUS_OK, "%s", err.msg);
        if (!m) continue;
        perturb_bn(m, 9);
        kd_dataset ds;
        make_dataset(&ds, 48, m->in_c, m->in_h, m->in_w, m->n_classes, 17);
        kd_int8_model *q = quantize_default(m, &ds, 48);
        if (q) {
            if (t == 1) { /* folded BN, depthwise, the residual add, global pooling are all there */
                int ops[6] = {0};
                for (int i = 0; i < q->n_layers; i++) ops[q->layers[i].op]++;
                CHECK(ops[KD_INT8_CONV] == 4 && ops[KD_INT8_DEPTHWISE] == 3 && ops[KD_INT8_ADD] == 1 &&
                      ops[KD_INT8_AVGPOOL] == 1 && ops[KD_INT8_FC] == 1);
            }
            int agree = 0;
            /* Budget, in steps of the logits' quantization: the error of every layer propagated
             * through a few layers of random weights stays within a few output steps (measured:
             * see the printed line); the argmax agrees on most images. */
            double w = logit_error_steps(cases[t].name, m, q, &ds, 48, &agree);
            CHECK_MSG(w <= cases[t].budget, "%s: %.2f steps > budget %.1f", cases[t].name, w, cases[t].budget);
            CHECK(agree >= 40);
        }
        kd_int8_free(q);
        kd_dataset_free(&ds);
        kd_model_free(m);
    }
}

static void test_ranges(void) {
    kd_error err;
    kd_model *m = NULL, *f = NULL;
    CHECK(kd_model_create(&m, "mobilenet-s", 4, &err) == KD_STATUS_OK);
    perturb_bn(m, 2);
    CHECK(kd_fold_batchnorm(m, &f, NULL, &err) == KD_STATUS_OK);
    kd_dataset ds;
    make_dataset(&ds, 40, 1, 28, 28, 10, 8);
    kd_calib_ranges r[3];
    for (int k = 0; k < 3; k++) {
        kd_calib_config cfg;
        kd_calib_config_default(&cfg);
        cfg.n_images = 40;
        cfg.batch = 20;
        cfg.method = (kd_calib_method)k;
        cfg.percentile = 99.9;
        CHECK_MSG(kd_int8_calibrate(f, &ds, &cfg, &r[k], &err) == KD_STATUS_OK, "%s", err.msg);
    }
    int narrower[3] = {0};
    for (int i = 0; i < f->n_layers; i++) {
        for (int k = 1; k < 3; k++) {
            CHECK_MSG(r[k].lo[i] >= r[0].lo[i] && r[k].hi[i] <= r[0].hi[i] && r[k].lo[i] <= r[k].hi[i],
                      "%s layer %s: [%g, %g] vs min-max [%g, %g]", kd_calib_method_name((kd_calib_method)k),
                      f->layers[i].name, (double)r[k].lo[i], (double)r[k].hi[i], (double)r[0].lo[i],
                      (double)r[0].hi[i]);
            narrower[k] += r[k].hi[i] - r[k].lo[i] < r[0].hi[i] - r[0].lo[i];
        }
        if (f->layers[i].type == KD_LAYER_RELU) CHECK(r[0].lo[i] >= 0.f);
    }
    /* on 40 x 28 x 28 x C values, the 99.9th percentile and the MSE optimum clip something */
    CHECK(narrower[1] > f->n_layers / 2 && narrower[2] > f->n_layers / 2);
    printf("ranges: percentile narrower than min-max on %d/%d layers, mse on %d/%d\n", narrower[1], f->n_layers,
           narrower[2], f->n_layers);
    CHECK_NEAR(r[0].in_lo, -0.3 / 0.35, 1e-6);
    CHECK_NEAR(r[0].in_hi, 0.7 / 0.35, 1e-6);
    for (int k = 0; k < 3; k++) kd_calib_ranges_free(&r[k]);
    kd_dataset_free(&ds);
    kd_model_free(f);
    kd_model_free(m);
}

static void test_errors(void) {
    kd_error err;
    kd_model *m = NULL;
    CHECK(kd_model_from_yaml(&m, small_yaml, "small.yaml", 1, &err) == KD_STATUS_OK);
    kd_dataset ds, other;
    make_dataset(&ds, 8, 2, 10, 10, 7, 1);
    make_dataset(&other, 8, 1, 12, 12, 7, 1);
    kd_calib_config cfg;
    kd_calib_config_default(&cfg);
    kd_calib_ranges r;
    kd_int8_model *q = NULL;

    cfg.n_images = -1;
    CHECK(kd_int8_calibrate(m, &ds, &cfg, &r, &err) == KD_STATUS_BAD_ARG);
    CHECK(strstr(err.msg, "at least 1 sample") != NULL);
    /* the default (0) takes all of a set smaller than 1000 rather than refusing it */
    kd_calib_config def;
    kd_calib_config_default(&def);
    CHECK(def.n_images == 0 && kd_calib_count(&def, 8) == 8 && kd_calib_count(&def, 60000) == 1000);
    CHECK(kd_int8_calibrate(m, &ds, &def, &r, &err) == KD_STATUS_OK);
    kd_calib_ranges_free(&r);
    cfg.n_images = 9;
    CHECK(kd_int8_calibrate(m, &ds, &cfg, &r, &err) == KD_STATUS_BAD_ARG);
    CHECK(strstr(err.msg, "has 8") != NULL);
    cfg.n_images = 8;
    CHECK(kd_int8_quantize(m, &other, &cfg, &q, &err) == KD_STATUS_BAD_ARG && q == NULL);
    CHECK(strstr(err.msg, "1x12x12") != NULL && strstr(err.msg, "2x10x10") != NULL);
    cfg.method = KD_CALIB_PERCENTILE;
    cfg.percentile = 30;
    CHECK(kd_int8_calibrate(m, &ds, &cfg, &r, &err) == KD_STATUS_BAD_ARG);
    cfg.method = KD_CALIB_MSE;
    /* a NaN weight makes conv2's outputs NaN */
    m->params[m->layers[3].w_off] = NAN;
    CHECK(kd_int8_calibrate(m, &ds, &cfg, &r, &err) == KD_STATUS_BAD_ARG);
    CHECK_MSG(strstr(err.msg, "conv2") != NULL, "%s", err.msg);
    CHECK(r.lo == NULL && r.hi == NULL);
    printf("errors: %s\n", err.msg);
    kd_model_free(m);

    /* layers the runtime cannot run */
    const char *gelu = "name: g\ninput: [2, 10, 10]\nlayers:\n"
                       "  - {name: c, type: conv2d, out: 3, kernel: 3}\n"
                       "  - {name: act, type: gelu}\n"
                       "  - {name: fl, type: flatten}\n"
                       "  - {name: d, type: dropout, p: 0.5}\n"
                       "  - {name: fc, type: linear, out: 4}\n";
    CHECK(kd_model_from_yaml(&m, gelu, "g.yaml", 1, &err) == KD_STATUS_OK);
    cfg.n_images = 8;
    CHECK(kd_int8_quantize(m, &ds, &cfg, &q, &err) == KD_STATUS_BAD_MODEL && q == NULL);
    CHECK_MSG(strstr(err.msg, "act") && strstr(err.msg, "GELU"), "%s", err.msg);
    kd_model_free(m);
    /* dropout is the identity, a standalone ReLU (after a pool fed to two readers) is a clamp */
    const char *ok = "name: d\ninput: [2, 10, 10]\nlayers:\n"
                     "  - {name: c, type: conv2d, out: 3, kernel: 3}\n"
                     "  - {name: p, type: maxpool, kernel: 2}\n"
                     "  - {name: r, type: relu}\n"
                     "  - {name: a, type: add, inputs: [p, r]}\n"
                     "  - {name: fl, type: flatten}\n"
                     "  - {name: d, type: dropout, p: 0.5}\n"
                     "  - {name: fc, type: linear, out: 4}\n";
    CHECK(kd_model_from_yaml(&m, ok, "d.yaml", 1, &err) == KD_STATUS_OK);
    CHECK_MSG(kd_int8_quantize(m, &ds, &cfg, &q, &err) == KD_STATUS_OK, "%s", err.msg);
    if (q) {
        CHECK(q->n_layers == 5 && q->layers[2].op == KD_INT8_MAXPOOL && q->layers[2].relu &&
              q->layers[3].op == KD_INT8_ADD && q->layers[4].op == KD_INT8_FC);
        int agree = 0;
        kd_model *mm = m;
        CHECK(logit_error_steps("pool+relu+add", mm, q, &ds, 8, &agree) <= 3.0);
        /* the add's parameters survive the file */
        char path[512];
        snprintf(path, sizeof path, "%s/test_quantize.add.int8.safetensors", KD_BINARY_DIR);
        kd_int8_model *l = NULL;
        CHECK_MSG(kd_int8_save(path, q, &err) == KD_STATUS_OK, "%s", err.msg);
        CHECK_MSG(kd_int8_load(path, &l, &err) == KD_STATUS_OK, "%s", err.msg);
        if (l) {
            CHECK(memcmp(&l->layers[3].add, &q->layers[3].add, sizeof q->layers[3].add) == 0);
            CHECK(memcmp(&l->layers[2].pool, &q->layers[2].pool, sizeof q->layers[2].pool) == 0);
        }
        kd_int8_free(l);
        remove(path);
    }
    kd_int8_free(q);
    kd_model_free(m);
    kd_dataset_free(&ds);
    kd_dataset_free(&other);
}

static void test_int4_weights(void) {
    enum { C = 5, K = 75, G = 16 };
    float w[C * K], s[C];
    int8_t q[C * K], q8[C * K];
    float s8[C];
    kd_rng r;
    kd_rng_seed(&r, 11, 1);
    for (int i = 0; i < C * K; i++) w[i] = (kd_rng_uniform(&r) - 0.5f) * (float)(1 + (i % K) / G);
    for (int k = 0; k < G; k++) w[3 * K + k] = 0.f; /* a group of zeros */
    kd_quantize_weights_bits(q, s, w, C, K, 4, G);
    double worst = 0;
    int coarse = 0;
    for (int c = 0; c < C; c++)
        for (int g0 = 0; g0 < K; g0 += G) {
            int g1 = g0 + G < K ? g0 + G : K, m_g = 0;
            float gm = 0.f;
            for (int k = g0; k < g1; k++) gm = fmaxf(gm, fabsf(w[c * K + k]));
            /* every value of a group is m_g * v with one m_g in [1, 16] and |v| <= 7 */
            for (int m = 1; m <= 16 && !m_g; m++) {
                int ok = 1;
                for (int k = g0; k < g1; k++) ok &= q[c * K + k] % m == 0 && abs(q[c * K + k] / m) <= 7;
                if (ok) m_g = m;
            }
            CHECK(m_g >= 1);
            int mx = 0;
            for (int k = g0; k < g1; k++) mx = abs(q[c * K + k]) > mx ? abs(q[c * K + k]) : mx;
            CHECK(mx <= 112);
            /* the group's step is ~ max|w_g| / 7: half a step is the budget */
            double step = (double)s[c] * ceil(gm / (7.0 * s[c]));
            if (step == 0) step = s[c];
            for (int k = g0; k < g1; k++)
                worst = fmax(worst, fabs((double)s[c] * q[c * K + k] - w[c * K + k]) / step);
            coarse += gm > 0.f && step > (double)gm / 7.0 * 1.5; /* a group much coarser than its own int4 range */
        }
    CHECK_MSG(worst <= 0.5 + 1e-4, "int4 worst error %.4f group steps", worst);
    CHECK(coarse == 0);
    printf("int4 weights: worst error %.4f group steps (budget 0.5)\n", worst);
    /* 8 bits is the per-channel int8 quantizer */
    kd_quantize_weights_bits(q, s, w, C, K, 8, G);
    kd_quantize_weights(q8, s8, w, C, K);
    CHECK(!memcmp(q, q8, sizeof q) && !memcmp(s, s8, sizeof s));
}

static void test_fake_quant(void) {
    kd_error err;
    const char *names[2] = {"small", "mobilenet-s"};
    for (int t = 0; t < 2; t++)
        for (int bits = 8; bits >= 4; bits -= 4) {
            kd_model *m0 = NULL, *m = NULL;
            kd_status st = t == 0 ? kd_model_from_yaml(&m0, small_yaml, "m.yaml", 3, &err)
                                  : kd_model_create(&m0, names[t], 3, &err);
            CHECK_MSG(st == KD_STATUS_OK, "%s", err.msg);
            if (!m0) continue;
            perturb_bn(m0, 9);
            CHECK(kd_fold_batchnorm(m0, &m, NULL, &err) == KD_STATUS_OK);
            kd_model_free(m0);
            if (!m) continue;
            kd_dataset ds;
            make_dataset(&ds, 48, m->in_c, m->in_h, m->in_w, m->n_classes, 17);
            kd_calib_config cfg;
            kd_calib_config_default(&cfg);
            cfg.n_images = 48;
            cfg.batch = 16;
            cfg.weight_bits = bits;
            cfg.weight_group = 8;
            kd_calib_ranges r;
            kd_int8_model *q = NULL;
            CHECK(kd_int8_calibrate(m, &ds, &cfg, &r, &err) == KD_STATUS_OK);
            CHECK_MSG(kd_int8_build(m, &r, &cfg, &q, &err) == KD_STATUS_OK, "%s", err.msg);
            if (!q) { kd_model_free(m); kd_dataset_free(&ds); continue; }
            CHECK(q->weight_bits == bits);
            int agree_plain = 0, agree_fq = 0;
            char what[64];
            snprintf(what, sizeof what, "%s int%d, plain fp32", names[t], bits);
            double plain = logit_error_steps(what, m, q, &ds, 48, &agree_plain);
            CHECK_MSG(kd_fake_quant_attach(m, q, &err) == KD_STATUS_OK, "%s", err.msg);
            snprintf(what, sizeof what, "%s int%d, fake-quantized", names[t], bits);
            double fq = logit_error_steps(what, m, q, &ds, 48, &agree_fq);
            /* What is left is the input's and the bias's rounding and the occasional rounding tie
             * that falls the other way, propagated: one or two output steps (measured 1-2). */
            CHECK_MSG(fq <= 2.5 && fq < plain, "fake-quantized %.2f steps, plain %.2f", fq, plain);
            CHECK(agree_fq >= 46);
            const kd_fake_quant *f = kd_model_fake_quant(m);
            /* the weights training sees are the int8 model's, through the layout permutations */
            int bad = 0;
            for (int k = 0; k < q->n_layers; k++) {
                const kd_int8_layer *Q = &q->layers[k];
                if (!Q->weight) continue;
                int i = kd_model_find_layer(m, Q->name);
                const kd_layer *L = &m->layers[i];
                const float *wq = f->wq + L->w_off;
                CHECK(f->w_on[i]);
                for (int o = 0; o < L->out; o++) {
                    if (L->type == KD_LAYER_LINEAR) { /* NHWC columns after a flatten of (C, H, W) */
                        int C = Q->in_dims.c, H = Q->in_dims.h, W = Q->in_dims.w;
                        for (int c = 0; c < C; c++)
                            for (int y = 0; y < H; y++)
                                for (int x = 0; x < W; x++)
                                    bad += wq[(size_t)o * L->in_c + ((size_t)c * H + y) * W + x] !=
                                           Q->w_scale[o] * Q->weight[(size_t)o * L->in_c + ((size_t)y * W + x) * C + c];
                        continue;
                    }
                    int K = L->kernel, C = L->groups > 1 ? 1 : L->in_c;
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < K; ky++)
                            for (int kx = 0; kx < K; kx++) {
                                size_t tr = (((size_t)o * C + c) * K + ky) * K + kx;
                                size_t rt = L->groups > 1 ? ((size_t)ky * K + kx) * L->out + o
                                                          : (((size_t)o * K + ky) * K + kx) * C + c;
                                bad += wq[tr] != Q->w_scale[o] * Q->weight[rt];
                            }
                }
            }
            CHECK_MSG(bad == 0, "%d fake-quantized weights differ from the int8 model's", bad);
            /* every quantized output is on its grid, inside its clamp */
            int off_grid = 0, n_on = 0;
            for (int i = 0; i < m->n_layers; i++) {
                if (!f->a_on[i]) continue;
                n_on++;
                const float *y = kd_model_layer_output(m, i);
                kdrt_quant aq = f->a_q[i];
                for (size_t e = 0; e < 48 * kd_layer_out_size(&m->layers[i]); e++) {
                    double v = y[e] / (double)aq.scale + aq.zero_point;
                    off_grid += fabs(v - round(v)) > 1e-3 || round(v) < f->a_lo[i] || round(v) > f->a_hi[i];
                }
            }
            CHECK(n_on == q->n_layers && off_grid == 0);
            kd_calib_ranges_free(&r);
            kd_int8_free(q);
            kd_dataset_free(&ds);
            kd_model_free(m); /* frees the fake quantization too (ASan would see a leak) */
        }
    /* the straight-through gradient stops exactly at the clamp bounds */
    kdrt_quant aq = {0.1f, -20};
    float y[6] = {-5.f, -0.81f, 0.f, 3.33f, 14.7f, 99.f}, dy[6] = {1, 1, 1, 1, 1, 1};
    kd_fake_quant_forward(y, 6, aq, -28, 127); /* real range [-0.8, 14.7] */
    CHECK_NEAR(y[0], -0.8, 1e-6);
    CHECK_NEAR(y[1], -0.8, 1e-6);
    CHECK_NEAR(y[3], 3.3, 1e-6);
    CHECK_NEAR(y[5], 14.7, 1e-5);
    kd_fake_quant_backward(dy, y, 6, aq, -28, 127);
    CHECK(dy[0] == 0.f && dy[1] == 0.f && dy[2] == 1.f && dy[3] == 1.f && dy[4] == 0.f && dy[5] == 0.f);
}

/* kd_half_to_float (the .npy and ONNX float16 readers'): normals, subnormals, signed zero, the largest
 * half, infinities and NaN. */
static void test_half(void) {
    CHECK(kd_half_to_float(0x3c00) == 1.f && kd_half_to_float(0xc000) == -2.f && kd_half_to_float(0x3555) == 0x1.554p-2f);
    CHECK(kd_half_to_float(0x0001) == 0x1p-24f && kd_half_to_float(0x03ff) == 0x3ffp-24f);
    CHECK(kd_half_to_float(0x8000) == 0.f && signbit(kd_half_to_float(0x8000)) && kd_half_to_float(0x7bff) == 65504.f);
    CHECK(kd_half_to_float(0x7c00) == INFINITY && kd_half_to_float(0xfc00) == -INFINITY && isnan(kd_half_to_float(0x7e00)));
}

int main(void) {
    test_half();
    test_weights();
    test_bit_exact();
    test_vs_fp32();
    test_ranges();
    test_errors();
    test_int4_weights();
    test_fake_quant();
    TEST_DONE();
}
