/* IDX data sets: correct loading of raw and gzip files, every malformed-file error path (each must
 * name the file and never crash or allocate absurd amounts), the validation split, and batching
 * with normalisation and augmentation. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "distill/data.h"
#include "test.h"

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16); p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}

/* Write an IDX file: type, dims, payload (len bytes); gz = gzip-compressed. */
static void write_idx(const char *path, int type, int ndim, const uint32_t *dims, const void *payload, size_t len, int gz) {
    unsigned char hdr[4 + 16] = {0, 0, (unsigned char)type, (unsigned char)ndim};
    for (int i = 0; i < ndim; i++) put_be32(hdr + 4 + 4 * i, dims[i]);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        gzwrite(f, hdr, (unsigned)(4 + 4 * ndim));
        if (len) gzwrite(f, payload, (unsigned)len);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(hdr, 1, (size_t)(4 + 4 * ndim), f);
        if (len) fwrite(payload, 1, len, f);
        fclose(f);
    }
}

static uint8_t pix[5 * 4 * 3];
static uint8_t lab[5] = {0, 3, 1, 3, 2};

static void write_good(const char *img, const char *lbl, int gz) {
    uint32_t di[3] = {5, 4, 3}, dl[1] = {5};
    write_idx(img, 8, 3, di, pix, sizeof pix, gz);
    write_idx(lbl, 8, 1, dl, lab, sizeof lab, gz);
}

static void expect(kd_status want, const char *img, const char *lbl, const char *needle, const char *file) {
    kd_dataset ds;
    kd_error err = {0};
    kd_status st = kd_dataset_load_idx(&ds, img, lbl, &err);
    CHECK_MSG(st == want, "%s: status %d, wanted %d (%s)", needle, st, want, err.msg);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "'%s' not in '%s'", needle, err.msg);
    CHECK_MSG(strstr(err.msg, file) != NULL, "file %s not named in '%s'", file, err.msg);
    if (st == KD_STATUS_OK) kd_dataset_free(&ds);
}

static void test_load(void) {
    for (size_t i = 0; i < sizeof pix; i++) pix[i] = (uint8_t)(i * 7);
    for (int gz = 0; gz < 2; gz++) {
        write_good("idx_img", "idx_lbl", gz);
        kd_dataset ds;
        kd_error err;
        CHECK_MSG(kd_dataset_load_idx(&ds, "idx_img", "idx_lbl", &err) == KD_STATUS_OK, "%s", err.msg);
        CHECK(ds.n == 5 && ds.c == 1 && ds.h == 4 && ds.w == 3 && ds.n_classes == 4);
        CHECK(memcmp(ds.pixels, pix, sizeof pix) == 0);
        CHECK(ds.labels[1] == 3 && ds.labels[4] == 2);
        double m = 0;
        for (size_t i = 0; i < sizeof pix; i++) m += pix[i] / 255.0;
        CHECK_NEAR(ds.mean, m / sizeof pix, 1e-6);
        kd_dataset_free(&ds);
        kd_dataset_free(&ds); /* idempotent */
    }
}

static void test_errors(void) {
    write_good("idx_img", "idx_lbl", 0);
    expect(KD_STATUS_NOT_FOUND, "idx_missing", "idx_lbl", "no such file", "idx_missing");
    uint32_t di[3] = {5, 4, 3}, dl[1] = {5};
    /* wrong magic */
    FILE *f = fopen("idx_magic", "wb");
    fputs("GIF89a this is not an IDX file", f);
    fclose(f);
    expect(KD_STATUS_BAD_FILE, "idx_magic", "idx_lbl", "not an IDX file", "idx_magic");
    /* float32 element type */
    write_idx("idx_f32", 0x0D, 3, di, pix, sizeof pix, 0);
    expect(KD_STATUS_BAD_FILE, "idx_f32", "idx_lbl", "float32", "idx_f32");
    /* truncated raw, truncated gzip payload, header cut inside the dimensions */
    write_idx("idx_trunc", 8, 3, di, pix, sizeof pix - 7, 0);
    expect(KD_STATUS_BAD_FILE, "idx_trunc", "idx_lbl", "truncated", "idx_trunc");
    write_idx("idx_trunc.gz", 8, 3, di, pix, sizeof pix - 7, 1);
    expect(KD_STATUS_BAD_FILE, "idx_trunc.gz", "idx_lbl", "truncated", "idx_trunc.gz");
    f = fopen("idx_short", "wb");
    fwrite("\0\0\x08\x03\0\0", 1, 6, f);
    fclose(f);
    expect(KD_STATUS_BAD_FILE, "idx_short", "idx_lbl", "truncated", "idx_short");
    /* huge declared dimensions in a tiny file: refused before allocating */
    uint32_t huge[3] = {100000, 100000, 100000};
    write_idx("idx_huge", 8, 3, huge, pix, sizeof pix, 0);
    expect(KD_STATUS_BAD_FILE, "idx_huge", "idx_lbl", "2^31", "idx_huge");
    uint32_t big[3] = {60000, 28, 28};
    write_idx("idx_big", 8, 3, big, pix, sizeof pix, 0);
    expect(KD_STATUS_BAD_FILE, "idx_big", "idx_lbl", "truncated", "idx_big");
    uint32_t zero[3] = {5, 0, 3};
    write_idx("idx_zero", 8, 3, zero, pix, sizeof pix, 0);
    expect(KD_STATUS_BAD_FILE, "idx_zero", "idx_lbl", "dimension 1 is 0", "idx_zero");
    /* corrupt gzip: flip bytes in the middle of the compressed stream */
    uint8_t many[4000];
    for (size_t i = 0; i < sizeof many; i++) many[i] = (uint8_t)(i * 31 + (i >> 3));
    uint32_t dm[3] = {40, 10, 10};
    write_idx("idx_corrupt.gz", 8, 3, dm, many, sizeof many, 1);
    f = fopen("idx_corrupt.gz", "r+b");
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    for (long off = sz / 3; off < sz / 3 + 16; off++) {
        fseek(f, off, SEEK_SET);
        fputc(0x5a, f);
    }
    fclose(f);
    uint8_t l40[40] = {0};
    write_idx("idx_l40", 8, 1, (uint32_t[]){40}, l40, 40, 0);
    {
        kd_dataset ds;
        kd_error err = {0};
        kd_status st = kd_dataset_load_idx(&ds, "idx_corrupt.gz", "idx_l40", &err);
        CHECK_MSG(st == KD_STATUS_BAD_FILE, "corrupt gzip: status %d (%s)", st, err.msg);
        CHECK(strstr(err.msg, "idx_corrupt.gz") != NULL);
        if (!st) kd_dataset_free(&ds);
    }
    /* counts differ; labels with 3 dimensions */
    uint32_t d4[1] = {4};
    write_idx("idx_lbl4", 8, 1, d4, lab, 4, 0);
    expect(KD_STATUS_BAD_FILE, "idx_img", "idx_lbl4", "5 images", "idx_lbl4");
    write_idx("idx_lbl3d", 8, 3, di, pix, sizeof pix, 0);
    expect(KD_STATUS_BAD_FILE, "idx_img", "idx_lbl3d", "dimensions", "idx_lbl3d");
    (void)dl;
    /* named data sets */
    kd_dataset ds;
    kd_error err;
    CHECK(kd_dataset_load(&ds, "/nonexistent-dir", "train", &err) == KD_STATUS_NOT_FOUND);
    CHECK(strstr(err.msg, "/nonexistent-dir") != NULL);
    CHECK(kd_dataset_load(&ds, "fashion-mnist", "validation", &err) == KD_STATUS_BAD_ARG);
    const char *tmp[] = {"idx_img", "idx_lbl", "idx_magic", "idx_f32", "idx_trunc", "idx_trunc.gz", "idx_short",
                         "idx_huge", "idx_big", "idx_zero", "idx_corrupt.gz", "idx_l40", "idx_lbl4", "idx_lbl3d"};
    for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++) remove(tmp[i]);
}

static void test_split_and_batch(void) {
    /* 100 images of 4x4 whose first pixel is the index: the split must be a permutation */
    uint8_t p[100 * 16];
    uint8_t l[100];
    for (int i = 0; i < 100; i++) {
        for (int k = 0; k < 16; k++) p[i * 16 + k] = (uint8_t)(k == 0 ? i : 10 * k);
        l[i] = (uint8_t)(i % 10);
    }
    write_idx("idx_p", 8, 3, (uint32_t[]){100, 4, 4}, p, sizeof p, 0);
    write_idx("idx_l", 8, 1, (uint32_t[]){100}, l, sizeof l, 0);
    kd_dataset ds, val;
    kd_error err;
    CHECK(kd_dataset_load_idx(&ds, "idx_p", "idx_l", &err) == KD_STATUS_OK);
    CHECK(kd_dataset_split(&ds, &val, 30, 5, &err) == KD_STATUS_OK);
    CHECK(ds.n == 70 && val.n == 30);
    int seen[100] = {0};
    for (int i = 0; i < ds.n; i++) {
        seen[ds.pixels[i * 16]]++;
        CHECK(kd_dataset_orig_index(&ds, i) == ds.pixels[i * 16]);
        CHECK(ds.labels[i] == ds.pixels[i * 16] % 10);
    }
    for (int i = 0; i < val.n; i++) {
        seen[val.pixels[i * 16]]++;
        CHECK(kd_dataset_orig_index(&val, i) == val.pixels[i * 16]);
    }
    int perm = 1;
    for (int i = 0; i < 100; i++) perm &= seen[i] == 1;
    CHECK(perm);
    CHECK(kd_dataset_split(&ds, &val, 70, 5, &err) == KD_STATUS_BAD_ARG);
    /* batch: normalisation exact, translate 0 is the identity, translation shifts, flip mirrors */
    int32_t idx[1] = {3}, y[1];
    float x[16], x2[16];
    kd_batch_fill(x, y, &ds, idx, 1, NULL, NULL);
    const uint8_t *src = ds.pixels + 3 * 16;
    for (int k = 0; k < 16; k++) CHECK_NEAR(x[k], (src[k] / 255.f - ds.mean) / ds.std, 1e-6);
    CHECK(y[0] == ds.labels[3]);
    kd_rng r;
    kd_rng_seed(&r, 1, 2);
    kd_augment none = {0, 0};
    kd_batch_fill(x2, y, &ds, idx, 1, &none, &r);
    CHECK(memcmp(x, x2, sizeof x) == 0);
    kd_augment flip = {0, 1};
    int flipped = 0, same = 0;
    for (int t = 0; t < 20; t++) {
        kd_batch_fill(x2, y, &ds, idx, 1, &flip, &r);
        if (memcmp(x, x2, sizeof x) == 0) same++;
        else if (x2[3] == x[0] && x2[0] == x[3] && x2[7] == x[4]) flipped++;
    }
    CHECK(flipped > 3 && same > 3 && flipped + same == 20);
    kd_augment shift = {1, 0};
    int moved = 0;
    float bg = (0.f - ds.mean) / ds.std;
    for (int t = 0; t < 30; t++) {
        kd_batch_fill(x2, y, &ds, idx, 1, &shift, &r);
        /* find where pixel (0,0) went: it must be at (dy, dx) in [-1, 1] with background fill */
        int found = 0;
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                int ok = 1;
                for (int yy = 0; yy < 4; yy++)
                    for (int xx = 0; xx < 4; xx++) {
                        int sy = yy - dy, sx = xx - dx;
                        float want = (sy >= 0 && sy < 4 && sx >= 0 && sx < 4) ? x[sy * 4 + sx] : bg;
                        if (x2[yy * 4 + xx] != want) ok = 0;
                    }
                found |= ok;
                if (ok && (dx || dy)) moved++;
            }
        CHECK(found);
    }
    CHECK(moved > 10);
    kd_dataset_free(&ds);
    kd_dataset_free(&val);
    remove("idx_p");
    remove("idx_l");
}

static void test_fashion_mnist(void) {
    kd_dataset ds;
    kd_error err;
    if (kd_dataset_load(&ds, "fashion-mnist", "test", &err) != KD_STATUS_OK) {
        printf("note: %s (skipping the real-data check)\n", err.msg);
        return;
    }
    CHECK(ds.n == 10000 && ds.h == 28 && ds.w == 28 && ds.c == 1 && ds.n_classes == 10);
    CHECK(ds.mean > 0.27f && ds.mean < 0.30f && ds.std > 0.33f && ds.std < 0.37f);
    kd_dataset_free(&ds);
}

int main(void) {
    test_load();
    test_errors();
    test_split_and_batch();
    test_fashion_mnist();
    TEST_DONE();
}
