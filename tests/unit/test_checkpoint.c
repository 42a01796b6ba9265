/* Checkpoints: bit-exact round trips (model only, and with optimizer state), atomic writes that
 * leave no temp file, and every malformed or mismatched file rejected with a message naming it. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "distill/checkpoint.h"
#include "test.h"

static const char *bn_yaml = "name: small\ninput: [1, 8, 8]\nlayers:\n  - {name: c1, type: conv2d, out: 4, kernel: 3, pad: 1}\n"
                             "  - {name: bn, type: batchnorm}\n  - {type: relu}\n  - {type: flatten}\n"
                             "  - {name: fc, type: linear, out: 10}\n";

static void fill_random(float *p, size_t n, uint64_t seed) {
    kd_rng r;
    kd_rng_seed(&r, seed, 3);
    for (size_t i = 0; i < n; i++) p[i] = kd_rng_normal(&r);
}

static int no_temp_files(void) {
    DIR *d = opendir(".");
    if (!d) return 0;
    struct dirent *e;
    int ok = 1;
    while ((e = readdir(d)))
        if (strstr(e->d_name, "ckpt_test") && strstr(e->d_name, ".tmp.")) ok = 0;
    closedir(d);
    return ok;
}

static void test_roundtrip(void) {
    kd_model *m = NULL, *back = NULL;
    kd_error err;
    CHECK(kd_model_from_yaml(&m, bn_yaml, "small", 1, &err) == KD_STATUS_OK);
    if (!m) return;
    fill_random(m->buffers, m->n_buffers, 4);
    for (size_t i = m->n_buffers / 2; i < m->n_buffers; i++) m->buffers[i] = fabsf(m->buffers[i]);
    CHECK_MSG(kd_checkpoint_save("ckpt_test.safetensors", m, NULL, NULL, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(no_temp_files());
    CHECK_MSG(kd_checkpoint_load("ckpt_test.safetensors", &back, &err) == KD_STATUS_OK, "%s", err.msg);
    if (back) {
        CHECK(back->n_params == m->n_params && strcmp(back->name, "small") == 0);
        CHECK(memcmp(back->params, m->params, m->n_params * 4) == 0);
        CHECK(memcmp(back->buffers, m->buffers, m->n_buffers * 4) == 0);
    }
    kd_model_free(back);
    /* the header is valid safetensors: 8-byte length, JSON starting with '{', 8-byte aligned data */
    char *data = NULL;
    size_t len = 0;
    CHECK(kd_read_file("ckpt_test.safetensors", &data, &len, &err) == KD_STATUS_OK);
    if (data) {
        uint64_t h = 0;
        for (int i = 7; i >= 0; i--) h = h << 8 | (unsigned char)data[i];
        CHECK(h % 8 == 0 && h < len && data[8] == '{');
        CHECK(strstr(data + 8, "\"conv1\"") == NULL && strstr(data + 8, "\"c1.weight\"") != NULL);
        CHECK(len == 8 + h + 4 * (m->n_params + m->n_buffers));
    }
    free(data);

    /* with a training state */
    kd_optim_config oc;
    kd_optim_config_default(&oc);
    oc.type = KD_OPT_ADAMW;
    kd_optimizer opt, opt2;
    CHECK(kd_optimizer_init(&opt, &oc, m, &err) == KD_STATUS_OK);
    CHECK(kd_optimizer_init(&opt2, &oc, m, &err) == KD_STATUS_OK);
    fill_random(opt.m, opt.n, 7);
    fill_random(opt.v, opt.n, 8);
    opt.t = 1234;
    kd_train_state st = {3, 1234, {0x123456789abcdefULL, 0xfedcba987654321ULL}, 0.875f};
    CHECK(kd_checkpoint_save("ckpt_test.ckpt", m, &opt, &st, &err) == KD_STATUS_OK);
    kd_model *m2 = NULL;
    CHECK(kd_model_from_yaml(&m2, bn_yaml, "small", 99, &err) == KD_STATUS_OK);
    kd_train_state st2 = {0};
    int has = 0;
    CHECK_MSG(kd_checkpoint_load_into("ckpt_test.ckpt", m2, &opt2, &st2, &has, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(has == 1);
    CHECK(memcmp(m2->params, m->params, m->n_params * 4) == 0);
    CHECK(memcmp(opt2.m, opt.m, opt.n * 4) == 0 && memcmp(opt2.v, opt.v, opt.n * 4) == 0);
    CHECK(opt2.t == 1234 && st2.epoch == 3 && st2.step == 1234 && st2.rng.state == st.rng.state &&
          st2.rng.inc == st.rng.inc && st2.best_val_acc == 0.875f);
    /* a training checkpoint loads as a plain model too */
    kd_model *m3 = NULL;
    CHECK(kd_checkpoint_load("ckpt_test.ckpt", &m3, &err) == KD_STATUS_OK);
    kd_model_free(m3);
    /* resuming an AdamW state into an SGD run is refused */
    kd_optim_config sgd;
    kd_optim_config_default(&sgd);
    kd_optimizer o3;
    CHECK(kd_optimizer_init(&o3, &sgd, m, &err) == KD_STATUS_OK);
    CHECK(kd_checkpoint_load_into("ckpt_test.ckpt", m2, &o3, &st2, &has, &err) == KD_STATUS_MISMATCH);
    CHECK(strstr(err.msg, "adamw") != NULL);
    kd_optimizer_free(&o3);
    kd_optimizer_free(&opt);
    kd_optimizer_free(&opt2);
    kd_model_free(m2);
    /* NaN weights are never written */
    m->params[2] = NAN;
    CHECK(kd_checkpoint_save("ckpt_test_nan.safetensors", m, NULL, NULL, &err) == KD_STATUS_DIVERGED);
    FILE *f = fopen("ckpt_test_nan.safetensors", "rb");
    CHECK(f == NULL);
    if (f) fclose(f);
    kd_model_free(m);
}

/* Write a file with the given JSON header and n bytes of data. */
static void write_st(const char *path, const char *json, size_t data_bytes, const float *data) {
    FILE *f = fopen(path, "wb");
    uint64_t h = strlen(json);
    for (int i = 0; i < 8; i++) fputc((int)((h >> (8 * i)) & 0xff), f);
    fputs(json, f);
    for (size_t i = 0; i < data_bytes; i++) fputc(data ? ((const unsigned char *)data)[i] : 0, f);
    fclose(f);
}

static void expect_bad(const char *path, kd_status want, const char *needle) {
    kd_model *m = NULL;
    kd_error err = {0};
    kd_status st = kd_checkpoint_load(path, &m, &err);
    CHECK_MSG(st == want, "%s: status %d, wanted %d (%s)", needle, st, want, err.msg);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "'%s' not in '%s'", needle, err.msg);
    CHECK_MSG(strstr(err.msg, path) != NULL, "%s not named in '%s'", path, err.msg);
    CHECK(m == NULL);
    kd_model_free(m);
}

static void test_bad_files(void) {
    const char *meta = "\"__metadata__\":{\"format\":\"distill\",\"model_yaml\":\"name: t\\ninput: [1, 1, 2]\\nlayers:\\n  - {name: fc, type: linear, out: 2}\\n\"}";
    char json[1024];
    float w[6] = {1, 2, 3, 4, 5, 6};
    expect_bad("ckpt_test_missing.safetensors", KD_STATUS_NOT_FOUND, "no such file");
    FILE *f = fopen("ckpt_test_empty", "wb");
    fclose(f);
    expect_bad("ckpt_test_empty", KD_STATUS_BAD_FILE, "not a safetensors file");
    f = fopen("ckpt_test_hlen", "wb");
    fwrite("\xff\xff\xff\x00\x00\x00\x00\x00{}", 1, 10, f);
    fclose(f);
    expect_bad("ckpt_test_hlen", KD_STATUS_BAD_FILE, "header length");
    write_st("ckpt_test_json", "{\"a\": [1, 2", 0, NULL);
    expect_bad("ckpt_test_json", KD_STATUS_BAD_FILE, "invalid JSON");
    write_st("ckpt_test_foreign", "{\"__metadata__\":{\"format\":\"pt\"},\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, w);
    expect_bad("ckpt_test_foreign", KD_STATUS_BAD_FILE, "not a Distill checkpoint");
    snprintf(json, sizeof json, "{%s,\"fc.weight\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", meta);
    write_st("ckpt_test_f16", json, 16, w);
    expect_bad("ckpt_test_f16", KD_STATUS_BAD_FILE, "dtype F16");
    snprintf(json, sizeof json, "{%s,\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}", meta);
    write_st("ckpt_test_trunc", json, 20, w);
    expect_bad("ckpt_test_trunc", KD_STATUS_BAD_FILE, "outside");
    snprintf(json, sizeof json, "{%s,\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]},\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}", meta);
    write_st("ckpt_test_size", json, 24, w);
    expect_bad("ckpt_test_size", KD_STATUS_BAD_FILE, "do not match its shape");
    snprintf(json, sizeof json, "{%s,\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[1,4],\"data_offsets\":[0,16]},\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}", meta);
    write_st("ckpt_test_shape", json, 24, w);
    expect_bad("ckpt_test_shape", KD_STATUS_MISMATCH, "has shape [1,4], the model expects [2,2]");
    snprintf(json, sizeof json, "{%s,\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", meta);
    write_st("ckpt_test_nobias", json, 16, w);
    expect_bad("ckpt_test_nobias", KD_STATUS_MISMATCH, "missing tensor fc.bias");
    snprintf(json, sizeof json, "{%s,\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]},\"extra\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[24,24]}}", meta);
    write_st("ckpt_test_extra", json, 24, w);
    expect_bad("ckpt_test_extra", KD_STATUS_MISMATCH, "tensor extra does not belong");
    float nanw[6] = {1, NAN, 3, 4, 5, 6};
    snprintf(json, sizeof json, "{%s,\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}", meta);
    write_st("ckpt_test_nanw", json, 24, nanw);
    expect_bad("ckpt_test_nanw", KD_STATUS_BAD_FILE, "NaN");
    /* the same file with good data loads: the fixtures above differ from it in one thing each */
    write_st("ckpt_test_good", json, 24, w);
    kd_model *m = NULL;
    kd_error err;
    CHECK_MSG(kd_checkpoint_load("ckpt_test_good", &m, &err) == KD_STATUS_OK, "%s", err.msg);
    if (m) CHECK(m->params[0] == 1 && m->params[3] == 4 && m->params[5] == 6);
    kd_model_free(m);
    /* a checkpoint of another model: cnn-s into a model with other channel counts */
    kd_model *a = NULL, *b = NULL;
    CHECK(kd_model_create(&a, "cnn-s", 1, &err) == KD_STATUS_OK);
    CHECK(kd_model_from_yaml(&b, "name: x\ninput: [1, 28, 28]\nlayers:\n  - {name: conv1, type: conv2d, out: 16, kernel: 3, pad: 1}\n"
                                 "  - {type: flatten}\n  - {name: fc, type: linear, out: 10}\n", "x", 1, &err) == KD_STATUS_OK);
    CHECK(kd_checkpoint_save("ckpt_test_cnns.safetensors", a, NULL, NULL, &err) == KD_STATUS_OK);
    float before = b->params[0];
    CHECK(kd_checkpoint_load_into("ckpt_test_cnns.safetensors", b, NULL, NULL, NULL, &err) == KD_STATUS_MISMATCH);
    CHECK(strstr(err.msg, "conv1.weight has shape [8,1,3,3], the model expects [16,1,3,3]") != NULL);
    CHECK(b->params[0] == before); /* a failed load leaves the model untouched */
    kd_model_free(a);
    kd_model_free(b);
    const char *tmp[] = {"ckpt_test.safetensors", "ckpt_test.ckpt", "ckpt_test_empty", "ckpt_test_hlen", "ckpt_test_json",
                         "ckpt_test_foreign", "ckpt_test_f16", "ckpt_test_trunc", "ckpt_test_size", "ckpt_test_shape",
                         "ckpt_test_nobias", "ckpt_test_extra", "ckpt_test_nanw", "ckpt_test_good",
                         "ckpt_test_cnns.safetensors"};
    for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++) remove(tmp[i]);
}

int main(void) {
    test_roundtrip();
    test_bad_files();
    TEST_DONE();
}
