/* The bounded YAML loader every YAML reader goes through (src/format/yaml_doc.c), seen through the
 * model reader: hostile nesting and sizes are refused at once with the file and line, encoding
 * errors are reported at their real line, unknown top-level keys are errors, and a FIFO is
 * refused instead of blocking (issue 12 items 6, 9, 10). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "distill/model.h"
#include "distill/yaml_doc.h"
#include "test.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Build a model from text[0..len) written to `path` (so NUL bytes reach the reader); the error
 * must hold both needles; returns the seconds it took. */
static double expect_file_error(const char *path, const char *text, size_t len, const char *n1, const char *n2) {
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(text, 1, len, f) == len);
    if (f) fclose(f);
    kd_model *m = NULL;
    kd_error err = {0};
    double t0 = now();
    kd_status st = kd_model_create(&m, path, 1, &err);
    double dt = now() - t0;
    CHECK_MSG(st != KD_STATUS_OK && !m, "%s was accepted", path);
    CHECK_MSG(strstr(err.msg, n1) && (!n2 || strstr(err.msg, n2)), "%s: '%s' / '%s' not in: %s", path, n1,
              n2 ? n2 : "", err.msg);
    CHECK_MSG(!strchr(err.msg, '?') || strstr(err.msg, "did you"), "%s: a '?' in: %s", path, err.msg);
    kd_model_free(m);
    remove(path);
    return dt;
}

/* 200,000 levels of nesting (flow and block) and a list of 3 million items: each refused in well
 * under a second, naming the file and line; libyaml alone took over 60 s and 2.7 GB. */
static void test_bounds(void) {
    const size_t depth = 200000, items = 3000000;
    const char *head = "name: x\ninput: ";
    size_t h = strlen(head);
    char *t = malloc(h + 2 * items + 16);
    CHECK(t != NULL);
    if (!t) return;
    memcpy(t, head, h);
    for (size_t i = 0; i < depth; i++) t[h + i] = '[', t[h + depth + i] = ']';
    t[h + 2 * depth] = '\n';
    double dt = expect_file_error("yaml_deep.yaml", t, h + 2 * depth + 1, "yaml_deep.yaml:2:", "nested deeper than 64");
    CHECK_MSG(dt < 2.0, "200,000 nested lists took %.2f s", dt);
    for (size_t i = 0; i < depth; i++) t[2 * i] = '-', t[2 * i + 1] = ' ';
    t[2 * depth] = 'x';
    dt = expect_file_error("yaml_deep2.yaml", t, 2 * depth + 1, "yaml_deep2.yaml:1:", "nested deeper than 64");
    CHECK_MSG(dt < 2.0, "200,000 nested block lists took %.2f s", dt);
    size_t n = h;
    memcpy(t, head, h);
    t[n++] = '[';
    for (size_t i = 0; i < items; i++) t[n++] = '1', t[n++] = ',';
    t[n - 1] = ']';
    t[n++] = '\n';
    dt = expect_file_error("yaml_list.yaml", t, n, "yaml_list.yaml:2:", "more than 262144 YAML nodes");
    CHECK_MSG(dt < 2.0, "a list of 3 million items took %.2f s", dt);
    free(t);
    /* a file over the size bound is refused before it is read */
    FILE *f = fopen("yaml_big.yaml", "wb");
    CHECK(f && fseek(f, KD_YAML_MAX_BYTES, SEEK_SET) == 0 && fputc('\n', f) == '\n');
    if (f) fclose(f);
    kd_model *m = NULL;
    kd_error err = {0};
    CHECK(kd_model_create(&m, "yaml_big.yaml", 1, &err) != KD_STATUS_OK && !m);
    CHECK_MSG(strstr(err.msg, "yaml_big.yaml") && strstr(err.msg, "more than a YAML file may have"), "%s", err.msg);
    remove("yaml_big.yaml");
}

/* Encoding errors at the line and column they are on (libyaml gives a byte offset), not line 1. */
static void test_encoding(void) {
    static const char utf8[] = "name: x\ninput: [1, 8, 8]\nlayers:\n  - {type: relu, name: \xff}\n";
    expect_file_error("yaml_utf8.yaml", utf8, sizeof utf8 - 1, "yaml_utf8.yaml: YAML error at line 4, column 24",
                      "UTF-8");
    static const char nul[] = "name: x\ninput: [1, 8, 8]\n\0layers:\n  - {type: relu}\n";
    expect_file_error("yaml_nul.yaml", nul, sizeof nul - 1, "yaml_nul.yaml: YAML error at line 3, column 1",
                      "0x00");
}

/* The docs say an unknown key is an error: at the top level too. */
static void test_top_level_keys(void) {
    static const char typo[] = "name: x\ninput: [1, 8, 8]\nlayer:\n  - {type: relu}\nlayers:\n  - {type: flatten}\n";
    expect_file_error("yaml_top.yaml", typo, sizeof typo - 1, "yaml_top.yaml:3:", "unknown key 'layer'");
    static const char extra[] = "name: x\ninput: [1, 8, 8]\nlayers:\n  - {type: flatten}\noptimizer: sgd\n";
    expect_file_error("yaml_top2.yaml", extra, sizeof extra - 1, "yaml_top2.yaml:5:", "unknown key 'optimizer'");
    kd_model *m = NULL;
    kd_error err;
    CHECK_MSG(kd_model_from_yaml(&m, "name: x\ninput: [1, 8, 8]\nlayers:\n  - {type: flatten}\n", "ok.yaml", 1, &err) ==
                  KD_STATUS_OK, "%s", err.msg);
    kd_model_free(m);
}

/* A FIFO as the model file is refused at once (it would block forever). */
static void test_fifo(void) {
    remove("yaml_fifo.yaml");
    CHECK(mkfifo("yaml_fifo.yaml", 0600) == 0);
    kd_model *m = NULL;
    kd_error err = {0};
    CHECK(kd_model_create(&m, "yaml_fifo.yaml", 1, &err) != KD_STATUS_OK && !m);
    CHECK_MSG(strstr(err.msg, "yaml_fifo.yaml") && strstr(err.msg, "FIFO"), "%s", err.msg);
    remove("yaml_fifo.yaml");
}

int main(void) {
    test_bounds();
    test_encoding();
    test_top_level_keys();
    test_fifo();
    TEST_DONE();
}
