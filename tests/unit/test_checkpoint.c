/* Checkpoints: bit-exact round trips (model only, with batch norm, with optimizer and training
 * state), atomic writes that leave no temp file, and every malformed or mismatched file rejected
 * with the right status and a message naming it; truncations and header corruptions never crash. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "distill/checkpoint.h"
#include "distill/fileio.h"
#include "test.h"

static const char *bn_yaml = "name: small\ninput: [1, 8, 8]\nlayers:\n  - {name: c1, type: conv2d, out: 4, kernel: 3, pad: 1}\n"
                             "  - {name: bn, type: batchnorm}\n  - {type: relu}\n  - {type: flatten}\n"
                             "  - {name: fc, type: linear, out: 10}\n";

static void fill_random(float *p, size_t n, uint64_t seed) {
    kd_rng r;
    kd_rng_seed(&r, seed, 3);
    for (size_t i = 0; i < n; i++) p[i] = kd_rng_normal(&r);
}

/* No "<anything>.tmp.<pid>" left in the working directory. */
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

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static int same_config(const kd_optim_config *a, const kd_optim_config *b) {
    return a->type == b->type && a->lr == b->lr && a->momentum == b->momentum && a->nesterov == b->nesterov &&
           a->beta1 == b->beta1 && a->beta2 == b->beta2 && a->eps == b->eps && a->weight_decay == b->weight_decay &&
           a->sched == b->sched && a->warmup_epochs == b->warmup_epochs && a->step_epochs == b->step_epochs &&
           a->step_gamma == b->step_gamma && a->min_lr == b->min_lr;
}

static void test_roundtrip_models(void) {
    kd_error err;
    /* cnn-s: conv + linear, no buffers */
    kd_model *a = NULL, *back = NULL;
    CHECK(kd_model_create(&a, "cnn-s", 7, &err) == KD_STATUS_OK);
    if (!a) return;
    CHECK_MSG(kd_checkpoint_save("ckpt_test_cnns.safetensors", a, NULL, NULL, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(no_temp_files());
    CHECK_MSG(kd_checkpoint_load("ckpt_test_cnns.safetensors", &back, &err) == KD_STATUS_OK, "%s", err.msg);
    if (back) {
        CHECK(strcmp(back->name, "cnn-s") == 0 && back->n_layers == a->n_layers);
        CHECK(back->n_params == a->n_params && memcmp(back->params, a->params, a->n_params * 4) == 0);
    }
    kd_model_free(back);
    /* saving again replaces the file in place, still without a temp file */
    a->params[0] += 1.f;
    CHECK(kd_checkpoint_save("ckpt_test_cnns.safetensors", a, NULL, NULL, &err) == KD_STATUS_OK);
    CHECK(no_temp_files());
    back = NULL;
    CHECK(kd_checkpoint_load("ckpt_test_cnns.safetensors", &back, &err) == KD_STATUS_OK);
    if (back) CHECK(back->params[0] == a->params[0]);
    kd_model_free(back);
    kd_model_free(a);

    /* batch norm: weight, bias, running_mean, running_var */
    kd_model *m = NULL;
    back = NULL;
    CHECK(kd_model_from_yaml(&m, bn_yaml, "small", 1, &err) == KD_STATUS_OK);
    if (!m) return;
    fill_random(m->params, m->n_params, 5);
    fill_random(m->buffers, m->n_buffers, 4);
    for (size_t i = m->n_buffers / 2; i < m->n_buffers; i++) m->buffers[i] = fabsf(m->buffers[i]);
    m->params[1] = -0.f; /* signed zero and a denormal survive too */
    m->params[2] = 1e-42f;
    CHECK_MSG(kd_checkpoint_save("ckpt_test.safetensors", m, NULL, NULL, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(no_temp_files());
    CHECK_MSG(kd_checkpoint_load("ckpt_test.safetensors", &back, &err) == KD_STATUS_OK, "%s", err.msg);
    if (back) {
        CHECK(back->n_params == m->n_params && back->n_buffers == m->n_buffers && strcmp(back->name, "small") == 0);
        CHECK(memcmp(back->params, m->params, m->n_params * 4) == 0);
        CHECK(memcmp(back->buffers, m->buffers, m->n_buffers * 4) == 0);
        CHECK(strcmp(back->yaml, m->yaml) == 0);
    }
    kd_model_free(back);
    /* the layout is the safetensors one: 8-byte length, JSON padded with spaces to a multiple of 8,
     * then the data, nothing else */
    char *data = NULL;
    size_t len = 0;
    CHECK(kd_read_file("ckpt_test.safetensors", &data, &len, &err) == KD_STATUS_OK);
    if (data) {
        uint64_t h = 0;
        for (int i = 7; i >= 0; i--) h = h << 8 | (unsigned char)data[i];
        CHECK(h % 8 == 0 && h < len && data[8] == '{');
        CHECK(strstr(data + 8, "\"c1.weight\"") && strstr(data + 8, "\"bn.running_var\"") &&
              strstr(data + 8, "\"format\":\"distill\""));
        CHECK(len == 8 + h + 4 * (m->n_params + m->n_buffers));
        /* little-endian data: the first tensor (c1.weight) starts the data buffer */
        const unsigned char *d0 = (const unsigned char *)data + 8 + h;
        uint32_t u = (uint32_t)d0[0] | (uint32_t)d0[1] << 8 | (uint32_t)d0[2] << 16 | (uint32_t)d0[3] << 24;
        float f0;
        memcpy(&f0, &u, 4);
        CHECK(f0 == m->params[m->layers[0].w_off]);
    }
    free(data);
    /* NaN weights are never written, and the previous file stays */
    m->params[2] = NAN;
    CHECK(kd_checkpoint_save("ckpt_test.safetensors", m, NULL, NULL, &err) == KD_STATUS_DIVERGED);
    CHECK(strstr(err.msg, "ckpt_test.safetensors") && strstr(err.msg, "c1.weight"));
    CHECK(no_temp_files());
    back = NULL;
    CHECK(kd_checkpoint_load("ckpt_test.safetensors", &back, &err) == KD_STATUS_OK);
    if (back) CHECK(back->params[2] == 1e-42f);
    kd_model_free(back);
    m->params[2] = 0.f;
    m->buffers[m->n_buffers - 1] = INFINITY;
    CHECK(kd_checkpoint_save("ckpt_test_nan.safetensors", m, NULL, NULL, &err) == KD_STATUS_DIVERGED);
    CHECK(strstr(err.msg, "bn.running_var") != NULL);
    CHECK(!file_exists("ckpt_test_nan.safetensors") && no_temp_files());
    kd_model_free(m);
}

static void test_roundtrip_state(void) {
    kd_error err;
    kd_model *m = NULL, *m2 = NULL;
    CHECK(kd_model_from_yaml(&m, bn_yaml, "small", 1, &err) == KD_STATUS_OK);
    CHECK(kd_model_from_yaml(&m2, bn_yaml, "small", 99, &err) == KD_STATUS_OK);
    if (!m || !m2) return;
    fill_random(m->buffers, m->n_buffers, 4);
    for (size_t i = m->n_buffers / 2; i < m->n_buffers; i++) m->buffers[i] = fabsf(m->buffers[i]);
    for (int type = 0; type < 2; type++) {
        kd_optim_config oc, oc2;
        kd_optim_config_default(&oc);
        kd_optim_config_default(&oc2);
        oc.type = oc2.type = type ? KD_OPT_ADAMW : KD_OPT_SGD;
        /* values that are not short decimals, to see that every float round-trips exactly */
        oc.lr = 0.1f / 3.f;
        oc.momentum = nextafterf(0.9f, 1.f);
        oc.nesterov = 0;
        oc.beta2 = 0.999f;
        oc.eps = 1.17549435e-38f;
        oc.weight_decay = 3e-4f;
        oc.sched = KD_SCHED_STEP;
        oc.warmup_epochs = 0.7f;
        oc.step_epochs = 7;
        oc.step_gamma = 0.3f;
        oc.min_lr = 1e-7f;
        kd_optimizer opt, opt2;
        CHECK(kd_optimizer_init(&opt, &oc, m, &err) == KD_STATUS_OK);
        CHECK(kd_optimizer_init(&opt2, &oc2, m2, &err) == KD_STATUS_OK);
        fill_random(opt.m, opt.n, 7);
        if (opt.v)
            for (size_t i = 0; i < opt.n; i++) opt.v[i] = (float)i * 1e-3f + 1e-9f;
        opt.t = 123456789012LL;
        kd_train_state st = {3, 123456789012LL, {0xfedcba9876543210ULL, 0x123456789abcdefULL}, 0.1f / 7.f};
        CHECK_MSG(kd_checkpoint_save("ckpt_test.ckpt", m, &opt, &st, &err) == KD_STATUS_OK, "%s", err.msg);
        kd_train_state st2 = {0};
        int has = -1;
        CHECK_MSG(kd_checkpoint_load_into("ckpt_test.ckpt", m2, &opt2, &st2, &has, &err) == KD_STATUS_OK, "%s", err.msg);
        CHECK(has == 1);
        CHECK(memcmp(m2->params, m->params, m->n_params * 4) == 0);
        CHECK(memcmp(m2->buffers, m->buffers, m->n_buffers * 4) == 0);
        CHECK(memcmp(opt2.m, opt.m, opt.n * 4) == 0);
        if (opt.v) CHECK(memcmp(opt2.v, opt.v, opt.n * 4) == 0);
        CHECK(opt2.t == opt.t && same_config(&opt2.cfg, &oc));
        CHECK(st2.epoch == 3 && st2.step == st.step && st2.rng.state == st.rng.state && st2.rng.inc == st.rng.inc &&
              st2.best_val_acc == st.best_val_acc);
        /* a training checkpoint loads as a plain model, and into a model without optimizer */
        kd_model *m3 = NULL;
        CHECK_MSG(kd_checkpoint_load("ckpt_test.ckpt", &m3, &err) == KD_STATUS_OK, "%s", err.msg);
        if (m3) CHECK(memcmp(m3->params, m->params, m->n_params * 4) == 0);
        kd_model_free(m3);
        has = -1;
        CHECK(kd_checkpoint_load_into("ckpt_test.ckpt", m2, NULL, NULL, &has, &err) == KD_STATUS_OK && has == 0);
        /* resuming with the other optimizer is refused, and the model is untouched */
        kd_optim_config other;
        kd_optim_config_default(&other);
        other.type = type ? KD_OPT_SGD : KD_OPT_ADAMW;
        kd_optimizer o3;
        CHECK(kd_optimizer_init(&o3, &other, m, &err) == KD_STATUS_OK);
        m2->params[0] = 42.f;
        CHECK(kd_checkpoint_load_into("ckpt_test.ckpt", m2, &o3, &st2, &has, &err) == KD_STATUS_MISMATCH);
        CHECK(strstr(err.msg, type ? "trained with adamw" : "trained with sgd") && strstr(err.msg, "ckpt_test.ckpt"));
        CHECK(m2->params[0] == 42.f && has == 0);
        kd_optimizer_free(&o3);
        /* a model-only file gives no state and leaves the optimizer alone */
        CHECK(kd_checkpoint_save("ckpt_test.safetensors", m, NULL, NULL, &err) == KD_STATUS_OK);
        opt2.t = 5;
        opt2.m[0] = 42.f;
        CHECK(kd_checkpoint_load_into("ckpt_test.safetensors", m2, &opt2, &st2, &has, &err) == KD_STATUS_OK);
        CHECK(has == 0 && opt2.t == 5 && opt2.m[0] == 42.f);
        /* NaN in a moment: not written */
        opt.m[opt.n - 1] = NAN;
        CHECK(kd_checkpoint_save("ckpt_test_nan.ckpt", m, &opt, &st, &err) == KD_STATUS_DIVERGED);
        CHECK(strstr(err.msg, "optim.m.fc.bias") != NULL);
        CHECK(!file_exists("ckpt_test_nan.ckpt") && no_temp_files());
        kd_optimizer_free(&opt);
        kd_optimizer_free(&opt2);
    }
    kd_model_free(m);
    kd_model_free(m2);
    remove("ckpt_test.ckpt");
    remove("ckpt_test.safetensors");
}

/* A one-layer model (linear 2 -> 2) and n (1 or 2) optimizers with the default configuration for
 * it; NULL after a recorded failure when the model cannot be built. */
static kd_model *tiny_model(kd_optimizer *o, int n, kd_error *err) {
    kd_model *m = NULL;
    CHECK(kd_model_from_yaml(&m, "name: t\ninput: [1, 1, 2]\nlayers:\n  - {name: fc, type: linear, out: 2}\n", "t", 1, err) ==
          KD_STATUS_OK);
    if (!m) return NULL;
    kd_optim_config oc;
    kd_optim_config_default(&oc);
    for (int i = 0; i < n; i++) CHECK(kd_optimizer_init(&o[i], &oc, m, err) == KD_STATUS_OK);
    return m;
}

/* The optimizer configuration is stored as decimal text: random floats of every magnitude
 * (including denormals) come back bit-identical. */
static void test_config_floats(void) {
    kd_error err;
    kd_optimizer opt[2];
    kd_model *m = tiny_model(opt, 2, &err);
    if (!m) return;
    kd_optimizer o = opt[0], o2 = opt[1];
    kd_rng r;
    kd_rng_seed(&r, 5, 9);
    int bad = 0;
    for (int it = 0; it < 40; it++) {
        float *f[] = {&o.cfg.lr, &o.cfg.momentum, &o.cfg.beta1, &o.cfg.beta2, &o.cfg.eps, &o.cfg.weight_decay,
                      &o.cfg.warmup_epochs, &o.cfg.step_gamma, &o.cfg.min_lr};
        for (int k = 0; k < 9; k++) {
            uint32_t u;
            do u = kd_rng_u32(&r); while (((u >> 23) & 0xff) == 0xff); /* finite */
            memcpy(f[k], &u, 4);
        }
        kd_train_state st = {0, 0, {1, 1}, -1.f}, st2;
        int has = 0;
        if (kd_checkpoint_save("ckpt_test_cfg", m, &o, &st, &err) ||
            kd_checkpoint_load_into("ckpt_test_cfg", m, &o2, &st2, &has, &err) || !has) {
            bad++;
            continue;
        }
        for (int k = 0; k < 9; k++) {
            const float *g = (const float *)((const char *)&o2.cfg + ((const char *)f[k] - (const char *)&o.cfg));
            if (memcmp(g, f[k], 4) != 0 && !(*g == 0 && *f[k] == 0)) bad++; /* -0 may come back as 0 */
        }
        if (st2.best_val_acc != -1.f) bad++;
    }
    CHECK_MSG(bad == 0, "%d configuration values did not round-trip", bad);
    remove("ckpt_test_cfg");
    kd_optimizer_free(&o);
    kd_optimizer_free(&o2);
    kd_model_free(m);
}

static void test_files(void) {
    kd_error err;
    const char msg[] = "hello";
    CHECK(kd_write_file_atomic("ckpt_test_file", msg, 5, &err) == KD_STATUS_OK);
    CHECK(no_temp_files());
    char *d = NULL;
    size_t n = 0;
    CHECK(kd_read_file("ckpt_test_file", &d, &n, &err) == KD_STATUS_OK && n == 5 && d && !strcmp(d, "hello"));
    free(d);
    /* a directory that does not exist: IO error naming the path, nothing left behind */
    CHECK(kd_write_file_atomic("ckpt_test_nodir/x.safetensors", msg, 5, &err) == KD_STATUS_IO);
    CHECK(strstr(err.msg, "ckpt_test_nodir/x.safetensors") != NULL);
    CHECK(kd_read_file("ckpt_test_nodir/x", &d, &n, &err) == KD_STATUS_NOT_FOUND && d == NULL);
    CHECK(kd_read_file(".", &d, &n, &err) == KD_STATUS_IO && strstr(err.msg, "not a regular file"));
    remove("ckpt_test_file");
}

/* Write a file with the given JSON header and data bytes. */
static void write_st(const char *path, const char *json, size_t data_bytes, const float *data) {
    remove(path); /* rewriting in place would make ext4 flush on close (auto_da_alloc): slow */
    FILE *f = fopen(path, "wb");
    if (!f) return;
    uint64_t h = strlen(json);
    for (int i = 0; i < 8; i++) fputc((int)((h >> (8 * i)) & 0xff), f);
    fputs(json, f);
    for (size_t i = 0; i < data_bytes; i++) fputc(data ? ((const unsigned char *)data)[i] : 0, f);
    fclose(f);
}

static void write_raw(const char *path, const void *p, size_t n) {
    remove(path);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(p, 1, n, f);
    fclose(f);
}

static const char *bad_files[64];
static int n_bad_files;

static void expect_bad(const char *path, kd_status want, const char *needle) {
    kd_model *m = NULL;
    kd_error err = {0};
    kd_status st = kd_checkpoint_load(path, &m, &err);
    CHECK_MSG(st == want, "%s: status %s, wanted %s (%s)", path, kd_status_name(st), kd_status_name(want), err.msg);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "'%s' not in '%s'", needle, err.msg);
    CHECK_MSG(strstr(err.msg, path) != NULL, "%s not named in '%s'", path, err.msg);
    CHECK(m == NULL);
    kd_model_free(m);
    if (n_bad_files < 64) bad_files[n_bad_files++] = path;
}

/* A one-layer model (linear 2 -> 2): fc.weight [2,2] at bytes 0..16, fc.bias [2] at 16..24. Each
 * bad file below differs from the good one in one thing. */
#define META_YAML "\"model_yaml\":\"name: t\\ninput: [1, 1, 2]\\nlayers:\\n  - {name: fc, type: linear, out: 2}\\n\""
#define META "\"__metadata__\":{\"format\":\"distill\",\"version\":\"1\"," META_YAML "}"
#define W(shape, offs) "\"fc.weight\":{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":" offs "}"
#define B(shape, offs) "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":" offs "}"
#define GOOD_W W("[2,2]", "[0,16]")
#define GOOD_B B("[2]", "[16,24]")

static void test_bad_files(void) {
    float w[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    kd_error err;
    /* the reference file loads; its tensors are listed bias first and the header is not padded,
     * as another writer might do it */
    write_st("ckpt_test_good", "{" GOOD_B "," META "," GOOD_W "}", 24, w);
    kd_model *m = NULL;
    CHECK_MSG(kd_checkpoint_load("ckpt_test_good", &m, &err) == KD_STATUS_OK, "%s", err.msg);
    if (m) CHECK(m->params[0] == 1 && m->params[3] == 4 && m->params[4] == 5 && m->params[5] == 6);
    kd_model_free(m);
    remove("ckpt_test_good");

    expect_bad("ckpt_test_missing.safetensors", KD_STATUS_NOT_FOUND, "no such file");
    write_raw("ckpt_test_empty", "", 0);
    expect_bad("ckpt_test_empty", KD_STATUS_BAD_FILE, "not a safetensors file");
    write_raw("ckpt_test_short", "\x10\x00\x00", 3);
    expect_bad("ckpt_test_short", KD_STATUS_BAD_FILE, "less than the 8-byte header length");
    write_raw("ckpt_test_hlen", "\xff\x00\x00\x00\x00\x00\x00\x00{}", 10);
    expect_bad("ckpt_test_hlen", KD_STATUS_BAD_FILE, "header length 255 bytes, file 10 bytes");
    write_raw("ckpt_test_hhuge", "\xff\xff\xff\xff\xff\xff\xff\xff{}", 10);
    expect_bad("ckpt_test_hhuge", KD_STATUS_BAD_FILE, "header length");
    /* each file: its name, JSON header and data bytes (from w), the status and message it must give */
    static const struct { const char *name, *json; size_t bytes; kd_status want; const char *needle; } bad[] = {
        {"ckpt_test_json", "{\"a\": [1, 2", 0, KD_STATUS_BAD_FILE, "invalid JSON"},
        {"ckpt_test_array", "[1, 2]", 0, KD_STATUS_BAD_FILE, "invalid JSON"},
        {"ckpt_test_junk", "{" META "," GOOD_W "," GOOD_B "}  x", 24, KD_STATUS_BAD_FILE, "bytes after the JSON"},
        {"ckpt_test_foreign", "{\"__metadata__\":{\"format\":\"pt\"},\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, KD_STATUS_BAD_FILE, "not a Distill checkpoint"},
        {"ckpt_test_nometa", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, KD_STATUS_BAD_FILE, "not a Distill checkpoint (no model_yaml in its metadata"},
        {"ckpt_test_noyaml", "{\"__metadata__\":{\"format\":\"distill\",\"version\":\"1\"}," GOOD_W "," GOOD_B "}", 24, KD_STATUS_BAD_FILE, "not a Distill checkpoint (no model_yaml in its metadata"},
        {"ckpt_test_version", "{\"__metadata__\":{\"format\":\"distill\",\"version\":\"2\"," META_YAML "}," GOOD_W "," GOOD_B "}", 24, KD_STATUS_BAD_FILE, "format version 2"},
        {"ckpt_test_metanum", "{\"__metadata__\":{\"format\":\"distill\",\"version\":\"1\",\"epoch\":3," META_YAML "}," GOOD_W "," GOOD_B "}", 24, KD_STATUS_BAD_FILE, "\"epoch\" is not a string"},
        {"ckpt_test_yaml", "{\"__metadata__\":{\"format\":\"distill\",\"version\":\"1\",\"model_yaml\":\"name: t\\nlayers: 3\\n\"}," GOOD_W "," GOOD_B "}", 24, KD_STATUS_BAD_MODEL, ""},
        {"ckpt_test_entry", "{" META ",\"fc.weight\":{\"shape\":[2,2],\"data_offsets\":[0,16]}," GOOD_B "}", 24, KD_STATUS_BAD_FILE, "tensor fc.weight: malformed entry"},
        {"ckpt_test_f16", "{" META ",\"fc.weight\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]}," B("[2]", "[8,16]") "}", 16, KD_STATUS_BAD_FILE, "tensor fc.weight has dtype F16"},
        {"ckpt_test_trunc", "{" META "," GOOD_W "," GOOD_B "}", 20, KD_STATUS_BAD_FILE, "fc.bias: data offsets [16, 24] outside the 20 data bytes"},
        {"ckpt_test_frac", "{" META "," W("[2,2]", "[0.5,16.5]") "," GOOD_B "}", 24, KD_STATUS_BAD_FILE, "malformed entry"},
        {"ckpt_test_negshape", "{" META "," W("[-2,2]", "[0,16]") "," GOOD_B "}", 24, KD_STATUS_BAD_FILE, "non-negative integer"},
        {"ckpt_test_size", "{" META "," W("[2,3]", "[0,16]") "," GOOD_B "}", 24, KD_STATUS_BAD_FILE, "16 data bytes do not match its shape [2,3]"},
        {"ckpt_test_ovf", "{" META "," W("[4294967296,4294967296,4294967296]", "[0,16]") "," GOOD_B "}", 24, KD_STATUS_BAD_FILE, "do not match its shape"},
        {"ckpt_test_hole", "{" META "," GOOD_W "," B("[2]", "[20,28]") "}", 28, KD_STATUS_BAD_FILE, "4 unused bytes in the data buffer before tensor fc.bias"},
        {"ckpt_test_overlap", "{" META "," GOOD_W "," B("[2]", "[12,20]") "}", 20, KD_STATUS_BAD_FILE, "tensor fc.bias overlaps tensor fc.weight"},
        {"ckpt_test_tail", "{" META "," GOOD_W "," GOOD_B "}", 28, KD_STATUS_BAD_FILE, "4 bytes after the last tensor"},
        {"ckpt_test_dup", "{" META "," GOOD_W "," GOOD_B "," W("[2,2]", "[24,40]") "}", 40, KD_STATUS_BAD_FILE, "tensor fc.weight appears twice"},
        {"ckpt_test_shape", "{" META "," W("[1,4]", "[0,16]") "," GOOD_B "}", 24, KD_STATUS_MISMATCH, "tensor fc.weight has shape [1,4], the model expects [2,2]"},
        {"ckpt_test_nobias", "{" META "," GOOD_W "}", 16, KD_STATUS_MISMATCH, "missing tensor fc.bias [2]"},
        {"ckpt_test_extra", "{" META "," GOOD_W "," GOOD_B ",\"extra\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[24,24]}}", 24, KD_STATUS_MISMATCH, "tensor extra does not belong to model t"},
        {"ckpt_test_extraopt", "{" META "," GOOD_W "," GOOD_B ",\"optim.m.fc.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]}}", 32, KD_STATUS_MISMATCH, "optim.m.fc.bias does not belong to model t (no optimizer in the metadata)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_st(bad[i].name, bad[i].json, bad[i].bytes, bad[i].bytes ? w : NULL);
        expect_bad(bad[i].name, bad[i].want, bad[i].needle);
    }
    float nanw[6] = {1, NAN, 3, 4, 5, 6}, infb[6] = {1, 2, 3, 4, 5, -INFINITY};
    write_st("ckpt_test_nanw", "{" META "," GOOD_W "," GOOD_B "}", 24, nanw);
    expect_bad("ckpt_test_nanw", KD_STATUS_BAD_FILE, "tensor fc.weight holds NaN or inf (nan at element 1)");
    write_st("ckpt_test_infb", "{" META "," GOOD_W "," GOOD_B "}", 24, infb);
    expect_bad("ckpt_test_infb", KD_STATUS_BAD_FILE, "tensor fc.bias holds NaN or inf");

    /* a checkpoint of another model: cnn-s into a model with other channel counts */
    kd_model *a = NULL, *b = NULL;
    CHECK(kd_model_create(&a, "cnn-s", 1, &err) == KD_STATUS_OK);
    CHECK(kd_model_from_yaml(&b, "name: x\ninput: [1, 28, 28]\nlayers:\n  - {name: conv1, type: conv2d, out: 16, kernel: 3, pad: 1}\n"
                                 "  - {type: flatten}\n  - {name: fc, type: linear, out: 10}\n", "x", 1, &err) == KD_STATUS_OK);
    if (a && b) {
        CHECK(kd_checkpoint_save("ckpt_test_cnns.safetensors", a, NULL, NULL, &err) == KD_STATUS_OK);
        float before = b->params[0];
        CHECK(kd_checkpoint_load_into("ckpt_test_cnns.safetensors", b, NULL, NULL, NULL, &err) == KD_STATUS_MISMATCH);
        CHECK_MSG(strstr(err.msg, "ckpt_test_cnns.safetensors: tensor conv1.weight has shape [8,1,3,3], the model expects "
                                  "[16,1,3,3]") != NULL, "%s", err.msg);
        CHECK(b->params[0] == before); /* a failed load leaves the model untouched */
    }
    kd_model_free(a);
    kd_model_free(b);
    for (int i = 0; i < n_bad_files; i++) remove(bad_files[i]);
    remove("ckpt_test_cnns.safetensors");
}

/* ---------------------------------------------------------------- edits of a real training checkpoint */

typedef struct blob {
    char *p;
    size_t n;
    size_t h; /* header length */
} blob;

static blob load_blob(const char *path) {
    blob b = {0};
    kd_error err;
    if (kd_read_file(path, &b.p, &b.n, &err) || b.n < 8) return b;
    for (int i = 7; i >= 0; i--) b.h = b.h << 8 | (unsigned char)b.p[i];
    return b;
}

/* Copy src to dst with the first `find` in the header, extended to the end of the first `until`
 * after it when until is non-NULL, replaced by `repl` (length field fixed up). */
static int edit_header_span(const char *src, const char *dst, const char *find, const char *until, const char *repl) {
    blob b = load_blob(src);
    if (!b.p) return 0;
    char *hdr = malloc(b.h + 1);
    memcpy(hdr, b.p + 8, b.h);
    hdr[b.h] = 0;
    char *at = strstr(hdr, find), *to = at && until ? strstr(at, until) : NULL;
    int ok = at && (!until || to);
    if (ok) {
        size_t pre = (size_t)(at - hdr), fl = until ? (size_t)(to - at) + strlen(until) : strlen(find), rl = strlen(repl);
        uint64_t nh = b.h - fl + rl;
        FILE *f = fopen(dst, "wb");
        for (int i = 0; i < 8; i++) fputc((int)((nh >> (8 * i)) & 0xff), f);
        fwrite(hdr, 1, pre, f);
        fwrite(repl, 1, rl, f);
        fwrite(at + fl, 1, b.h - pre - fl, f);
        fwrite(b.p + 8 + b.h, 1, b.n - 8 - b.h, f);
        fclose(f);
    }
    free(hdr);
    free(b.p);
    return ok;
}

static int edit_header(const char *src, const char *dst, const char *find, const char *repl) {
    return edit_header_span(src, dst, find, NULL, repl);
}

static kd_status load_state(const char *path, kd_model *m, kd_optimizer *o, kd_error *err) {
    kd_train_state st;
    int has;
    return kd_checkpoint_load_into(path, m, o, &st, &has, err);
}

static void expect_bad_state(const char *path, kd_model *m, kd_optimizer *o, kd_status want, const char *needle) {
    kd_error err = {0};
    kd_status s = load_state(path, m, o, &err);
    CHECK_MSG(s == want && strstr(err.msg, needle) && strstr(err.msg, path), "%s: %s, wanted %s with '%s': '%s'", path,
              kd_status_name(s), kd_status_name(want), needle, err.msg);
    remove(path);
}

static void test_bad_state(void) {
    kd_error err;
    kd_optimizer o;
    kd_model *m = tiny_model(&o, 1, &err);
    if (!m) return;
    fill_random(o.m, o.n, 2);
    o.t = 17;
    kd_train_state st = {2, 17, {12345, 6789}, 0.5f};
    CHECK(kd_checkpoint_save("ckpt_test_state", m, &o, &st, &err) == KD_STATUS_OK);
    CHECK(load_state("ckpt_test_state", m, &o, &err) == KD_STATUS_OK);

    /* each edit of the good file's header: the file it makes, the text replaced and its replacement,
     * the status and message loading it must give */
    static const struct { const char *path, *find, *repl; kd_status want; const char *needle; } edits[] = {
        {"ckpt_test_s1", "\"type\\\":\\\"sgd", "\"type\\\":\\\"rmsprop", KD_STATUS_BAD_FILE, "metadata \"optimizer\" is malformed (type)"},
        {"ckpt_test_s2", "\"epoch\":", "\"epoch_\":", KD_STATUS_BAD_FILE, "training state in the metadata: \"epoch\" is missing"},
        {"ckpt_test_s3", "\"rng_inc\":\"6789\"", "\"rng_inc\":\"6788\"", KD_STATUS_BAD_FILE, "\"rng_inc\" is malformed"},
        {"ckpt_test_s4", "\"epoch\":\"2\"", "\"epoch\":\"-2\"", KD_STATUS_BAD_FILE, "\"epoch\" is malformed"},
        {"ckpt_test_s5", "\"best_val_acc\":\"0.5\"", "\"best_val_acc\":\"nan\"", KD_STATUS_BAD_FILE, "\"best_val_acc\" is malformed"},
        {"ckpt_test_s6", "\"optim.m.fc.bias\"", "\"optim.x.fc.bias\"", KD_STATUS_MISMATCH, "missing tensor optim.m.fc.bias"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        CHECK(edit_header("ckpt_test_state", edits[i].path, edits[i].find, edits[i].repl));
        expect_bad_state(edits[i].path, m, &o, edits[i].want, edits[i].needle);
    }

    /* files from before the optimizer configuration was stored: type + "optimizer_t"; the run
     * keeps its own configuration */
    CHECK(edit_header_span("ckpt_test_state", "ckpt_test_s8", "\"optimizer\":\"{", "}\"",
                           "\"optimizer\":\"sgd\",\"optimizer_t\":\"17\""));
    o.cfg.lr = 0.125f;
    o.t = 0;
    kd_train_state st2;
    int has = 0;
    CHECK_MSG(kd_checkpoint_load_into("ckpt_test_s8", m, &o, &st2, &has, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(has == 1 && o.t == 17 && o.cfg.lr == 0.125f && st2.step == 17);
    CHECK(edit_header("ckpt_test_s8", "ckpt_test_s9", "\"optimizer_t\"", "\"optimizer_x\""));
    expect_bad_state("ckpt_test_s9", m, &o, KD_STATUS_BAD_FILE, "metadata \"optimizer_t\" is missing");
    remove("ckpt_test_s8");

    /* NaN in a moment: refused even when only the model is wanted; model and optimizer untouched */
    blob b = load_blob("ckpt_test_state");
    if (b.p) {
        const float nan = NAN;
        /* data order: fc.weight (16 bytes), fc.bias (8), optim.m.fc.weight, optim.m.fc.bias */
        memcpy(b.p + 8 + b.h + 24 + 8, &nan, 4);
        write_raw("ckpt_test_s7", b.p, b.n);
        free(b.p);
        float p0 = m->params[0] = 3.f, m0 = o.m[0] = 4.f;
        kd_model *back = NULL;
        CHECK(kd_checkpoint_load("ckpt_test_s7", &back, &err) == KD_STATUS_BAD_FILE && back == NULL);
        CHECK(strstr(err.msg, "optim.m.fc.weight holds NaN") != NULL);
        expect_bad_state("ckpt_test_s7", m, &o, KD_STATUS_BAD_FILE, "optim.m.fc.weight holds NaN or inf (nan at element 2)");
        CHECK(m->params[0] == p0 && o.m[0] == m0 && o.t == 17);
    }
    remove("ckpt_test_state");
    kd_optimizer_free(&o);
    kd_model_free(m);
}

/* Every truncation of a training checkpoint is refused, and random corruptions of its header
 * never crash (run under ASan/UBSan) or load garbage. */
static void test_truncation_and_corruption(void) {
    kd_error err;
    kd_model *m = NULL;
    CHECK(kd_model_from_yaml(&m, bn_yaml, "small", 1, &err) == KD_STATUS_OK);
    if (!m) return;
    kd_optim_config oc;
    kd_optim_config_default(&oc);
    oc.type = KD_OPT_ADAMW;
    kd_optimizer o;
    CHECK(kd_optimizer_init(&o, &oc, m, &err) == KD_STATUS_OK);
    kd_train_state st = {1, 10, {1, 3}, 0.25f};
    CHECK(kd_checkpoint_save("ckpt_test_full", m, &o, &st, &err) == KD_STATUS_OK);
    blob b = load_blob("ckpt_test_full");
    if (!b.p) return;
    int bad_status = 0, n_tried = 0;
    for (size_t len = 0; len < b.n; len += len < b.h + 80 ? 1 : 37) {
        write_raw("ckpt_test_cut", b.p, len);
        kd_status s = load_state("ckpt_test_cut", m, &o, &err);
        if (s != KD_STATUS_BAD_FILE || !strstr(err.msg, "ckpt_test_cut")) bad_status++;
        n_tried++;
    }
    CHECK_MSG(bad_status == 0, "%d of %d truncations not refused as BAD_FILE", bad_status, n_tried);
    kd_rng r;
    kd_rng_seed(&r, 11, 1);
    char *c = malloc(b.n);
    int ok = 0, bad = 0;
    for (int it = 0; it < 600; it++) {
        memcpy(c, b.p, b.n);
        int k = 1 + (int)kd_rng_below(&r, 3);
        for (int j = 0; j < k; j++) {
            size_t at = kd_rng_below(&r, 8) == 0 ? kd_rng_below(&r, 8) : 8 + kd_rng_below(&r, (uint32_t)b.h);
            c[at] = (char)kd_rng_u32(&r);
        }
        write_raw("ckpt_test_cut", c, b.n);
        kd_status s = load_state("ckpt_test_cut", m, &o, &err);
        if (s == KD_STATUS_OK) {
            ok++;
            for (size_t i = 0; i < m->n_params; i++)
                if (!isfinite(m->params[i])) bad++;
        } else if (s != KD_STATUS_BAD_FILE && s != KD_STATUS_MISMATCH && s != KD_STATUS_BAD_MODEL) {
            bad++;
        }
    }
    CHECK_MSG(bad == 0, "%d corrupted files gave an unexpected result (%d loaded)", bad, ok);
    free(c);
    free(b.p);
    remove("ckpt_test_cut");
    remove("ckpt_test_full");
    kd_optimizer_free(&o);
    kd_model_free(m);
}

int main(void) {
    test_files();
    test_roundtrip_models();
    test_roundtrip_state();
    test_config_floats();
    test_bad_files();
    test_bad_state();
    test_truncation_and_corruption();
    TEST_DONE();
}
