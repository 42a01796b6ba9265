/* What every data source shares (src/data/dataset.c) and how training takes it (issue 14): the
 * per-channel statistics that become a model's normalisation equal the scalar ones for 1-channel
 * pixels, float32 samples (arrays, tables) go through training, distillation and the teacher cache
 * (with augmentation where it applies), augmentation is refused for 1x1 samples, and
 * kd_model_check_data is the one check of data against a model. In memory, small: seconds. */
#include <stdlib.h>
#include <string.h>

#include "distill/distill.h"
#include "distill/train.h"
#include "test.h"

/* n samples of c x h x w, labels i % k: uint8 pixels, or float32 values (about -3 to 3) when f32. */
static void make_set(kd_dataset *ds, int n, int c, int h, int w, int k, int f32, uint32_t seed) {
    memset(ds, 0, sizeof *ds);
    ds->n = n;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    ds->n_classes = k;
    ds->type = f32 ? KD_DATA_F32 : KD_DATA_U8;
    size_t elems = (size_t)n * c * h * w;
    ds->pixels = malloc(elems * (f32 ? 4 : 1));
    ds->labels = malloc(sizeof(int32_t) * (size_t)n);
    uint32_t s = seed;
    for (size_t i = 0; i < elems; i++) {
        s = s * 1664525u + 1013904223u;
        if (f32) {
            float v = (float)((s >> 8) % 6000) / 1000.f - 3.f;
            memcpy(ds->pixels + 4 * i, &v, 4);
        } else {
            ds->pixels[i] = (uint8_t)(s >> 24);
        }
    }
    for (int i = 0; i < n; i++) ds->labels[i] = i % k;
    kd_dataset_compute_stats(ds);
}

/* The normalisation a trained model stores (kd_dataset_channel_stats) must be, for 1-channel
 * pixels, the very floats a model without one was fed (ds->mean, ds->std): so training stays bit
 * for bit what it was before models stored it. */
static void test_channel_stats_match_scalar(void) {
    kd_dataset ds;
    make_set(&ds, 700, 1, 28, 28, 10, 0, 7);
    float mean, std;
    kd_dataset_channel_stats(&ds, &mean, &std);
    CHECK_MSG(memcmp(&mean, &ds.mean, 4) == 0 && memcmp(&std, &ds.std, 4) == 0, "%.9g %.9g vs %.9g %.9g",
              (double)mean, (double)std, (double)ds.mean, (double)ds.std);
    kd_dataset_free(&ds);
    /* 3 channels of different levels: each channel its own */
    make_set(&ds, 20, 3, 4, 4, 2, 1, 3);
    for (int i = 0; i < 20; i++)
        for (int j = 0; j < 16; j++) {
            float v = 10.f + (float)(j % 2);
            memcpy(ds.pixels + 4 * ((size_t)i * 48 + 32 + j), &v, 4); /* channel 2: 10 or 11 */
        }
    float m3[3], s3[3];
    kd_dataset_channel_stats(&ds, m3, s3);
    CHECK_NEAR(m3[2], 10.5, 1e-6);
    CHECK_NEAR(s3[2], 0.5, 1e-6);
    CHECK(fabsf(m3[0]) < 0.5f && s3[0] > 1.f);
    kd_dataset_free(&ds);
}

/* ds->mean/std of float32 samples are the values' own (they were the bytes / 255): values 2, 4, 2, 4,
 * ... have mean 3 and standard deviation 1. */
static void test_scalar_stats_of_values(void) {
    kd_dataset ds;
    make_set(&ds, 6, 1, 1, 4, 2, 1, 5);
    for (size_t i = 0; i < 24; i++) {
        float v = i % 2 ? 4.f : 2.f;
        memcpy(ds.pixels + 4 * i, &v, 4);
    }
    kd_dataset_compute_stats(&ds);
    CHECK_NEAR(ds.mean, 3.0, 1e-6);
    CHECK_NEAR(ds.std, 1.0, 1e-6);
    kd_dataset_free(&ds);
}

static kd_model *model_for(int c, int h, int w, int k, int values, uint64_t seed) {
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "name: m\ninput: [%d, %d, %d]\nlayers:\n  - {type: conv2d, out: 4, kernel: 3, pad: 1}\n  - {type: relu}\n"
             "  - {type: flatten}\n  - {type: linear, out: %d}\n", c, h, w, k);
    kd_model *m = NULL;
    kd_error err;
    CHECK_MSG(kd_model_from_yaml(&m, yaml, "test", seed, &err) == KD_STATUS_OK, "%s", err.msg);
    if (m) m->input_values = values;
    return m;
}

static void small_config(kd_train_config *c) {
    kd_train_config_default(c);
    c->epochs = 1;
    c->batch = 8;
    c->threads = 1;
    c->progress = 0;
}

/* Float32 samples through kd_train with augmentation (random crop with padding and flips: the
 * augmented samples are 4 bytes per value, and their buffer was sized for 1: ASan saw the overflow)
 * and through distillation with a cached teacher (kd_teacher_cache's buffer had the same size). */
static void test_float_samples_train_and_kd(void) {
    kd_dataset ds;
    make_set(&ds, 40, 2, 6, 6, 3, 1, 11);
    kd_model *m = model_for(2, 6, 6, 3, 1, 1), *t = model_for(2, 6, 6, 3, 1, 2);
    if (!m || !t) return;
    kd_error err;
    kd_train_config c;
    small_config(&c);
    c.aug.translate = 2;
    c.aug.hflip = 1;
    kd_train_result res;
    CHECK_MSG(kd_train(m, &ds, NULL, &c, &res, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(res.epochs_run == 1);

    small_config(&c);
    kd_loss_term term;
    CHECK(kd_loss_term_parse(&term, "hinton:T=2,alpha=0.7", &err) == KD_STATUS_OK);
    kd_teacher teacher = kd_teacher_online(&t, 1);
    kd_distiller *d = NULL;
    CHECK_MSG(kd_distiller_create(&d, &term, 1, m, &teacher, 1, &err) == KD_STATUS_OK, "%s", err.msg);
    float *tab = NULL;
    int rows = 0;
    CHECK_MSG(kd_teacher_cache(&teacher, kd_distiller_teacher_T(d), &ds, 8, 1, &tab, NULL, &rows, &err) == KD_STATUS_OK,
              "%s", err.msg);
    CHECK(rows == 40);
    teacher.logits = tab;
    teacher.n_samples = rows;
    c.distiller = d;
    CHECK_MSG(kd_train(m, &ds, NULL, &c, &res, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(res.epochs_run == 1);
    kd_distiller_free(d);
    free(tab);
    kd_model_free(m);
    kd_model_free(t);
    kd_dataset_free(&ds);
}

/* A table (F features as F x 1 x 1) has no image to shift or flip: --translate / --hflip are an
 * error saying so (they used to run and do nothing useful: a 1x1 sample shifted is zeroed). */
static void test_augment_refused_for_tables(void) {
    kd_dataset ds;
    make_set(&ds, 30, 5, 1, 1, 2, 1, 5);
    kd_model *m = NULL;
    kd_error err;
    CHECK(kd_model_from_yaml(&m, "name: tab\ninput: [5, 1, 1]\nlayers:\n  - {type: flatten}\n  - {type: linear, out: 2}\n",
                             "test", 1, &err) == KD_STATUS_OK);
    if (!m) return;
    m->input_values = 1;
    kd_train_config c;
    kd_train_result res;
    for (int k = 0; k < 2; k++) {
        small_config(&c);
        if (k) c.aug.hflip = 1;
        else c.aug.translate = 2;
        CHECK(kd_train(m, &ds, NULL, &c, &res, &err) == KD_STATUS_BAD_ARG);
        CHECK_MSG(strstr(err.msg, "not images") && strstr(err.msg, "5 features"), "%s", err.msg);
    }
    small_config(&c);
    CHECK_MSG(kd_train(m, &ds, NULL, &c, &res, &err) == KD_STATUS_OK, "%s", err.msg); /* without: fine */
    kd_model_free(m);
    kd_dataset_free(&ds);
}

/* kd_model_check_data: shape, kind of input and labels, each with a message naming both sides. */
static void test_check_data(void) {
    kd_dataset px, fl;
    make_set(&px, 10, 2, 6, 6, 3, 0, 1);
    make_set(&fl, 10, 2, 6, 6, 3, 1, 1);
    kd_model *pix = model_for(2, 6, 6, 3, 0, 1), *val = model_for(2, 6, 6, 3, 1, 1), *small = model_for(2, 6, 6, 2, 0, 1),
             *other = model_for(1, 6, 6, 3, 0, 1);
    if (!pix || !val || !small || !other) return;
    kd_error err;
    CHECK(kd_model_check_data(pix, &px, &err) == KD_STATUS_OK);
    CHECK(kd_model_check_data(val, &fl, &err) == KD_STATUS_OK);
    CHECK(kd_model_check_data(pix, &fl, &err) == KD_STATUS_MISMATCH);
    CHECK_MSG(strstr(err.msg, "data has float values, model m takes 8-bit pixels"), "%s", err.msg);
    CHECK(kd_model_check_data(val, &px, &err) == KD_STATUS_MISMATCH);
    CHECK_MSG(strstr(err.msg, "input_type: values"), "%s", err.msg);
    CHECK(kd_model_check_data(other, &px, &err) == KD_STATUS_MISMATCH);
    CHECK_MSG(strstr(err.msg, "data has 2x6x6 samples, model m expects 1x6x6"), "%s", err.msg);
    CHECK(kd_model_check_data(small, &px, &err) == KD_STATUS_MISMATCH);
    CHECK_MSG(strstr(err.msg, "label 2 at index 2"), "%s", err.msg);
    /* kd_evaluate refuses float data for a pixel model instead of reading it as pixels */
    kd_eval_result r;
    CHECK(kd_evaluate(pix, &fl, 4, 1, &r, NULL, &err) == KD_STATUS_MISMATCH);
    kd_model_free(pix);
    kd_model_free(val);
    kd_model_free(small);
    kd_model_free(other);
    kd_dataset_free(&px);
    kd_dataset_free(&fl);
}

int main(void) {
    test_channel_stats_match_scalar();
    test_scalar_stats_of_values();
    test_float_samples_train_and_kd();
    test_augment_refused_for_tables();
    test_check_data();
    TEST_DONE();
}
