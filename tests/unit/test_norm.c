/* Each model fed the inputs its own normalisation asks for (issue 13): batches normalised per
 * channel with a model's norm_mean / norm_std (or the data's statistics without one), a teacher
 * normalised otherwise than its student given exactly its own input of the same augmented view
 * (online, in an ensemble, cached, and inside the training loop), and int8 quantization taking the
 * model's normalisation (per channel: the input range is the union of the channels'). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/distill.h"
#include "distill/quantize.h"
#include "test.h"
#include "test_models.h"

/* ImageNet's statistics, as an imported teacher brings them */
static const float in_mean[3] = {0.485f, 0.456f, 0.406f}, in_std[3] = {0.229f, 0.224f, 0.225f};

/* A 3-channel model of 8x8 images with the given `normalize:` line ("" for none). */
static kd_model *model3(const char *norm, uint64_t seed) {
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "name: rgb\ninput: [3, 8, 8]\n%slayers:\n  - {type: conv2d, out: 4, kernel: 3, pad: 1}\n"
             "  - {type: relu}\n  - {type: flatten}\n  - {type: linear, out: 4}\n", norm);
    kd_model *m = NULL;
    kd_error err;
    CHECK_MSG(kd_model_from_yaml(&m, yaml, "rgb.yaml", seed, &err) == KD_STATUS_OK, "%s", err.msg);
    return m;
}

static const char imagenet[] = "normalize: {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}\n";

static void test_fill_per_channel(void) {
    /* one 3x1x2 image: channel c holds pixels p[2c], p[2c+1] */
    uint8_t pix[6] = {0, 255, 255, 128, 51, 7};
    int32_t lab[1] = {2}, idx[1] = {0}, y[1];
    kd_dataset ds = {.n = 1, .c = 3, .h = 1, .w = 2, .n_classes = 3, .pixels = pix, .labels = lab,
                     .mean = 0.3f, .std = 0.35f};
    float x[6];
    kd_batch_fill(x, y, &ds, in_mean, in_std, idx, 1);
    CHECK(y[0] == 2);
    /* by hand: (p/255 - mean[c]) / std[c] */
    CHECK_NEAR(x[0], -2.1179039, 1e-6);   /* (0 - 0.485) / 0.229 */
    CHECK_NEAR(x[1], 2.2489083, 1e-6);    /* (1 - 0.485) / 0.229 */
    CHECK_NEAR(x[2], 2.4285714, 1e-6);    /* (1 - 0.456) / 0.224 */
    CHECK_NEAR(x[3], 0.2051821, 1e-6);    /* (128/255 - 0.456) / 0.224 */
    CHECK_NEAR(x[4], -0.9155556, 1e-6);   /* (0.2 - 0.406) / 0.225 */
    CHECK_NEAR(x[5], -1.6824401, 1e-6);   /* (7/255 - 0.406) / 0.225 */
    /* no normalisation of its own: the data's scalar statistics on every channel */
    kd_batch_fill(x, y, &ds, NULL, NULL, idx, 1);
    for (int k = 0; k < 6; k++) CHECK_NEAR(x[k], (pix[k] / 255.0 - 0.3) / 0.35, 1e-6);
    /* a normalisation equal to the data's statistics gives the very same floats */
    float same_m[3] = {0.3f, 0.3f, 0.3f}, same_s[3] = {0.35f, 0.35f, 0.35f}, x2[6];
    kd_batch_fill(x2, y, &ds, same_m, same_s, idx, 1);
    CHECK(memcmp(x, x2, sizeof x) == 0);
    /* pixels then normalisation (the training loop's way) == the one-pass fill */
    uint8_t px[6];
    kd_batch_pixels(px, y, &ds, idx, 1, NULL, NULL);
    CHECK(memcmp(px, pix, 6) == 0 && y[0] == 2);
    kd_batch_fill(x, y, &ds, in_mean, in_std, idx, 1);
    kd_batch_normalize(x2, px, 1, &ds, in_mean, in_std);
    CHECK(memcmp(x, x2, sizeof x) == 0);
    /* which normalisation a batch's x carries */
    kd_batch in = {&ds, px, x, in_mean, in_std, NULL, NULL};
    float copy_m[3], copy_s[3];
    memcpy(copy_m, in_mean, sizeof copy_m);
    memcpy(copy_s, in_std, sizeof copy_s);
    CHECK(kd_batch_same_norm(&in, in_mean, in_std));
    CHECK(kd_batch_same_norm(&in, copy_m, copy_s));
    CHECK(!kd_batch_same_norm(&in, NULL, NULL));
    CHECK(!kd_batch_same_norm(&in, same_m, same_s));
    in.mean = in.std = NULL;
    CHECK(kd_batch_same_norm(&in, NULL, NULL));
    CHECK(!kd_batch_same_norm(&in, in_mean, in_std));
    in.x = NULL; /* nothing normalised yet */
    CHECK(!kd_batch_same_norm(&in, NULL, NULL));
}

/* The teacher's logits for batch `in` against its forward on `x_own`, its input filled directly. */
static void expect_own_input(kd_teacher *t, const kd_batch *in, kd_model *m, const float *x_own, int B,
                             const char *what) {
    float got[16 * 4], want[16 * 4];
    kd_error err;
    CHECK_MSG(kd_teacher_forward(t, 1.f, got, NULL, in, NULL, B, &err) == KD_STATUS_OK, "%s: %s", what, err.msg);
    memcpy(want, kd_model_forward(m, x_own, B, 0, NULL), sizeof(float) * (size_t)B * 4);
    CHECK_MSG(memcmp(got, want, sizeof(float) * (size_t)B * 4) == 0, "%s: the teacher was not fed its own input", what);
}

static void test_teacher_own_input(void) {
    enum { B = 16, IMG = 3 * 64 };
    kd_dataset ds;
    make_dataset(&ds, 40, 3, 8, 8, 4, 11);
    kd_error err;
    kd_model *t = model3(imagenet, 5), *plain = model3("", 6);
    if (!t || !plain) return;
    CHECK(t->norm_mean && !plain->norm_mean);
    CHECK(kd_model_set_batch(t, B, 1, &err) == KD_STATUS_OK && kd_model_set_batch(plain, B, 1, &err) == KD_STATUS_OK);
    static float xs[B * IMG], xt[B * IMG];
    static uint8_t px[B * IMG];
    int32_t idx[B], y[B];
    for (int i = 0; i < B; i++) idx[i] = (7 * i) % ds.n;
    /* the student's batch (the data's statistics), augmented as training does */
    kd_rng r;
    kd_rng_seed(&r, 3, 4);
    kd_augment aug = {.translate = 2, .hflip = 1};
    kd_batch_pixels(px, y, &ds, idx, B, &aug, &r);
    kd_batch_normalize(xs, px, B, &ds, NULL, NULL);
    kd_batch in = {&ds, px, xs, NULL, NULL, NULL, NULL};
    kd_teacher one = kd_teacher_online(&t, 1);
    kd_batch_normalize(xt, px, B, &ds, in_mean, in_std);
    CHECK(memcmp(xs, xt, sizeof xs) != 0); /* the two normalisations differ */
    expect_own_input(&one, &in, t, xt, B, "augmented");
    /* without augmentation: against its batch filled directly from the data set */
    kd_batch_pixels(px, y, &ds, idx, B, NULL, NULL);
    kd_batch_normalize(xs, px, B, &ds, NULL, NULL);
    kd_batch_fill(xt, y, &ds, t->norm_mean, t->norm_std, idx, B);
    expect_own_input(&one, &in, t, xt, B, "plain");
    /* a teacher normalised like the student runs on the student's x itself */
    kd_teacher same = kd_teacher_online(&plain, 1);
    expect_own_input(&same, &in, plain, xs, B, "same normalisation");
    /* the other way round: a student with its own normalisation, a teacher with the data's */
    kd_batch_normalize(xt, px, B, &ds, in_mean, in_std);
    kd_batch in_t = {&ds, px, xt, t->norm_mean, t->norm_std, NULL, NULL};
    expect_own_input(&same, &in_t, plain, xs, B, "teacher on the data's statistics");

    /* an ensemble whose members are normalised differently: each gets its own */
    kd_model *ens[2] = {t, plain};
    kd_teacher two = kd_teacher_online(ens, 2);
    float lg[B * 4], p1[B * 4], p2[B * 4], pt[B * 4];
    CHECK(kd_teacher_forward(&two, 2.f, lg, NULL, &in, NULL, B, &err) == KD_STATUS_OK);
    kd_batch_fill(xt, y, &ds, in_mean, in_std, idx, B);
    kd_softmax_forward(p1, kd_model_forward(t, xt, B, 0, NULL), B, 4, 2.f);
    kd_softmax_forward(p2, kd_model_forward(plain, xs, B, 0, NULL), B, 4, 2.f);
    kd_soft_targets(pt, lg, B, 4, 2.f);
    float worst = 0.f;
    for (int i = 0; i < B * 4; i++) worst = fmaxf(worst, fabsf(pt[i] - 0.5f * (p1[i] + p2[i])));
    CHECK_MSG(worst < 1e-6f, "ensemble members not fed their own inputs: off by %g", worst);

    /* the cache: each row is the teacher on its own normalisation of that image (other batches:
     * the GEMM's rounding may differ in the last bits) */
    float *tab = NULL;
    int rows = 0;
    CHECK(kd_teacher_cache(&one, 1.f, &ds, 16, 1, &tab, NULL, &rows, &err) == KD_STATUS_OK && rows == ds.n);
    CHECK(kd_model_set_batch(t, B, 1, &err) == KD_STATUS_OK);
    const float *want = kd_model_forward(t, xt, B, 0, NULL);
    worst = 0.f;
    for (int b = 0; tab && b < B; b++)
        for (int k = 0; k < 4; k++) worst = fmaxf(worst, fabsf(tab[(size_t)idx[b] * 4 + k] - want[b * 4 + k]));
    CHECK_MSG(tab && worst < 1e-5f, "cached rows differ from the teacher on its own normalisation by %g", worst);
    free(tab);

    /* a teacher whose input shape is not the data's: an error naming it, never a read past the batch */
    kd_model *gray = NULL;
    CHECK(kd_model_from_yaml(&gray, "name: gray\ninput: [1, 8, 8]\nlayers:\n  - {type: flatten}\n"
                             "  - {type: linear, out: 4}\n", "gray.yaml", 1, &err) == KD_STATUS_OK);
    if (gray) {
        CHECK(kd_model_set_batch(gray, B, 1, &err) == KD_STATUS_OK);
        kd_teacher g = kd_teacher_online(&gray, 1);
        CHECK(kd_teacher_forward(&g, 1.f, lg, NULL, &in, NULL, B, &err) == KD_STATUS_MISMATCH);
        CHECK_MSG(strstr(err.msg, "teacher gray takes 1x8x8 images, the data has 3x8x8"), "%s", err.msg);
        CHECK(kd_teacher_cache(&g, 1.f, &ds, 16, 1, &tab, NULL, &rows, &err) == KD_STATUS_MISMATCH && !tab);
        kd_model_free(gray);
    }
    kd_model_free(t);
    kd_model_free(plain);
    kd_dataset_free(&ds);
}

/* Distillation in the training loop with a student normalised per channel and a teacher on the
 * data's statistics: the teacher run online every step and the teacher cached once must give the
 * same student, bit for bit (both feed the teacher its own normalisation). */
static void train_student(kd_model *s, kd_model *t, const kd_dataset *ds, int cached, float *params_out) {
    kd_error err;
    kd_train_config c;
    kd_train_config_default(&c);
    c.epochs = 1;
    c.batch = 8;
    c.threads = 1;
    c.progress = 0;
    kd_model_init_params(s, 9);
    kd_loss_term term;
    CHECK(kd_loss_term_parse(&term, "hinton:T=2,alpha=0.7", &err) == KD_STATUS_OK);
    kd_teacher teacher = kd_teacher_online(&t, 1);
    kd_distiller *d = NULL;
    CHECK_MSG(kd_distiller_create(&d, &term, 1, s, &teacher, 1, &err) == KD_STATUS_OK, "%s", err.msg);
    float *tab = NULL;
    int rows = 0;
    if (cached) {
        CHECK(kd_teacher_cache(&teacher, kd_distiller_teacher_T(d), ds, 8, 1, &tab, NULL, &rows, &err) == KD_STATUS_OK);
        teacher.logits = tab;
        teacher.n_samples = rows;
    }
    c.distiller = d;
    kd_train_result res;
    CHECK_MSG(kd_train(s, ds, NULL, &c, &res, &err) == KD_STATUS_OK, "%s", err.msg);
    memcpy(params_out, s->params, sizeof(float) * s->n_params);
    kd_distiller_free(d);
    free(tab);
}

static void test_train_loop(void) {
    kd_dataset ds;
    make_dataset(&ds, 48, 3, 8, 8, 4, 12);
    kd_model *s = model3(imagenet, 1), *t = model3("", 2);
    if (!s || !t) return;
    float *online = malloc(sizeof(float) * s->n_params), *cached = malloc(sizeof(float) * s->n_params);
    train_student(s, t, &ds, 0, online);
    train_student(s, t, &ds, 1, cached);
    CHECK_MSG(memcmp(online, cached, sizeof(float) * s->n_params) == 0,
              "the online teacher saw other inputs than the cached one");
    free(online);
    free(cached);
    kd_model_free(s);
    kd_model_free(t);
    kd_dataset_free(&ds);
}

static void test_int8_input(void) {
    kd_dataset ds;
    make_dataset(&ds, 64, 3, 8, 8, 4, 13);
    kd_error err;
    kd_calib_config cfg;
    kd_calib_config_default(&cfg);
    cfg.n_images = 32;
    kd_calib_ranges r;
    /* one value per channel that differs (issue 14): the input range is the union of the channels' */
    kd_model *m = model3(imagenet, 3);
    if (m) {
        CHECK_MSG(kd_int8_calibrate(m, &ds, &cfg, &r, &err) == KD_STATUS_OK, "%s", err.msg);
        CHECK(r.in_mean == in_mean[0] && r.in_std == in_std[0]);
        CHECK(r.in_lo == (0.f - in_mean[0]) / in_std[0] && r.in_hi == (1.f - in_mean[2]) / in_std[2]);
        kd_calib_ranges_free(&r);
        kd_int8_model *q = NULL;
        CHECK_MSG(kd_int8_quantize(m, &ds, &cfg, &q, &err) == KD_STATUS_OK, "%s", err.msg);
        CHECK(q && q->norm_mean && q->norm_mean[1] == in_mean[1] && q->norm_std[2] == in_std[2]);
        kd_int8_free(q);
        kd_model_free(m);
    }
    /* the same on every channel: the int8 input is the model's normalisation, not the data's */
    m = model3("normalize: {mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}\n", 3);
    if (!m) return;
    CHECK_MSG(kd_int8_calibrate(m, &ds, &cfg, &r, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(r.in_mean == 0.5f && r.in_std == 0.25f && r.in_lo == -2.f && r.in_hi == 2.f);
    kd_calib_ranges_free(&r);
    kd_int8_model *q = NULL;
    CHECK_MSG(kd_int8_quantize(m, &ds, &cfg, &q, &err) == KD_STATUS_OK, "%s", err.msg);
    if (q) {
        CHECK(q->in_mean == 0.5f && q->in_std == 0.25f);
        /* integer evaluation feeds it images normalised as it says, whatever the data's statistics */
        int32_t pred[64], idx[64], y[64];
        double acc = 0;
        static float x[64 * 192];
        int8_t lg[64 * 4];
        for (int i = 0; i < ds.n; i++) idx[i] = i;
        kd_batch_fill(x, y, &ds, m->norm_mean, m->norm_std, idx, ds.n);
        CHECK(kd_int8_forward(q, x, ds.n, lg, &err) == KD_STATUS_OK);
        CHECK(kd_int8_evaluate(q, &ds, 16, 1, &acc, pred, &err) == KD_STATUS_OK);
        int same = 1;
        for (int i = 0; i < ds.n; i++) {
            int best = 0;
            for (int k = 1; k < 4; k++)
                if (lg[i * 4 + k] > lg[i * 4 + best]) best = k;
            same &= pred[i] == best;
        }
        CHECK_MSG(same, "kd_int8_evaluate did not use the int8 model's normalisation");
        kd_int8_free(q);
    }
    kd_model_free(m);
    kd_dataset_free(&ds);
}

int main(void) {
    test_fill_per_channel();
    test_teacher_own_input();
    test_train_loop();
    test_int8_input();
    TEST_DONE();
}
