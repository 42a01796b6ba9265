/* `distill export` end to end: an int8 file from kd_int8_save becomes the same .kdm bytes as
 * kd_kdm_write gives; a .kdm becomes a C header with the arena macro; usage errors exit 2, bad
 * files exit 1 and write nothing. No data set needed (the model is calibrated on synthetic images). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "distill/fileio.h"
#include "distill/export.h"
#include "distill/model.h"
#include "distill/quantize.h"
#include "distill/rng.h"
#include "test.h"

static int run(const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s export %s > %s/test_export.log 2>&1", KD_CLI_PATH, args, KD_BINARY_DIR);
    int rc = system(cmd);
    return rc == -1 || !WIFEXITED(rc) ? -1 : WEXITSTATUS(rc);
}

static char *slurp(const char *path, size_t *n) {
    char *b = NULL;
    kd_error err;
    *n = 0;
    return kd_read_file(path, &b, n, &err) == KD_STATUS_OK ? b : NULL;
}

int main(void) {
    kd_error err;
    kd_model *m = NULL;
    CHECK(kd_model_create(&m, "cnn-s", 3, &err) == KD_STATUS_OK);
    if (!m) TEST_DONE();
    kd_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.n = 16; ds.c = 1; ds.h = 28; ds.w = 28; ds.n_classes = 10;
    ds.pixels = malloc((size_t)16 * 784);
    ds.labels = calloc(16, sizeof(int32_t));
    kd_rng r;
    kd_rng_seed(&r, 4, 4);
    for (size_t i = 0; i < (size_t)16 * 784; i++) ds.pixels[i] = (uint8_t)kd_rng_below(&r, 256);
    ds.mean = 0.29f;
    ds.std = 0.35f;
    kd_calib_config cfg;
    kd_calib_config_default(&cfg);
    cfg.n_images = 16;
    kd_int8_model *q = NULL;
    CHECK_MSG(kd_int8_quantize(m, &ds, &cfg, &q, &err) == KD_STATUS_OK, "%s", err.msg);
    if (!q) TEST_DONE();
    char int8p[512], kdm[512], hdr[512], args[2048];
    snprintf(int8p, sizeof int8p, "%s/test_export.int8.safetensors", KD_BINARY_DIR);
    snprintf(kdm, sizeof kdm, "%s/test_export.kdm", KD_BINARY_DIR);
    snprintf(hdr, sizeof hdr, "%s/test_export_model.h", KD_BINARY_DIR);
    remove(kdm);
    remove(hdr);
    CHECK_MSG(kd_int8_save(int8p, q, &err) == KD_STATUS_OK, "%s", err.msg);

    /* int8 file -> .kdm: the bytes kd_kdm_write gives */
    snprintf(args, sizeof args, "%s -o %s", int8p, kdm);
    CHECK(run(args) == 0);
    unsigned char *want = NULL;
    size_t wn = 0, gn = 0;
    CHECK(kd_kdm_write(q, &want, &wn, &err) == KD_STATUS_OK);
    char *got = slurp(kdm, &gn);
    CHECK(got && gn == wn && memcmp(got, want, wn) == 0);
    free(got);

    /* .kdm -> C header */
    snprintf(args, sizeof args, "%s -o %s", kdm, hdr);
    CHECK(run(args) == 0);
    char *text = slurp(hdr, &gn);
    CHECK(text && strstr(text, "#define TEST_EXPORT_MODEL_ARENA_SIZE 8112\n") &&
          strstr(text, "static const unsigned char test_export_model[9616] = {"));
    free(text);
    snprintf(args, sizeof args, "%s -f c --name my_net -o %s", kdm, hdr);
    CHECK(run(args) == 0);
    text = slurp(hdr, &gn);
    CHECK(text && strstr(text, "#define MY_NET_SIZE 9616\n") && strstr(text, "my_net[9616]"));
    free(text);

    /* errors */
    CHECK(run("--help") == 0);
    CHECK(run(int8p) == 2);                       /* no -o */
    snprintf(args, sizeof args, "%s -f tflite -o %s", int8p, kdm);
    CHECK(run(args) == 2);
    char bad[512], badout[512];
    snprintf(bad, sizeof bad, "%s/test_export.bad.kdm", KD_BINARY_DIR);
    snprintf(badout, sizeof badout, "%s/test_export.never.kdm", KD_BINARY_DIR);
    remove(badout);
    want[100] ^= 0x10; /* a corrupt file: the checksum catches it */
    CHECK(kd_write_file_atomic(bad, want, wn, &err) == KD_STATUS_OK);
    snprintf(args, sizeof args, "%s -o %s", bad, badout);
    CHECK(run(args) == 1);
    FILE *f = fopen(badout, "rb");
    CHECK(f == NULL);
    if (f) fclose(f);
    snprintf(args, sizeof args, "%s/no_such.kdm -o %s", KD_BINARY_DIR, badout);
    CHECK(run(args) == 1);

    remove(int8p);
    remove(kdm);
    remove(hdr);
    remove(bad);
    free(want);
    kd_int8_free(q);
    kd_dataset_free(&ds);
    kd_model_free(m);
    TEST_DONE();
}
