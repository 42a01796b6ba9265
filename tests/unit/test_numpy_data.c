/* NumPy data sets (src/data/numpy_data.c, src/format/npz.c, the shared .npy header parser): .npz
 * stored and compressed, "X.npy,Y.npy" split stratified (complementary splits), four files with
 * big-endian labels, channels-last images moved to channels-first, N,F tables, and every error path
 * with its message (file, index). Fixtures: scripts/fixtures-arrays.py. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/data.h"
#include "distill/npy.h"
#include "distill/npz.h"
#include "test.h"

#define FIX KD_SOURCE_DIR "/tests/fixtures/data/numpy/"

static kd_status load(kd_dataset *ds, const char *spec, const char *split, kd_error *err) {
    kd_data_opts o = kd_data_opts_default();
    return kd_dataset_load_ex(ds, spec, split, &o, err);
}

static float f32(const kd_dataset *ds, size_t i) {
    float v;
    memcpy(&v, ds->pixels + 4 * i, 4);
    return v;
}

static void test_npz_images(void) {
    kd_dataset ds;
    kd_error err = {0};
    for (int t = 0; t < 2; t++) {
        kd_status st = load(&ds, FIX "img.npz", t ? "test" : "train", &err);
        CHECK_MSG(st == KD_STATUS_OK, "%s", err.msg);
        if (st) return;
        int n = t ? 3 : 6, n0 = t ? 6 : 0, bad = 0;
        CHECK(ds.n == n && ds.c == 3 && ds.h == 8 && ds.w == 8 && ds.type == KD_DATA_U8 && ds.n_classes == 3);
        /* NHWC value ((n0+i)*192 + (y*8+x)*3 + c) % 256 lands at NCHW [i][c][y*8+x] */
        for (int i = 0; i < n; i++)
            for (int c = 0; c < 3; c++)
                for (int p = 0; p < 64; p++)
                    bad += ds.pixels[(size_t)i * 192 + (size_t)c * 64 + (size_t)p] != ((n0 + i) * 192 + p * 3 + c) % 256;
        CHECK_MSG(bad == 0, "%d pixels differ", bad);
        CHECK(t ? ds.labels[0] == 2 && ds.labels[2] == 0 : ds.labels[4] == 1 && ds.labels[5] == 2);
        kd_dataset_free(&ds);
    }
}

static void test_npz_table(const char *file) {
    kd_dataset ds;
    kd_error err = {0};
    kd_status st = load(&ds, file, "test", &err); /* deflate-compressed members */
    CHECK_MSG(st == KD_STATUS_OK, "%s: %s", file, err.msg);
    if (st) return;
    CHECK(ds.n == 4 && ds.c == 5 && ds.h == 1 && ds.w == 1 && ds.type == KD_DATA_F32);
    CHECK_MSG(ds.n_classes == 4, "classes %d: 1 + the max over train and test labels", ds.n_classes);
    CHECK(f32(&ds, 0) == 10.f && f32(&ds, 3 * 5 + 4) == 13.5f && ds.labels[3] == 3);
    kd_dataset_free(&ds);
    st = load(&ds, file, "train", &err); /* labels of shape (N, 1), uint8 */
    CHECK_MSG(st == KD_STATUS_OK && ds.n == 10 && ds.n_classes == 4 && ds.labels[9] == 1, "%s", err.msg);
    if (!st) kd_dataset_free(&ds);
}

static void test_pair_split(void) {
    kd_dataset tr, te;
    kd_error err = {0};
    kd_status a = load(&tr, FIX "X.npy," FIX "Y.npy", "train", &err);
    CHECK_MSG(a == KD_STATUS_OK, "%s", err.msg);
    kd_status b = load(&te, FIX "X.npy," FIX "Y.npy", "test", &err);
    CHECK_MSG(b == KD_STATUS_OK, "%s", err.msg);
    if (a || b) return;
    CHECK(tr.c == 3 && tr.type == KD_DATA_F32 && tr.n_classes == 4 && te.n_classes == 4);
    CHECK_MSG(tr.n + te.n == 20 && te.n == 4, "train %d test %d (20 samples, 1 of each class of 5 in test)", tr.n, te.n);
    int seen[20] = {0};
    for (int i = 0; i < tr.n; i++) seen[kd_dataset_orig_index(&tr, i)]++;
    for (int i = 0; i < te.n; i++) seen[kd_dataset_orig_index(&te, i)]++;
    int ok = 1;
    for (int i = 0; i < 20; i++) ok &= seen[i] == 1;
    CHECK_MSG(ok, "the splits are not complementary");
    int cls[4] = {0};
    for (int i = 0; i < te.n; i++) {
        int o = kd_dataset_orig_index(&te, i);
        cls[te.labels[i]]++;
        CHECK(te.labels[i] == o % 4 && f32(&te, 3 * (size_t)i + 2) == (float)(3 * o + 2)); /* float64 -> float32 */
    }
    CHECK(cls[0] == 1 && cls[1] == 1 && cls[2] == 1 && cls[3] == 1);
    kd_dataset_free(&tr);
    kd_dataset_free(&te);
}

static void test_four_files(void) {
    kd_dataset ds;
    kd_error err = {0};
    const char *spec = FIX "xtr.npy," FIX "ytr.npy," FIX "xte.npy," FIX "yte.npy";
    kd_status st = load(&ds, spec, "test", &err);
    CHECK_MSG(st == KD_STATUS_OK, "%s", err.msg);
    if (st) return;
    CHECK(ds.n == 2 && ds.c == 1 && ds.h == 6 && ds.w == 5 && ds.type == KD_DATA_U8);
    CHECK_MSG(ds.n_classes == 5 && ds.labels[1] == 4 && ds.labels[0] == 1, "big-endian labels: %d classes", ds.n_classes);
    CHECK(ds.pixels[0] == 120 && ds.pixels[59] == (5 * 30 + 29) % 256);
    kd_dataset_free(&ds);
    st = load(&ds, FIX "nchw.npy," FIX "nchw_y.npy," FIX "nchw.npy," FIX "nchw_y.npy", "train", &err);
    CHECK_MSG(st == KD_STATUS_OK && ds.c == 3 && ds.h == 4 && ds.w == 5 && f32(&ds, 77) == 77.f, "NCHW kept: %s", err.msg);
    if (!st) kd_dataset_free(&ds);
}

static void expect_fail_split(const char *spec, const char *split, const char *needle) {
    kd_dataset ds;
    kd_error err = {0};
    kd_status st = load(&ds, spec, split, &err);
    CHECK_MSG(st != KD_STATUS_OK, "%s loaded", spec);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "'%s' not in '%s'", needle, err.msg);
    CHECK_MSG(ds.pixels == NULL && ds.labels == NULL && ds.n == 0, "ds not zeroed");
    if (!st) kd_dataset_free(&ds);
}

static void expect_fail(const char *spec, const char *needle) { expect_fail_split(spec, "train", needle); }

static void test_errors(void) {
    const char *x = FIX "X.npy", *y = FIX "Y.npy";
    char s[1024];
#define PAIR(a, b) (snprintf(s, sizeof s, "%s,%s", a, b), s)
    expect_fail(PAIR(FIX "bad-nan.npy", FIX "bad-neg.npy"), "bad-neg.npy: label -1 at index 2 is out of range");
    expect_fail(PAIR(FIX "bad-nan.npy", y), "has 4 samples but");
    expect_fail(PAIR(FIX "bad-nan.npy", FIX "nchw_y.npy" ",x"), "NumPy data is");
    snprintf(s, sizeof s, "%s,%s,%s,%s", FIX "bad-nan.npy", FIX "ytr.npy", x, y);
    expect_fail(s, "bad-nan.npy: NaN or inf (or a value beyond float32) in sample 2 at flat index 7");
    snprintf(s, sizeof s, "%s,%s,%s,%s", FIX "bad-fortran.npy", FIX "ytr.npy", x, y);
    expect_fail(s, "bad-fortran.npy: Fortran-ordered arrays are not read");
    expect_fail(PAIR(x, FIX "bad-floaty.npy"), "bad-floaty.npy: labels must be integers, dtype '<f4' is not");
    snprintf(s, sizeof s, "%s,%s,%s,%s", FIX "bad-i16x.npy", FIX "ytr.npy", x, y);
    expect_fail(s, "bad-i16x.npy: dtype '<i2' is not read: samples must be uint8");
    expect_fail(PAIR(x, FIX "xtr.npy"), "xtr.npy: labels must have shape (N) or (N, 1)");
    expect_fail(FIX "bad-missing.npz", "bad-missing.npz: no member y_test");
    expect_fail_split(FIX "bad-crc.npz", "test", "bad-crc.npz: member x_test.npy: CRC-32 mismatch");
    expect_fail(FIX "bad-bzip2.npz", "uses zip compression method 12");
    expect_fail(FIX "header.npz", "header.npz");
    expect_fail(FIX "X.npy", "X.npy: a .npy of samples needs its labels: X.npy,Y.npy");
}

/* A .npz whose central directory claims a huge member: refused before allocating. */
static void test_npz_sizes(void) {
    FILE *f = fopen(FIX "tab.npz", "rb");
    static unsigned char b[4096];
    size_t n = f ? fread(b, 1, sizeof b, f) : 0;
    if (f) fclose(f);
    CHECK(n > 100);
    unsigned char *cd = NULL;
    for (size_t i = 0; i + 4 < n; i++)
        if (!memcmp(b + i, "PK\1\2", 4)) { cd = b + i; break; }
    CHECK(cd != NULL);
    if (!cd) return;
    memset(cd + 24, 0x7f, 4); /* uncompressed size of the first member: ~2 GB */
    const char *p = "npz_huge.npz";
    f = fopen(p, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
    kd_npz *z;
    kd_error err = {0};
    kd_status st = kd_npz_open(p, &z, &err);
    CHECK_MSG(st == KD_STATUS_OK, "%s", err.msg);
    if (st) return;
    unsigned char *d;
    size_t len;
    st = kd_npz_read(z, "x_train", 1 << 20, &d, &len, &err);
    CHECK_MSG(st != KD_STATUS_OK && strstr(err.msg, "more than the 0.00 GB allowed"), "%s", err.msg);
    st = kd_npz_read(z, "x_train", (size_t)1 << 40, &d, &len, &err);
    CHECK_MSG(st != KD_STATUS_OK && strstr(err.msg, "compressed"), "a 2 GB claim from a few bytes: %s", err.msg);
    kd_npz_close(z);
    remove(p);
    /* truncated: the central directory is cut off */
    f = fopen(p, "wb");
    fwrite(b, 1, n - 30, f);
    fclose(f);
    st = kd_npz_open(p, &z, &err);
    CHECK_MSG(st != KD_STATUS_OK && strstr(err.msg, "npz_huge.npz"), "%s", err.msg);
    if (!st) kd_npz_close(z);
    remove(p);
}

/* The shared header parser reads any dtype and byte order the data readers take. */
static void test_header(void) {
    const char *h = "\x93NUMPY\x01\x00\x46\x00{'descr': '>i8', 'fortran_order': False, 'shape': (3, 1), }          \n";
    unsigned char buf[200];
    memcpy(buf, h, 80);
    for (int i = 0; i < 3; i++) {
        memset(buf + 80 + 8 * i, 0, 8);
        buf[80 + 8 * i + 7] = (unsigned char)(i + 1);
    }
    buf[80 + 16] = 0xff; /* the third: 0xff00..03 big-endian: negative */
    kd_npy_header hd;
    kd_error err = {0};
    kd_status st = kd_npy_parse_header(buf, 104, "t.npy", &hd, &err);
    CHECK_MSG(st == KD_STATUS_OK, "%s", err.msg);
    CHECK(hd.kind == 'i' && hd.item == 8 && hd.big_endian && hd.fortran == 0 && hd.ndim == 2 && hd.dims[0] == 3);
    CHECK(hd.data_off == 80 && kd_npy_count(&hd) == 3);
    CHECK(kd_npy_get_i64(&hd, buf + 80, 1) == 2 && kd_npy_get_i64(&hd, buf + 80, 2) < 0);
}

int main(void) {
    test_npz_images();
    test_npz_table(FIX "tab.npz");
    test_npz_table(FIX "zip64.npz"); /* zip64 end records and extras */
    test_pair_split();
    test_four_files();
    test_errors();
    test_npz_sizes();
    test_header();
    TEST_DONE();
}
