/* The .npy reader's messages for files a user brings (issue 12 item 10): the wrong number of
 * columns names the file and both counts; an unsupported dtype is quoted whole, escaped and
 * bounded, whatever bytes the header holds. (Reading and writing are tested in test_kd.c.) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/npy.h"
#include "test.h"

/* A version 1.0 .npy with this header dict (len bytes, may hold any byte) and `data` bytes of 0. */
static void write_npy(const char *path, const char *dict, size_t len, size_t data) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    int pad = (int)((64 - (10 + len + 1) % 64) % 64);
    uint16_t hl = (uint16_t)(len + (size_t)pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(hl & 0xff, f);
    fputc(hl >> 8, f);
    fwrite(dict, 1, len, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    for (size_t i = 0; i < data; i++) fputc(0, f);
    fclose(f);
}

static const char *load_error(const char *path, int want_c) {
    static kd_error err;
    float *d = NULL;
    int n = 0, c = 0;
    memset(&err, 0, sizeof err);
    kd_status st = kd_npy_load_logits(path, want_c, &d, &n, &c, &err);
    CHECK_MSG(st == KD_STATUS_BAD_FILE, "%s: status %d", path, st);
    CHECK(d == NULL);
    free(d);
    CHECK_MSG(strstr(err.msg, path) != NULL, "file not named in '%s'", err.msg);
    return err.msg;
}

static int printable(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f) return 0;
    return 1;
}

static void test_columns(void) {
    const char d[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (6, 9), }";
    write_npy("npy_cols.npy", d, sizeof d - 1, 6 * 9 * 4);
    const char *msg = load_error("npy_cols.npy", 10);
    CHECK_MSG(strstr(msg, "npy_cols.npy: logits of shape [6, 9] have 9 columns, expected 10"), "%s", msg);
    float *x = NULL;
    int n = 0, c = 0;
    kd_error err;
    CHECK_MSG(kd_npy_load_logits("npy_cols.npy", 9, &x, &n, &c, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(n == 6 && c == 9);
    free(x);
    CHECK(kd_npy_load_logits("npy_cols.npy", 0, &x, &n, &c, &err) == KD_STATUS_OK); /* 0: any */
    free(x);
    remove("npy_cols.npy");
}

static void test_dtype_messages(void) {
    /* big-endian float32: the whole quoted value, not 8 bytes of it and the next key */
    const char be[] = "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }";
    write_npy("npy_dt.npy", be, sizeof be - 1, 24);
    const char *msg = load_error("npy_dt.npy", 0);
    CHECK_MSG(strstr(msg, "dtype '>f4' is not supported"), "%s", msg);
    /* control bytes and an escape sequence in a structured dtype: escaped, the line stays one line */
    const char st[] = "{'descr': [('a\x01\x1b[31mb\n', '<f4'), ('x', '<i8')], 'fortran_order': False, 'shape': (2, 3), }";
    write_npy("npy_dt.npy", st, sizeof st - 1, 24);
    msg = load_error("npy_dt.npy", 0);
    CHECK_MSG(strstr(msg, "dtype [('a\\x01\\x1b[31mb\\x0a', '<f4'), ('x', '<i8')] is not supported"), "%s", msg);
    CHECK_MSG(printable(msg), "unprintable bytes in '%s'", msg);
    /* a huge descr is cut */
    char big[1200];
    int len = snprintf(big, sizeof big, "{'descr': '");
    for (int i = 0; i < 1000; i++) big[len++] = (char)(0x80 + i % 100);
    len += snprintf(big + len, sizeof big - (size_t)len, "', 'fortran_order': False, 'shape': (2, 3), }");
    write_npy("npy_dt.npy", big, (size_t)len, 24);
    msg = load_error("npy_dt.npy", 0);
    CHECK_MSG(strstr(msg, "dtype '\\x80\\x81") && strstr(msg, "...") && strlen(msg) < 240 && printable(msg), "%s", msg);
    /* no descr at all */
    const char none[] = "{'fortran_order': False, 'shape': (2, 3), }";
    write_npy("npy_dt.npy", none, sizeof none - 1, 24);
    msg = load_error("npy_dt.npy", 0);
    CHECK_MSG(strstr(msg, "dtype (none)"), "%s", msg);
    remove("npy_dt.npy");
}

int main(void) {
    test_columns();
    test_dtype_messages();
    TEST_DONE();
}
