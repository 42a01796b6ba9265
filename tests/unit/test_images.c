/* Image decoders and fitting (src/data/image.c): every decoder case of
 * tests/fixtures/data/images/golden.txt (scripts/fixtures-images.py) decoded to its pixels -- exactly
 * for lossless files, within 2 levels of PIL's decode for JPEG, within 1 level of PyTorch's bilinear
 * F.interpolate for resizing -- and every bad file refused with a message naming it. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "data/image.h"
#include "test.h"

#define FIX KD_SOURCE_DIR "/tests/fixtures/data/images"

static char tmpdir[] = "/tmp/kd_test_images_XXXXXX";

static const char *tmp_file(const char *name, const void *data, size_t n) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
    return path;
}

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *b = malloc(1 << 20);
    *n = fread(b, 1, 1 << 20, f);
    fclose(f);
    return b;
}

/* Each golden line: NAME C H W values... */
static void test_golden(void) {
    FILE *f = fopen(FIX "/golden.txt", "r");
    CHECK(f != NULL);
    if (!f) return;
    char name[256];
    int c, h, w, cases = 0, resized = 0, jpegs = 0;
    uint8_t *want = malloc(1 << 16), *got = malloc(1 << 16);
    while (fscanf(f, "%255s %d %d %d", name, &c, &h, &w) == 4) {
        size_t n = (size_t)c * h * w;
        for (size_t i = 0; i < n; i++) {
            int v;
            if (fscanf(f, "%d", &v) != 1) v = -1;
            want[i] = (uint8_t)v;
        }
        char file[256], path[512], fitname[32] = "";
        int tol = 0;
        kd_image_fit fit = KD_IMAGE_FIT_STRETCH;
        if (!strncmp(name, "resize:", 7)) {
            int oh, ow;
            char *p = strchr(name + 7, ':');
            snprintf(file, sizeof file, "%.*s", (int)(p - name - 7), name + 7);
            CHECK(sscanf(p + 1, "%31[a-z]:%d:%d", fitname, &oh, &ow) == 3 && oh == h && ow == w);
            fit = !strcmp(fitname, "crop") ? KD_IMAGE_FIT_CROP : !strcmp(fitname, "pad") ? KD_IMAGE_FIT_PAD
                                                                                         : KD_IMAGE_FIT_STRETCH;
            tol = 1;
            resized++;
        } else if (strchr(name, ':')) {
            snprintf(file, sizeof file, "%s", strchr(name, ':') + 1); /* grey-of:, rgb-of: */
        } else {
            snprintf(file, sizeof file, "%s", name);
        }
        if (strstr(file, ".jp") || !strcmp(file, "jpeg-named.png")) tol = 2, jpegs++;
        snprintf(path, sizeof path, FIX "/decode/%s", file);
        kd_error err = {0};
        memset(got, 0xaa, n);
        kd_status st = kd_image_load(path, c, h, w, fit, got, &err);
        CHECK_MSG(st == KD_STATUS_OK, "%s: %s", name, err.msg);
        int worst = 0;
        size_t at = 0;
        for (size_t i = 0; i < n; i++) {
            int d = abs((int)got[i] - (int)want[i]);
            if (d > worst) worst = d, at = i;
        }
        CHECK_MSG(worst <= tol, "%s: pixel %zu is %d, want %d (max error %d allowed)", name, at, got[at], want[at], tol);
        /* The header alone gives the size and channels of an unconverted decode. */
        int pc, ph, pw;
        if (!tol && !strchr(name, ':')) {
            CHECK_MSG(kd_image_probe(path, &pc, &ph, &pw, &err) == KD_STATUS_OK && pc == c && ph == h && pw == w,
                      "%s: probe gives %dx%dx%d", name, pc, ph, pw);
        }
        cases++;
    }
    fclose(f);
    free(want);
    free(got);
    printf("golden: %d cases (%d resized, %d JPEG)\n", cases, resized, jpegs);
    CHECK(cases >= 36 && resized >= 14 && jpegs >= 3);
}

/* path's load fails, and the message names path and holds `needle`. */
static void expect_bad(const char *path, int c, int h, int w, const char *needle) {
    uint8_t *out = malloc((size_t)c * h * w);
    kd_error err = {0};
    kd_status st = kd_image_load(path, c, h, w, KD_IMAGE_FIT_CROP, out, &err);
    CHECK_MSG(st != KD_STATUS_OK, "%s: accepted (want '%s')", path, needle);
    CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, needle) && !strchr(err.msg, '\n'), "%s: message '%s' (want '%s')",
              path, err.msg, needle);
    free(out);
}

static void expect_probe_bad(const char *path, const char *needle) {
    int c, h, w;
    kd_error err = {0};
    CHECK_MSG(kd_image_probe(path, &c, &h, &w, &err) != KD_STATUS_OK && strstr(err.msg, path) && strstr(err.msg, needle),
              "%s: probe message '%s' (want '%s')", path, err.msg, needle);
}

static void test_bad_files(void) {
    size_t n;
    uint8_t *png = read_all(FIX "/decode/rgb.png", &n);
    CHECK(png && n > 100);
    const char *p = tmp_file("cut.png", png, n - 40);
    expect_bad(p, 3, 10, 12, "corrupt PNG (libpng: ");
    uint8_t bad[64];
    memcpy(bad, png, 33);
    bad[16] = bad[17] = 0, bad[18] = 0x4e, bad[19] = 0x20; /* width 20000 */
    p = tmp_file("wide.png", bad, 33);
    expect_probe_bad(p, "out of range");
    expect_bad(p, 3, 10, 12, "PNG");
    memset(bad + 16, 0, 4); /* width 0 */
    p = tmp_file("zero.png", bad, 33);
    expect_probe_bad(p, "0x10 pixels");
    free(png);

    uint8_t *jpg = read_all(FIX "/decode/rgb.jpg", &n);
    CHECK(jpg && n > 200);
    jpg[2] = 0xff, jpg[3] = 0x00; /* the APP0 marker broken */
    p = tmp_file("marker.jpg", jpg, n);
    expect_bad(p, 3, 10, 12, "corrupt JPEG (libjpeg: ");
    free(jpg);
    jpg = read_all(FIX "/decode/rgb.jpg", &n);
    p = tmp_file("cut.jpg", jpg, n / 2);
    expect_bad(p, 3, 10, 12, "corrupt JPEG (libjpeg: ");
    free(jpg);
    expect_bad(FIX "/decode/cmyk.jpg", 3, 10, 12, "CMYK JPEG is not supported");
    expect_probe_bad(FIX "/decode/cmyk.jpg", "CMYK");

    p = tmp_file("maxval0.ppm", "P6\n2 2\n0\n............", 22);
    expect_bad(p, 3, 2, 2, "maxval 0 is out of range");
    p = tmp_file("cut.pgm", "P5 4 4 255\n0123456789", 21);
    expect_bad(p, 1, 4, 4, "PGM ends early (10 of 16 samples)");
    p = tmp_file("big.pgm", "P2\n# c\n3 2\n9\n1 2 3 4 5 10\n", 25);
    expect_bad(p, 1, 2, 3, "sample 5 is 10, above maxval 9");
    p = tmp_file("short.pgm", "P2\n3 2\n9\n1 2 3 x\n", 17);
    expect_bad(p, 1, 2, 3, "sample 3 of 6 is missing");
    p = tmp_file("huge.pgm", "P5\n100000 3\n255\n", 16);
    expect_bad(p, 1, 2, 3, "out of range");

    uint8_t *bmp = read_all(FIX "/decode/bottom-up.bmp", &n);
    CHECK(bmp && n > 54);
    bmp[30] = 1; /* BI_RLE8 */
    p = tmp_file("rle.bmp", bmp, n);
    expect_bad(p, 3, 10, 12, "RLE-compressed BMP is not supported");
    bmp[30] = 0;
    bmp[18] = 0xff, bmp[19] = 0xff, bmp[20] = 0xff, bmp[21] = 0x0f; /* width 268435455 */
    p = tmp_file("huge.bmp", bmp, n);
    expect_bad(p, 3, 10, 12, "out of range");
    expect_probe_bad(p, "out of range");
    bmp[18] = 12, bmp[19] = bmp[20] = bmp[21] = 0;
    p = tmp_file("cut.bmp", bmp, n - 10);
    expect_bad(p, 3, 10, 12, "BMP ends early");
    bmp[28] = 16;
    p = tmp_file("bits16.bmp", bmp, n);
    expect_bad(p, 3, 10, 12, "16 bits per pixel");
    free(bmp);

    p = tmp_file("text.png", "hello, I am text\n", 17);
    expect_bad(p, 3, 10, 12, "not a PNG, JPEG, PGM/PPM or BMP image");
    expect_probe_bad(p, "not a PNG");
    p = tmp_file("empty.jpg", "", 0);
    expect_bad(p, 3, 10, 12, "not a PNG");
    expect_bad(tmpdir, 3, 10, 12, "regular"); /* a directory is no input */
    char missing[600];
    snprintf(missing, sizeof missing, "%s/missing.png", tmpdir);
    expect_bad(missing, 3, 10, 12, "missing.png");
    /* The target shape is checked too. */
    uint8_t o[4];
    kd_error err;
    CHECK(kd_image_load(FIX "/decode/rgb.png", 2, 1, 1, KD_IMAGE_FIT_CROP, o, &err) == KD_STATUS_BAD_ARG);
}

/* Fitting a wide image: crop keeps the middle columns, pad leaves zero rows above and below. */
static void test_fit_geometry(void) {
    const char *p = tmp_file("wide.pgm", "P5\n4 2\n255\n\x0a\x14\x1e\x28\x32\x3c\x46\x50", 19);
    uint8_t o[32];
    kd_error err;
    CHECK(kd_image_load(p, 1, 2, 2, KD_IMAGE_FIT_CROP, o, &err) == KD_STATUS_OK);
    CHECK(o[0] == 20 && o[1] == 30 && o[2] == 60 && o[3] == 70);
    CHECK(kd_image_load(p, 1, 4, 4, KD_IMAGE_FIT_PAD, o, &err) == KD_STATUS_OK);
    CHECK(o[0] == 0 && o[3] == 0 && o[12] == 0 && o[15] == 0 && o[4] == 10 && o[7] == 40 && o[8] == 50 && o[11] == 80);
    CHECK(kd_image_load(p, 3, 2, 4, KD_IMAGE_FIT_STRETCH, o, &err) == KD_STATUS_OK);
    CHECK(o[0] == 10 && o[8] == 10 && o[16 - 1] == 80); /* grey copied into every channel */
}

/* A progressive JPEG of w x h pixels, 3 components at 1x1 sampling, all coefficients zero, with one
 * DC-first scan per component and then, while fewer than max_scans: every valid successive-approximation
 * scan (DC refinements, then per coefficient k one first AC scan and 13 refinements). Every scan's
 * entropy data is one byte (the only Huffman code, '0', padded with ones). Returns its length. */
static size_t progressive_jpeg(uint8_t *b, int w, int h, int max_scans) {
    size_t n = 0;
    static const uint8_t soi[] = {0xff, 0xd8};
    memcpy(b + n, soi, 2), n += 2;
    b[n++] = 0xff, b[n++] = 0xdb, b[n++] = 0, b[n++] = 67, b[n++] = 0; /* DQT: table 0, all ones */
    memset(b + n, 1, 64), n += 64;
    uint8_t sof[] = {0xff, 0xc2, 0, 17, 8, (uint8_t)(h >> 8), (uint8_t)h, (uint8_t)(w >> 8), (uint8_t)w, 3,
                     1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0};
    memcpy(b + n, sof, sizeof sof), n += sizeof sof;
    b[n++] = 0xff, b[n++] = 0xc4, b[n++] = 0, b[n++] = 38; /* DHT: DC 0 and AC 0, one 1-bit code: symbol 0 */
    for (int t = 0; t < 2; t++) {
        b[n++] = (uint8_t)(t << 4), b[n++] = 1;
        memset(b + n, 0, 15), n += 15;
        b[n++] = 0;
    }
    int scans = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int comp = 1; comp <= 3; comp++)
            for (int k = 0; k < 64; k++)
                for (int i = 0; i <= 13; i++) { /* Ah/Al 0/13, then 13/12, 12/11, .. 1/0 */
                    if ((pass == 0) != (k == 0 && i == 0) || scans >= max_scans) continue;
                    uint8_t sos[] = {0xff, 0xda, 0, 8, 1, (uint8_t)comp, 0, (uint8_t)k, (uint8_t)k,
                                     (uint8_t)(i ? (14 - i) << 4 | (13 - i) : 13), 0x7f};
                    memcpy(b + n, sos, sizeof sos), n += sizeof sos;
                    scans++;
                }
    b[n++] = 0xff, b[n++] = 0xd9;
    return n;
}

/* libjpeg's limits: a progressive JPEG within the pixel limits whose coefficients need more than
 * the memory limit, and one with more scans than the scan limit, are refused naming the file. */
static void test_jpeg_limits(void) {
    uint8_t *b = malloc(64 << 10);
    size_t n = progressive_jpeg(b, 8, 8, 40);
    const char *p = tmp_file("prog.jpg", b, n);
    uint8_t *out = malloc(3 * 8 * 8);
    kd_error err = {0};
    CHECK_MSG(kd_image_load(p, 3, 8, 8, KD_IMAGE_FIT_CROP, out, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(out[0] == 128 && out[3 * 8 * 8 - 1] == 128); /* all coefficients zero: mid grey */
    free(out);
    n = progressive_jpeg(b, 8192, 8192, 3); /* 8192 x 8192 x 3 coefficients: 384 MB */
    p = tmp_file("huge.jpg", b, n);
    expect_bad(p, 3, 8, 8, "memory");
    n = progressive_jpeg(b, 8, 8, 1200);
    p = tmp_file("scans.jpg", b, n);
    expect_bad(p, 3, 8, 8, "more than 1000 scans");
    free(b);
}

int main(void) {
    if (!mkdtemp(tmpdir)) return 1;
    test_golden();
    test_bad_files();
    test_jpeg_limits();
    test_fit_geometry();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) fprintf(stderr, "cannot remove %s\n", tmpdir);
    TEST_DONE();
}
