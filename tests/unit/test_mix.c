/* Issue 15's consistent teaching: the Beta sampler, mixup and CutMix on a batch (pixels, float
 * values, the share mixed, no draws when off), the mixed-label cross-entropy (equal to the two
 * labels' losses mixed, and its gradient by finite differences), the online teacher scoring exactly
 * the mixed view the student trains on (through kd_train), and the int8 teacher against its fp32
 * model. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/distill.h"
#include "distill/ops.h"
#include "distill/train.h"
#include "test.h"

static void test_beta(void) {
    kd_rng r;
    kd_rng_seed(&r, 3, 9);
    const float as[] = {0.2f, 1.f, 4.f};
    for (int k = 0; k < 3; k++) {
        float a = as[k];
        double s = 0, s2 = 0, g = 0;
        int n = 40000, out = 0;
        for (int i = 0; i < n; i++) {
            float x = kd_rng_beta(&r, a, a);
            out += !(x >= 0.f && x <= 1.f);
            s += x;
            s2 += (double)x * x;
            g += kd_rng_gamma(&r, a);
        }
        double mean = s / n, var = s2 / n - mean * mean, want_var = 1.0 / (4.0 * (2.0 * a + 1.0));
        CHECK(out == 0);
        CHECK_NEAR(mean, 0.5, 0.01);
        CHECK_MSG(fabs(var - want_var) < 0.05 * want_var + 0.002, "Beta(%g) variance %g, want %g", (double)a, var,
                  want_var);
        CHECK_MSG(fabs(g / n - a) < 0.03 * a + 0.01, "Gamma(%g) mean %g", (double)a, g / n); /* E = shape */
    }
}

/* B samples of 1x6x6 (or 1x1x1 float values), sample b filled with the constant 10 b + 5 so each
 * mixed pixel tells where it came from. */
static void make_const(kd_dataset *ds, int B, int f32) {
    memset(ds, 0, sizeof *ds);
    ds->n = B; ds->c = 1; ds->n_classes = B;
    ds->h = ds->w = f32 ? 1 : 6;
    ds->type = f32 ? KD_DATA_F32 : KD_DATA_U8;
    size_t sb = kd_dataset_sample_bytes(ds);
    ds->pixels = malloc(sb * (size_t)B);
    ds->labels = malloc(sizeof(int32_t) * (size_t)B);
    for (int b = 0; b < B; b++) {
        ds->labels[b] = b;
        for (size_t i = 0; i < sb; i++) ds->pixels[sb * b + i] = (uint8_t)(10 * b + 5);
        if (f32) {
            float v = 10.f * b + 5.f;
            memcpy(ds->pixels + sb * b, &v, 4);
        }
    }
}

static void test_batch_mix(void) {
    enum { B = 16 };
    kd_dataset ds;
    make_const(&ds, B, 0);
    int32_t idx[B], y[B], y2[B];
    float lam[B];
    uint8_t px[B * 36], scratch[B * 36];
    for (int b = 0; b < B; b++) idx[b] = b;
    kd_rng r, r0;
    /* off: no change, no draws */
    kd_augment off = {.translate = 0};
    kd_rng_seed(&r, 1, 2);
    r0 = r;
    kd_batch_pixels(px, y, &ds, idx, B, &off, &r);
    kd_batch_mix(px, y2, lam, scratch, y, &ds, B, &off, &r);
    CHECK(memcmp(px, ds.pixels, sizeof px) == 0);
    CHECK(r.state == r0.state);
    for (int b = 0; b < B; b++) CHECK(y2[b] == y[b] && lam[b] == 1.f);

    /* mixup: every pixel is round(lam a + (1 - lam) p) for one partner p != b, whose label is y2 */
    kd_augment mu = {.mixup = 0.4f};
    kd_batch_pixels(px, y, &ds, idx, B, &mu, &r);
    kd_batch_mix(px, y2, lam, scratch, y, &ds, B, &mu, &r);
    int bad = 0, mixed = 0;
    for (int b = 0; b < B; b++) {
        int p = y2[b];
        bad += p == b || p < 0 || p >= B || !(lam[b] >= 0.f && lam[b] <= 1.f);
        if (p == b) continue;
        mixed += lam[b] < 0.999f;
        uint8_t want = (uint8_t)lrintf(lam[b] * (10.f * b + 5.f) + (1.f - lam[b]) * (10.f * p + 5.f));
        for (int i = 0; i < 36; i++) bad += px[b * 36 + i] != want;
    }
    CHECK_MSG(bad == 0, "%d mixup pixels or partners wrong", bad);
    CHECK(mixed > B / 2);

    /* CutMix: each pixel is its own or the partner's, and lam is the exact share kept */
    kd_augment cm = {.cutmix = 1.f};
    kd_batch_pixels(px, y, &ds, idx, B, &cm, &r);
    kd_batch_mix(px, y2, lam, scratch, y, &ds, B, &cm, &r);
    bad = 0;
    int boxes = 0;
    for (int b = 0; b < B; b++) {
        int p = y2[b], own = 0, other = 0;
        for (int i = 0; i < 36; i++) {
            own += px[b * 36 + i] == 10 * b + 5;
            other += px[b * 36 + i] == 10 * p + 5;
        }
        bad += own + other != 36 || fabsf(lam[b] - own / 36.f) > 1e-6f;
        boxes += other > 0;
    }
    CHECK_MSG(bad == 0, "%d CutMix samples wrong", bad);
    CHECK(boxes > 0);

    /* mix_prob: about that share mixed (lam < 1 or another label) */
    kd_augment half = {.mixup = 1.f, .mix_prob = 0.25f};
    int n_mixed = 0, n = 0;
    for (int rep = 0; rep < 200; rep++) {
        kd_batch_pixels(px, y, &ds, idx, B, &half, &r);
        kd_batch_mix(px, y2, lam, scratch, y, &ds, B, &half, &r);
        for (int b = 0; b < B; b++, n++) n_mixed += y2[b] != y[b];
    }
    CHECK_MSG(fabs((double)n_mixed / n - 0.25) < 0.03, "mixed share %g, asked 0.25", (double)n_mixed / n);
    kd_dataset_free(&ds);

    /* float values (a table): an exact blend, no rounding */
    make_const(&ds, B, 1);
    float v[B], v2[B];
    kd_batch_pixels((uint8_t *)v, y, &ds, idx, B, &mu, &r);
    kd_batch_mix((uint8_t *)v, y2, lam, (uint8_t *)v2, y, &ds, B, &mu, &r);
    bad = 0;
    for (int b = 0; b < B; b++) {
        float want = lam[b] * (10.f * b + 5.f) + (1.f - lam[b]) * (10.f * y2[b] + 5.f);
        bad += v[b] != want;
    }
    CHECK_MSG(bad == 0, "%d float mixups differ from the blend", bad);
    kd_dataset_free(&ds);
}

static float mix_ce(const float *z, const int32_t *y, const int32_t *y2, const float *lam, int B, int C, float ls) {
    float probs[64];
    return kd_cross_entropy_mix_forward(probs, z, y, y2, lam, B, C, ls);
}

static void test_mixed_ce(void) {
    enum { B = 4, C = 5 };
    float z[B * C], probs[B * C], g[B * C] = {0};
    int32_t y[B] = {0, 3, 4, 1}, y2[B] = {2, 3, 0, 4};
    float lam[B] = {0.3f, 0.9f, 1.f, 0.f}, ls = 0.1f;
    kd_rng r;
    kd_rng_seed(&r, 5, 5);
    for (int i = 0; i < B * C; i++) z[i] = 2.f * kd_rng_normal(&r);
    /* = lam CE(y) + (1 - lam) CE(y2), row by row */
    double want = 0;
    for (int b = 0; b < B; b++) {
        float p[C];
        double a = kd_cross_entropy_forward(p, z + b * C, y + b, 1, C, ls);
        double c2 = kd_cross_entropy_forward(p, z + b * C, y2 + b, 1, C, ls);
        want += (lam[b] * a + (1 - lam[b]) * c2) / B;
    }
    CHECK_NEAR(mix_ce(z, y, y2, lam, B, C, ls), want, 1e-5);
    /* NULL lam: the unmixed loss exactly */
    CHECK(mix_ce(z, y, NULL, NULL, B, C, ls) == kd_cross_entropy_forward(probs, z, y, B, C, ls));
    /* gradient by central differences */
    kd_cross_entropy_mix_forward(probs, z, y, y2, lam, B, C, ls);
    kd_cross_entropy_mix_backward(g, probs, y, y2, lam, B, C, ls, 1.f);
    int bad = 0;
    for (int i = 0; i < B * C; i++) {
        float keep = z[i], h = 1e-2f;
        z[i] = keep + h;
        double up = mix_ce(z, y, y2, lam, B, C, ls);
        z[i] = keep - h;
        double dn = mix_ce(z, y, y2, lam, B, C, ls);
        z[i] = keep;
        double fd = (up - dn) / (2 * h);
        if (fabs(fd - g[i]) > 2e-3 + 1e-2 * fabs(fd)) {
            bad++;
            fprintf(stderr, "d/dz[%d]: analytic %g, numeric %g\n", i, (double)g[i], fd);
        }
    }
    CHECK(bad == 0);
}

/* Random c x 8 x 8 images, label from the mean of the first channel. */
static void make_images(kd_dataset *ds, int n, int c) {
    memset(ds, 0, sizeof *ds);
    ds->n = n; ds->c = c; ds->h = ds->w = 8; ds->n_classes = 4;
    ds->pixels = malloc((size_t)n * 64 * c);
    ds->labels = malloc(sizeof(int32_t) * (size_t)n);
    kd_rng r;
    kd_rng_seed(&r, 1, 1);
    for (int i = 0; i < n; i++) {
        int sum = 0;
        for (int k = 0; k < 64 * c; k++) {
            ds->pixels[(size_t)i * 64 * c + k] = (uint8_t)kd_rng_below(&r, 256);
            if (k < 64) sum += ds->pixels[(size_t)i * 64 * c + k];
        }
        ds->labels[i] = (sum / 64) % 4;
    }
    ds->mean = 0.5f;
    ds->std = 0.29f;
}

/* The first logged training loss of a one-step kd_train run of a student distilled (pure KL, T=1)
 * from a teacher with the very same weights and no train/eval difference (no batch norm, no
 * dropout): 0 exactly when the teacher sees the student's view. */
static double first_step_kl(const kd_augment *aug, uint64_t teacher_seed) {
    static const char *yaml = "name: mlp\ninput: [1, 8, 8]\nlayers:\n  - {type: linear, out: 12}\n"
                              "  - {type: relu}\n  - {type: linear, out: 4}\n";
    kd_dataset ds;
    make_images(&ds, 64, 1);
    kd_error err;
    kd_model *s = NULL, *t = NULL;
    CHECK(kd_model_from_yaml(&s, yaml, "s", 3, &err) == KD_STATUS_OK);
    CHECK(kd_model_from_yaml(&t, yaml, "t", teacher_seed, &err) == KD_STATUS_OK);
    double loss = -1;
    if (s && t) {
        kd_teacher teacher = kd_teacher_online(&t, 1);
        kd_loss_term term;
        CHECK(kd_loss_term_parse(&term, "hinton:T=1,alpha=1", &err) == KD_STATUS_OK);
        kd_distiller *d = NULL;
        CHECK(kd_distiller_create(&d, &term, 1, s, &teacher, 1, &err) == KD_STATUS_OK);
        kd_train_config c;
        kd_train_config_default(&c);
        c.epochs = 1; c.batch = 32; c.progress = 0; c.max_steps_per_epoch = 1; c.aug = *aug; c.distiller = d;
        const char *log = "test_mix.log.jsonl";
        remove(log);
        c.log_path = log;
        kd_train_result res;
        CHECK_MSG(kd_train(s, &ds, NULL, &c, &res, &err) == KD_STATUS_OK, "%s", err.msg);
        FILE *f = fopen(log, "r");
        char line[512] = "";
        if (f && fgets(line, sizeof line, f)) {
            const char *p = strstr(line, "\"train_loss\": ");
            if (p) loss = atof(p + 14);
        }
        if (f) fclose(f);
        remove(log);
        kd_distiller_free(d);
    }
    kd_model_free(s);
    kd_model_free(t);
    kd_dataset_free(&ds);
    return loss;
}

static void test_consistent_view(void) {
    kd_augment mix = {.translate = 1, .hflip = 1, .mixup = 1.f, .cutmix = 1.f};
    double kl = first_step_kl(&mix, 3);
    CHECK_MSG(kl >= 0 && kl < 1e-6, "the teacher saw another view than the student: KL %g", kl);
    /* and the views are mixed ones: a teacher with other weights disagrees differently on them than
     * on the stored images */
    kd_augment none = {.translate = 0};
    double k_mix = first_step_kl(&mix, 4), k_none = first_step_kl(&none, 4);
    CHECK_MSG(k_mix > 1e-4 && k_none > 1e-4 && fabs(k_mix - k_none) > 1e-4, "KL %g mixed, %g unmixed", k_mix, k_none);
}

/* The int8 teacher: its dequantized logits follow the fp32 model's on the same (mixed) views, for
 * one channel and for three (the runtime takes NHWC, the batch is NCHW). */
static void test_int8_teacher(int c) {
    char yaml[512];
    snprintf(yaml, sizeof yaml, "name: q\ninput: [%d, 8, 8]\nlayers:\n  - {type: conv2d, out: 6, kernel: 3, pad: 1}\n"
             "  - {type: batchnorm}\n  - {type: relu}\n  - {type: maxpool, kernel: 2}\n"
             "  - {type: flatten}\n  - {type: linear, out: 4}\n", c);
    kd_dataset ds;
    make_images(&ds, 512, c);
    kd_error err;
    kd_model *m = NULL;
    CHECK(kd_model_from_yaml(&m, yaml, "q", 4, &err) == KD_STATUS_OK);
    if (!m) return;
    kd_train_config tc;
    kd_train_config_default(&tc);
    tc.epochs = 2; tc.batch = 32; tc.progress = 0;
    kd_train_result res;
    CHECK(kd_train(m, &ds, NULL, &tc, &res, &err) == KD_STATUS_OK); /* a model with real ranges */
    kd_teacher_q8 *q = NULL;
    CHECK_MSG(kd_teacher_q8_create(&q, m, &ds, 2, &err) == KD_STATUS_OK, "%s", err.msg);
    enum { B = 64 };
    int32_t idx[B], y[B], y2[B];
    float lam[B], x[B * 64 * 3], lq[B * 4];
    uint8_t px[B * 64 * 3], scratch[B * 64 * 3];
    for (int b = 0; b < B; b++) idx[b] = b * 7 % ds.n;
    kd_augment aug = {.translate = 1, .mixup = 1.f};
    kd_rng r;
    kd_rng_seed(&r, 2, 2);
    kd_batch_pixels(px, y, &ds, idx, B, &aug, &r);
    kd_batch_mix(px, y2, lam, scratch, y, &ds, B, &aug, &r);
    kd_batch_normalize(x, px, B, &ds, m->norm_mean, m->norm_std);
    kd_model_set_batch(m, B, 1, &err);
    const float *lf = kd_model_forward(m, x, B, 0, NULL);
    kd_batch in = {&ds, px, x, m->norm_mean, m->norm_std, y2, lam};
    if (q) CHECK_MSG(kd_teacher_q8_forward(q, &in, B, lq, &err) == KD_STATUS_OK, "%s", err.msg);
    double range = 0, maxdiff = 0;
    int agree = 0;
    for (int i = 0; i < B * 4; i++) {
        range = fmax(range, fabs(lf[i]));
        maxdiff = fmax(maxdiff, fabs(lf[i] - lq[i]));
    }
    for (int b = 0; b < B; b++) agree += kd_argmax(lf + 4 * b, 4) == kd_argmax(lq + 4 * b, 4);
    CHECK_MSG(maxdiff < 0.1 * range, "%d channels: int8 logits off by %g (logit range %g)", c, maxdiff, range);
    CHECK_MSG(agree >= B * 9 / 10, "%d channels: int8 and fp32 teacher agree on %d of %d", c, agree, B);
    /* a batch of another shape is refused */
    kd_dataset other = ds;
    other.h = other.w = 4;
    in.ds = &other;
    if (q) CHECK(kd_teacher_q8_forward(q, &in, B, lq, &err) == KD_STATUS_MISMATCH);
    kd_teacher_q8_free(q);
    kd_model_free(m);
    kd_dataset_free(&ds);
}

/* The measured plain-training baselines answer only for what was measured. */
static void test_baselines(void) {
    const kd_ce_baseline *b = kd_ce_baseline_find("cnn-s", "fashion-mnist", 55000, 10);
    CHECK(b && b->seeds >= 3 && b->mean > 80.f && b->mean < 100.f && b->se >= 0.f && b->se < 1.f);
    CHECK(kd_ce_baseline_find("cnn-s", "fashion-mnist", 55000, 15) == NULL); /* not measured */
    CHECK(kd_ce_baseline_find("cnn-s", "fashion-mnist", 10000, 10) == NULL); /* --limit */
    CHECK(kd_ce_baseline_find("cnn-s", "cifar", 55000, 10) == NULL);
    CHECK(kd_ce_baseline_find("resnet-8", "fashion-mnist", 55000, 10) == NULL);
}

int main(void) {
    test_baselines();
    test_beta();
    test_batch_mix();
    test_mixed_ce();
    test_consistent_view();
    test_int8_teacher(1);
    test_int8_teacher(3);
    TEST_DONE();
}
