/* Model building from YAML (shapes, parameter counts, MACs, every error path), a finite-difference
 * gradient check through a whole graph with batch norm, dropout and a residual connection, and
 * the optimizers and schedules against hand-computed updates; the model's thread count stays its
 * own (OpenMP's process-wide default is left alone). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "distill/model.h"
#include "distill/train.h"
#include "test.h"

static kd_status build(const char *yaml, kd_model **m, kd_error *err) { return kd_model_from_yaml(m, yaml, "t.yaml", 7, err); }

static void expect_error(const char *yaml, const char *needle1, const char *needle2) {
    kd_model *m = NULL;
    kd_error err = {0};
    kd_status st = build(yaml, &m, &err);
    CHECK_MSG(st == KD_STATUS_BAD_MODEL, "status %d for %s", st, needle1);
    CHECK_MSG(m == NULL, "model returned on error");
    CHECK_MSG(strstr(err.msg, needle1) != NULL, "'%s' not in '%s'", needle1, err.msg);
    if (needle2) CHECK_MSG(strstr(err.msg, needle2) != NULL, "'%s' not in '%s'", needle2, err.msg);
    CHECK_MSG(strstr(err.msg, "t.yaml") != NULL, "file not named in '%s'", err.msg);
    kd_model_free(m);
}

static void test_zoo(void) {
    const char *names[] = {"cnn-t", "cnn-s", "mlp-s", "mlp-1200", "mlp-800", "mobilenet-s"};
    for (int i = 0; i < 6; i++) {
        kd_model *m = NULL;
        kd_error err;
        CHECK_MSG(kd_model_create(&m, names[i], 1, &err) == KD_STATUS_OK, "%s: %s", names[i], err.msg);
        if (!m) continue;
        CHECK(m->n_classes == 10);
        CHECK(strcmp(m->name, names[i]) == 0);
        kd_model_free(m);
    }
    kd_model *m = NULL;
    kd_error err;
    /* cnn-s: conv1 8*1*9+8, conv2 16*8*9+16, fc 784*10+10 */
    CHECK(kd_model_create(&m, "cnn-s", 1, &err) == KD_STATUS_OK);
    CHECK(m->n_params == 80 + 1168 + 7850);
    CHECK(kd_model_macs(m) == 28LL * 28 * 8 * 9 + 14LL * 14 * 16 * 72 + 7840);
    kd_model_free(m);
    CHECK(kd_model_create(&m, "mlp-s", 1, &err) == KD_STATUS_OK);
    CHECK(m->n_params == 784 * 128 + 128 + 1290);
    kd_model_free(m);
    /* cnn-t: no conv biases (batch norm follows), BN has 2 params and 2 buffers per channel */
    CHECK(kd_model_create(&m, "cnn-t", 1, &err) == KD_STATUS_OK);
    CHECK(m->n_params == 288 + 64 + 18432 + 128 + 73728 + 256 + 6272 * 256 + 512 + 2570);
    CHECK(m->n_buffers == 2 * (32 + 64 + 128 + 256));
    kd_model_free(m);
    CHECK(kd_model_create(&m, "no-such-model", 1, &err) == KD_STATUS_NOT_FOUND);
    CHECK(strstr(err.msg, "cnn-t") != NULL); /* lists the built-in names */
    /* PyTorch's default init bound 1/sqrt(fan_in) */
    CHECK(kd_model_create(&m, "mlp-s", 3, &err) == KD_STATUS_OK);
    float mx = 0;
    for (size_t i = 0; i < 784 * 128; i++) mx = fmaxf(mx, fabsf(m->params[m->layers[1].w_off + i]));
    CHECK(mx <= 1.f / 28.f && mx > 0.9f / 28.f);
    kd_model_free(m);
}

static void test_yaml_errors(void) {
    const char *head = "name: x\ninput: [1, 8, 8]\nlayers:\n";
    char y[1024];
#define Y(body) (snprintf(y, sizeof y, "%s%s", head, body), y)
    expect_error(Y("  - {type: convolution, out: 4}\n"), "unknown layer type 'convolution'", "#1");
    expect_error(Y("  - {type: flatten}\n  - {type: linear, out: 10, kernal: 3}\n"), "unknown option 'kernal'", "linear1");
    expect_error(Y("  - {type: conv2d}\n"), "needs 'out'", NULL);
    expect_error(Y("  - {type: conv2d, out: 4, kernel: 9}\n  - {type: flatten}\n"), "conv2d1", "does not fit");
    expect_error(Y("  - {type: conv2d, out: 4, groups: 3}\n"), "conv2d1", "groups");
    expect_error(Y("  - {name: a, type: conv2d, out: 4, pad: 1}\n  - {name: b, type: conv2d, out: 8, pad: 1}\n"
                   "  - {name: c, type: add, inputs: [a, b]}\n  - {type: flatten}\n"),
                 "layer c", "different shapes");
    expect_error(Y("  - {name: a, type: relu}\n  - {type: add, inputs: [a, nowhere]}\n"), "'nowhere'", NULL);
    expect_error(Y("  - {name: a, type: relu}\n  - {name: a, type: relu}\n"), "duplicate layer name 'a'", NULL);
    expect_error(Y("  - {type: conv2d, out: -4}\n"), "'out'", NULL);
    expect_error(Y("  - {type: dropout, p: 1.5}\n"), "'p'", NULL);
    expect_error(Y("  - {type: conv2d, out: 4}\n"), "class scores", NULL); /* does not end in a vector */
    expect_error(Y("  - {type: maxpool, kernel: 16}\n"), "maxpool1", "larger");
    expect_error("name: x\nlayers:\n  - {type: relu}\n", "'input'", NULL);
    expect_error("name: x\ninput: [1, 8, 8]\nlayers: []\n", "'layers'", NULL);
    expect_error("name: x\ninput: [1, 8, 8]\nlayers:\n  - {type: relu\n", "t.yaml: YAML error at line 5, column 1", NULL);
    expect_error("- just\n- a list\n", "expected a mapping", NULL);
#undef Y
}

/* Whole-model gradient check: L = sum(logits * R); every parameter's analytic gradient against a
 * central difference. Dropout masks are identical across evaluations because the rng is re-seeded. */
static const char *graph_yaml =
    "name: g\ninput: [2, 6, 6]\nlayers:\n"
    "  - {name: c1, type: conv2d, out: 4, kernel: 3, pad: 1}\n"
    "  - {name: bn1, type: batchnorm}\n"
    "  - {name: r1, type: relu}\n"
    "  - {name: c2, type: conv2d, out: 4, kernel: 3, pad: 1, groups: 4}\n"
    "  - {name: g1, type: gelu}\n"
    "  - {name: res, type: add, inputs: [g1, r1]}\n"
    "  - {name: p1, type: avgpool, kernel: 2}\n"
    "  - {name: mp, type: maxpool, kernel: 3, stride: 1}\n"
    "  - {name: f, type: flatten}\n"
    "  - {name: d, type: dropout, p: 0.25}\n"
    "  - {name: fc1, type: linear, out: 6}\n"
    "  - {name: bn2, type: batchnorm}\n"
    "  - {name: fc2, type: linear, out: 3}\n";

static double loss_of(kd_model *m, const float *x, int B, const float *R) {
    kd_rng rng;
    kd_rng_seed(&rng, 5, 5);
    /* Running stats change on every train-mode forward; they do not affect the train output. */
    const float *lo = kd_model_forward(m, x, B, 1, &rng);
    double L = 0;
    for (int i = 0; i < B * m->n_classes; i++) L += (double)lo[i] * R[i];
    return L;
}

static void test_model_gradcheck(void) {
    kd_model *m = NULL;
    kd_error err;
    CHECK_MSG(build(graph_yaml, &m, &err) == KD_STATUS_OK, "%s", err.msg);
    if (!m) return;
    int B = 5;
    CHECK(kd_model_set_batch(m, B, 2, &err) == KD_STATUS_OK);
    kd_rng r;
    kd_rng_seed(&r, 11, 0);
    float *x = malloc(sizeof(float) * B * 72), *R = malloc(sizeof(float) * B * 3);
    for (int i = 0; i < B * 72; i++) x[i] = kd_rng_normal(&r);
    for (int i = 0; i < B * 3; i++) R[i] = kd_rng_normal(&r);
    loss_of(m, x, B, R);
    kd_model_zero_grad(m);
    kd_model_backward(m, R);
    float *g = malloc(sizeof(float) * m->n_params);
    memcpy(g, m->grads, sizeof(float) * m->n_params);
    int bad = 0, checked = 0;
    double worst = 0;
    for (size_t i = 0; i < m->n_params; i += 1 + (i % 3)) {
        float save = m->params[i], h = 2e-3f;
        m->params[i] = save + h;
        double lp = loss_of(m, x, B, R);
        m->params[i] = save - h;
        double lm = loss_of(m, x, B, R);
        m->params[i] = save;
        double num = (lp - lm) / (2 * h), ana = g[i];
        double rel = fabs(num - ana) / fmax(1e-2, fabs(num) + fabs(ana));
        /* maxpool/relu kinks can make a few finite differences meaningless: allow a handful */
        if (rel > 2e-2) {
            bad++;
            fprintf(stderr, "  param %zu: analytic %g numeric %g\n", i, ana, num);
        }
        if (rel > worst) worst = rel;
        checked++;
    }
    CHECK_MSG(bad <= checked / 50, "%d of %d parameters disagree (worst rel %g)", bad, checked, worst);
    CHECK(checked > 100);
    /* backward accumulates */
    loss_of(m, x, B, R);
    kd_model_backward(m, R);
    int doubled = 1;
    for (size_t i = 0; i < m->n_params; i++)
        if (fabsf(m->grads[i] - 2 * g[i]) > 1e-5f * (1 + fabsf(g[i]))) doubled = 0;
    CHECK(doubled);
    free(g); free(x); free(R);
    kd_model_free(m);
}

/* The thread count travels with the model: set_batch, forward and backward leave OpenMP's
 * process-wide default alone, and the forward gives the same bits with 1 or 3 threads (every
 * forward op splits work by image or channel, never a sum). */
static void test_model_threads(void) {
    kd_model *m = NULL;
    kd_error err;
    CHECK_MSG(build(graph_yaml, &m, &err) == KD_STATUS_OK, "%s", err.msg);
    if (!m) return;
    int B = 5, before = omp_get_max_threads();
    size_t nx = (size_t)B * 72, nl = (size_t)B * 3;
    float *x = malloc(sizeof(float) * nx), *y1 = malloc(sizeof(float) * nl);
    kd_rng r;
    kd_rng_seed(&r, 12, 0);
    for (size_t i = 0; i < nx; i++) x[i] = kd_rng_normal(&r);
    CHECK(kd_model_set_batch(m, B, 1, &err) == KD_STATUS_OK);
    memcpy(y1, kd_model_forward(m, x, B, 0, NULL), sizeof(float) * nl);
    kd_model_backward(m, y1);
    CHECK_MSG(omp_get_max_threads() == before, "OpenMP default changed from %d to %d", before, omp_get_max_threads());
    CHECK(kd_model_set_batch(m, B, 3, &err) == KD_STATUS_OK);
    CHECK(kd_model_threads(m) == 3);
    CHECK(memcmp(y1, kd_model_forward(m, x, B, 0, NULL), sizeof(float) * nl) == 0);
    CHECK_MSG(omp_get_max_threads() == before, "OpenMP default changed from %d to %d", before, omp_get_max_threads());
    free(x), free(y1);
    kd_model_free(m);
}

static void test_optim(void) {
    kd_model *m = NULL;
    kd_error err;
    CHECK(build("name: o\ninput: [1, 1, 2]\nlayers:\n  - {type: linear, out: 1}\n", &m, &err) == KD_STATUS_OK);
    if (!m) return;
    /* params: w0 w1 b. SGD Nesterov momentum 0.9, wd 0.1 (weights only), lr 0.5, two steps */
    kd_optim_config c;
    kd_optim_config_default(&c);
    c.lr = 0.5f; c.weight_decay = 0.1f;
    kd_optimizer o;
    CHECK(kd_optimizer_init(&o, &c, m, &err) == KD_STATUS_OK);
    float p0[3] = {1.f, -2.f, 0.5f};
    memcpy(m->params, p0, sizeof p0);
    float gr[3] = {0.2f, 0.4f, -1.f};
    double ref[3], buf[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) ref[i] = p0[i];
    for (int step = 0; step < 2; step++) {
        memcpy(m->grads, gr, sizeof gr);
        kd_optimizer_step(&o, m, c.lr);
        for (int i = 0; i < 3; i++) {
            double gi = gr[i] + (i < 2 ? 0.1 * ref[i] : 0.0);
            buf[i] = 0.9 * buf[i] + gi;
            ref[i] -= 0.5 * (gi + 0.9 * buf[i]);
        }
    }
    for (int i = 0; i < 3; i++) CHECK_NEAR(m->params[i], ref[i], 1e-6);
    kd_optimizer_free(&o);
    /* AdamW (PyTorch semantics) */
    c.type = KD_OPT_ADAMW; c.lr = 0.01f; c.weight_decay = 0.1f;
    CHECK(kd_optimizer_init(&o, &c, m, &err) == KD_STATUS_OK);
    memcpy(m->params, p0, sizeof p0);
    double mm[3] = {0}, vv[3] = {0};
    for (int i = 0; i < 3; i++) ref[i] = p0[i];
    for (int t = 1; t <= 3; t++) {
        memcpy(m->grads, gr, sizeof gr);
        kd_optimizer_step(&o, m, c.lr);
        for (int i = 0; i < 3; i++) {
            ref[i] *= 1 - 0.01 * (i < 2 ? 0.1 : 0.0);
            mm[i] = 0.9 * mm[i] + 0.1 * gr[i];
            vv[i] = 0.999 * vv[i] + 0.001 * gr[i] * gr[i];
            double mh = mm[i] / (1 - pow(0.9, t)), vh = vv[i] / (1 - pow(0.999, t));
            ref[i] -= 0.01 * mh / (sqrt(vh) + 1e-8);
        }
    }
    for (int i = 0; i < 3; i++) CHECK_NEAR(m->params[i], ref[i], 1e-6);
    kd_optimizer_free(&o);
    c.lr = -1.f;
    CHECK(kd_optimizer_init(&o, &c, m, &err) == KD_STATUS_BAD_ARG);
    kd_model_free(m);
    /* schedules */
    kd_optim_config_default(&c);
    c.lr = 0.1f;
    CHECK_NEAR(kd_schedule_lr(&c, 0.0, 10), 0.1, 1e-7);
    CHECK_NEAR(kd_schedule_lr(&c, 5.0, 10), 0.05, 1e-7);
    CHECK_NEAR(kd_schedule_lr(&c, 10.0, 10), 0.0, 1e-7);
    c.warmup_epochs = 2.f;
    CHECK_NEAR(kd_schedule_lr(&c, 1.0, 10), 0.5 * 0.1 * 0.5 * (1 + cos(3.14159265358979 * 0.1)), 1e-7);
    c.warmup_epochs = 0.f;
    c.sched = KD_SCHED_STEP; c.step_epochs = 3; c.step_gamma = 0.5f;
    CHECK_NEAR(kd_schedule_lr(&c, 2.9, 10), 0.1, 1e-7);
    CHECK_NEAR(kd_schedule_lr(&c, 6.0, 10), 0.025, 1e-7);
}

/* Sizes whose products overflow int32 or int64 (issue 12 item 7): each is refused with the layer (or
 * the input) and the exact numbers, never wrapped around to a small, plausible size. */
static void test_size_limits(void) {
    /* the campaign's case: [1, 65536, 65536] then flatten and linear was a flatten of [0,1,1] and a
     * 10-parameter linear */
    expect_error("name: x\ninput: [1, 65536, 65536]\nlayers:\n  - {type: flatten}\n  - {type: linear, out: 10}\n",
                 "'input' [1, 65536, 65536] has 4294967296 elements per sample", "at most 268435456");
    /* parameter counts past int32: a linear of 2^28 inputs x 16, a conv of 65536 x 65536 x 31 x 31 */
    expect_error("name: x\ninput: [1, 16384, 16384]\nlayers:\n  - {type: flatten}\n  - {type: linear, out: 16}\n",
                 "t.yaml:5: layer linear1: 4294967296 weights", "at most 268435456");
    expect_error("name: x\ninput: [65536, 1, 1]\nlayers:\n  - {type: conv2d, out: 65536, kernel: 31, pad: 15}\n"
                 "  - {type: flatten}\n",
                 "layer conv2d1: 4127463571456 weights", NULL);
    /* a conv's activation size past int32: [64, 16384, 16384] */
    expect_error("name: x\ninput: [1, 16384, 16384]\nlayers:\n  - {type: conv2d, out: 64, kernel: 1}\n  - {type: flatten}\n",
                 "layer conv2d1: output [64,16384,16384] has 17179869184 elements per sample", NULL);
    /* Activations past int64 on multiply: 16 layers of 2^28 floats per sample at batch 2^30 are 2^62
     * floats, 2^64 bytes, which wrapped to a 0-byte block that the forward pass would overrun. */
    char y[2048];
    int len = snprintf(y, sizeof y, "name: big\ninput: [1, 16384, 16384]\nlayers:\n  - {type: conv2d, out: 1, kernel: 1}\n");
    for (int i = 0; i < 14; i++) len += snprintf(y + len, sizeof y - (size_t)len, "  - {type: relu}\n");
    snprintf(y + len, sizeof y - (size_t)len, "  - {type: flatten}\n");
    kd_model *m = NULL;
    kd_error err = {0};
    CHECK_MSG(build(y, &m, &err) == KD_STATUS_OK, "%s", err.msg);
    if (m) {
        CHECK(m->n_classes == 1 << 28 && m->n_layers == 16 && m->n_params == 2);
        CHECK(kd_model_macs(m) == 1LL << 28);
        kd_status st = kd_model_set_batch(m, 1 << 30, 1, &err);
        CHECK_MSG(st == KD_STATUS_NO_MEMORY, "batch 2^30: status %d (%s)", st, st ? err.msg : "accepted");
        CHECK_MSG(strstr(err.msg, "big: batch 1073741824") && strstr(err.msg, "268435456 floats per sample"), "%s",
                  err.msg);
        CHECK(kd_model_batch(m) == 0);
        kd_model_free(m);
    }
    /* conv scratch past int64 on multiply: one thread's im2col of a 31x31 kernel over 2048x2048 is
     * ~2^33 floats; times 2^31 - 1 threads it wrapped around */
    m = NULL;
    CHECK_MSG(build("name: wide\ninput: [1, 2048, 2048]\nlayers:\n  - {name: c, type: conv2d, out: 1, kernel: 31, pad: 15}\n"
                    "  - {type: flatten}\n", &m, &err) == KD_STATUS_OK, "%s", err.msg);
    if (m) {
        CHECK(kd_model_macs(m) == 961LL << 22);
        kd_status st = kd_model_set_batch(m, 1, 2147483647, &err);
        CHECK_MSG(st == KD_STATUS_NO_MEMORY, "2^31-1 threads: status %d (%s)", st, st ? err.msg : "accepted");
        CHECK_MSG(strstr(err.msg, "with 2147483647 threads") && strstr(err.msg, "layer c"), "%s", err.msg);
        kd_model_free(m);
    }
}

int main(void) {
    test_zoo();
    test_yaml_errors();
    test_size_limits();
    test_model_gradcheck();
    test_model_threads();
    test_optim();
    TEST_DONE();
}
