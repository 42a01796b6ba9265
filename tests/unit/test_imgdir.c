/* Image folders (src/data/imgdir.c) on tests/fixtures/data/images (scripts/fixtures-images.py):
 * both layouts, val/ for test/, classes and labels in bytewise order, the channels and size learnt
 * from the files or given, the seeded stratified split of one tree (complementary, per class, the
 * seed changes it), and every error path with its message; skip_bad counts and notes. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "distill/data.h"
#include "test.h"

#define FIX KD_SOURCE_DIR "/tests/fixtures/data/images"

static char tmpdir[] = "/tmp/kd_test_imgdir_XXXXXX";

static const char *at(const char *rel) {
    static char path[4][512];
    static int k;
    char *p = path[k++ & 3];
    snprintf(p, sizeof path[0], "%s/%s", tmpdir, rel);
    return p;
}

static void mkdirs(const char *rel) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, rel);
    for (char *s = p + strlen(tmpdir) + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    mkdir(p, 0755);
}

static void put(const char *rel, const void *data, size_t n) {
    FILE *f = fopen(at(rel), "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

static void copy(const char *fixture, const char *rel) {
    char src[512];
    snprintf(src, sizeof src, FIX "/%s", fixture);
    FILE *f = fopen(src, "rb");
    static uint8_t buf[1 << 16];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    put(rel, buf, n);
}

static void clear_tmp(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s/*", tmpdir);
    if (system(cmd)) fprintf(stderr, "cannot clear %s\n", tmpdir);
}

static int count_label(const kd_dataset *ds, int k) {
    int m = 0;
    for (int i = 0; i < ds->n; i++) m += ds->labels[i] == k;
    return m;
}

static void test_two_folders(void) {
    kd_dataset tr, te;
    kd_error err = {0};
    kd_data_opts o = kd_data_opts_default();
    CHECK_MSG(kd_dataset_load_ex(&tr, FIX "/two", "train", &o, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK_MSG(kd_dataset_load_ex(&te, FIX "/two", "test", &o, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(tr.n == 13 && te.n == 7 && tr.c == 3 && tr.h == 10 && tr.w == 12 && te.c == 3 && te.h == 10 && te.w == 12);
    CHECK(tr.n_classes == 3 && te.n_classes == 3 && tr.class_names && te.class_names);
    if (tr.class_names && te.class_names)
        CHECK(!strcmp(tr.class_names[0], "cat") && !strcmp(tr.class_names[1], "dog") &&
              !strcmp(tr.class_names[2], "frog") && !strcmp(te.class_names[2], "frog"));
    CHECK(count_label(&tr, 0) == 4 && count_label(&tr, 1) == 5 && count_label(&tr, 2) == 4);
    CHECK(count_label(&te, 0) == 2 && count_label(&te, 1) == 3 && count_label(&te, 2) == 2);
    CHECK(tr.labels[0] == 0 && tr.labels[4] == 1 && tr.labels[12] == 2 && tr.n_skipped == 0);
    /* Sample 5 is dog/dog01 (files sorted within the class), decoded as kd_image_load decodes it. */
    uint8_t want[360];
    CHECK(kd_image_load(FIX "/two/train/dog/dog01.jpg", 3, 10, 12, KD_IMAGE_FIT_CROP, want, &err) == KD_STATUS_OK);
    CHECK(!memcmp(tr.pixels + 5 * 360, want, 360));
    CHECK(tr.mean > 0.f && tr.std > 0.f); /* the dispatcher's statistics */
    kd_dataset_free(&tr);
    kd_dataset_free(&te);

    /* val/ stands for test/ when there is no test/. */
    mkdirs("v");
    CHECK(symlink(FIX "/two/train", at("v/train")) == 0 && symlink(FIX "/two/test", at("v/val")) == 0);
    CHECK_MSG(kd_dataset_load_ex(&te, at("v"), "test", &o, &err) == KD_STATUS_OK && te.n == 7, "%s", err.msg);
    kd_dataset_free(&te);
    /* --size and --channels: every file fitted. */
    o.size_h = o.size_w = 8;
    o.channels = 1;
    CHECK_MSG(kd_dataset_load_images(&te, FIX "/two", "test", &o, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(te.n == 7 && te.c == 1 && te.h == 8 && te.w == 8);
    uint8_t g[64];
    CHECK(kd_image_load(FIX "/two/test/cat/cat00.jpg", 1, 8, 8, KD_IMAGE_FIT_CROP, g, &err) == KD_STATUS_OK);
    CHECK(!memcmp(te.pixels, g, 64));
    kd_dataset_free(&te);
    clear_tmp();
}

/* Which of the 15 files of one/ sample i of ds is (-1: none). */
static int which_file(const kd_dataset *ds, int i, uint8_t (*files)[360]) {
    for (int f = 0; f < 15; f++)
        if (!memcmp(ds->pixels + 360 * (size_t)i, files[f], 360)) return f;
    return -1;
}

static void test_one_tree(void) {
    static uint8_t files[15][360];
    static const char *const names[] = {"cat", "dog", "frog"};
    static const char *const ext[] = {"png", "jpg", "ppm", "bmp", "png"};
    kd_error err = {0};
    for (int f = 0; f < 15; f++) {
        char p[512];
        snprintf(p, sizeof p, FIX "/one/%s/img%d.%s", names[f / 5], f % 5, ext[f % 5]);
        CHECK_MSG(kd_image_load(p, 3, 10, 12, KD_IMAGE_FIT_CROP, files[f], &err) == KD_STATUS_OK, "%s", err.msg);
    }
    kd_data_opts o = kd_data_opts_default();
    int first_test[8];
    for (int seed = 1; seed <= 6; seed++) {
        o.split_seed = (uint64_t)seed;
        o.test_fraction = seed == 6 ? 0.4f : 0.2f;
        kd_dataset tr, te;
        CHECK_MSG(kd_dataset_load_ex(&tr, FIX "/one", "train", &o, &err) == KD_STATUS_OK, "%s", err.msg);
        CHECK_MSG(kd_dataset_load_ex(&te, FIX "/one", "test", &o, &err) == KD_STATUS_OK, "%s", err.msg);
        int per = seed == 6 ? 2 : 1;
        CHECK(te.n == 3 * per && tr.n == 15 - 3 * per && tr.n_classes == 3);
        for (int k = 0; k < 3; k++) CHECK(count_label(&te, k) == per && count_label(&tr, k) == 5 - per);
        int seen[15] = {0};
        for (int i = 0; i < tr.n; i++) {
            int f = which_file(&tr, i, files);
            CHECK(f >= 0 && tr.labels[i] == f / 5);
            if (f >= 0) seen[f]++;
        }
        for (int i = 0; i < te.n; i++) {
            int f = which_file(&te, i, files);
            CHECK(f >= 0 && te.labels[i] == f / 5);
            if (f >= 0) seen[f]++;
            if (i == 0) first_test[seed] = f;
        }
        for (int f = 0; f < 15; f++) CHECK_MSG(seen[f] == 1, "seed %d: file %d in %d splits", seed, f, seen[f]);
        CHECK(tr.n_ignored == 2); /* README.txt, cat/notes.txt */
        kd_dataset_free(&tr);
        kd_dataset_free(&te);
    }
    int differ = 0;
    for (int s = 2; s <= 5; s++) differ |= first_test[s] != first_test[1];
    CHECK_MSG(differ, "the seed does not change the split");
    /* The same seed gives the same split again. */
    kd_dataset te;
    o.split_seed = 1;
    o.test_fraction = 0.2f;
    CHECK(kd_dataset_load_ex(&te, FIX "/one", "test", &o, &err) == KD_STATUS_OK && which_file(&te, 0, files) == first_test[1]);
    kd_dataset_free(&te);
    o.test_fraction = 1.5f;
    CHECK(kd_dataset_load_ex(&te, FIX "/one", "test", &o, &err) == KD_STATUS_BAD_ARG && strstr(err.msg, "1.5"));
}

static void test_grey(void) {
    kd_dataset ds;
    kd_error err = {0};
    kd_data_opts o = kd_data_opts_default();
    CHECK_MSG(kd_dataset_load_ex(&ds, FIX "/grey", "train", &o, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(ds.c == 1 && ds.n == 4 && ds.n_classes == 2 && !strcmp(ds.class_names[1], "b"));
    kd_dataset_free(&ds);
    o.channels = 3;
    CHECK(kd_dataset_load_ex(&ds, FIX "/grey", "train", &o, &err) == KD_STATUS_OK && ds.c == 3);
    if (ds.pixels) CHECK(!memcmp(ds.pixels, ds.pixels + 120, 120) && !memcmp(ds.pixels, ds.pixels + 240, 120));
    kd_dataset_free(&ds);
}

/* Loading `split` of tmp/rel fails with a message holding both needles (the second may be NULL). */
static void expect_err(const char *rel, const char *split, const kd_data_opts *o, const char *n1, const char *n2) {
    kd_dataset ds;
    kd_error err = {0};
    kd_status st = kd_dataset_load_images(&ds, at(rel), split, o, &err);
    CHECK_MSG(st != KD_STATUS_OK && strstr(err.msg, n1) && (!n2 || strstr(err.msg, n2)) && !strchr(err.msg, '\n'),
              "%s %s: status %d, message '%s' (want '%s' and '%s')", rel, split, (int)st, err.msg, n1, n2 ? n2 : "");
    CHECK(ds.n == 0 && ds.pixels == NULL && ds.class_names == NULL);
    if (!st) kd_dataset_free(&ds);
}

static void test_errors(void) {
    kd_data_opts o = kd_data_opts_default();
    mkdirs("none");
    put("none/loose.png", "x", 1);
    expect_err("none", "train", &o, "none: no class folders", NULL);
    expect_err("absent", "train", &o, "absent: not a folder", NULL);

    mkdirs("empty/a");
    mkdirs("empty/b");
    copy("decode/rgb.png", "empty/a/x.png");
    put("empty/b/readme.txt", "x", 1);
    expect_err("empty", "train", &o, "empty/b: class folder has no images", NULL);

    mkdirs("extra/train/a");
    mkdirs("extra/test/zebra");
    copy("decode/rgb.png", "extra/train/a/x.png");
    copy("decode/rgb.png", "extra/test/zebra/x.png");
    expect_err("extra", "test", &o, "extra/test/zebra: class 'zebra' is not a class of the training split", NULL);
    expect_err("extra", "train", &o, "'zebra'", NULL); /* both splits agree on what the source is */
    mkdirs("notest/train/a");
    copy("decode/rgb.png", "notest/train/a/x.png");
    expect_err("notest", "train", &o, "notest: has train/ but neither test/ nor val/", NULL);

    mkdirs("mixed/a");
    copy("decode/rgb.png", "mixed/a/x.png");
    put("mixed/a/y.pgm", "P5\n8 6\n255\n012345678901234567890123456789012345678901234567", 59);
    expect_err("mixed", "train", &o, "images of different sizes", "mixed/a/x.png is 10x12, ");
    expect_err("mixed", "train", &o, "mixed/a/y.pgm is 6x8", "--size");
    kd_dataset ds;
    kd_error err = {0};
    kd_data_opts sized = o;
    sized.size_h = 6, sized.size_w = 8;
    CHECK_MSG(kd_dataset_load_images(&ds, at("mixed"), "train", &sized, &err) == KD_STATUS_OK && ds.h == 6 && ds.w == 8,
              "%s", err.msg);
    kd_dataset_free(&ds);
    sized.max_bytes = 100; /* one 8x6 image is 144 bytes */
    expect_err("mixed", "train", &sized, "need", "GB");

    /* A bad file: an error naming it, or with skip_bad counted, noted and left out. */
    mkdirs("bad/train/a");
    mkdirs("bad/train/b");
    mkdirs("bad/test/a");
    copy("decode/rgb.png", "bad/train/a/1.png");
    copy("decode/rgb.jpg", "bad/train/b/1.jpg");
    copy("decode/rgb.ppm", "bad/test/a/1.ppm");
    uint8_t png[4096];
    FILE *f = fopen(FIX "/decode/rgb.png", "rb");
    size_t n = f ? fread(png, 1, sizeof png, f) : 0;
    if (f) fclose(f);
    put("bad/train/a/2.png", png, n - 30); /* a header that reads, pixels cut short */
    put("bad/train/b/0.png", "not an image", 12);
    /* The header pass (channels and size learnt from the files) meets b/0.png first; the decode
     * reports the first bad file in list order. */
    expect_err("bad", "train", &o, "bad/train/b/0.png: not a PNG, JPEG, PGM/PPM or BMP image", NULL);
    sized = o;
    sized.channels = 3, sized.size_h = 10, sized.size_w = 12; /* no header pass: the decode finds both */
    expect_err("bad", "train", &sized, "bad/train/a/2.png: corrupt PNG", NULL);
    for (int pass = 0; pass < 2; pass++) {
        kd_data_opts s = pass ? sized : o;
        s.skip_bad = 1;
        CHECK_MSG(kd_dataset_load_images(&ds, at("bad"), "train", &s, &err) == KD_STATUS_OK, "%s", err.msg);
        CHECK_MSG(ds.n == 2 && ds.n_skipped == 2 && strstr(ds.skip_note, "bad/train/a/2.png: corrupt PNG"),
                  "pass %d: n %d, skipped %d, note '%s'", pass, ds.n, ds.n_skipped, ds.skip_note);
        CHECK(ds.labels[0] == 0 && ds.labels[1] == 1);
        kd_dataset_free(&ds);
        CHECK(kd_dataset_load_images(&ds, at("bad"), "test", &s, &err) == KD_STATUS_OK && ds.n == 1 &&
              ds.n_skipped == 0 && !ds.skip_note[0]);
        kd_dataset_free(&ds);
    }
    clear_tmp();
}

int main(void) {
    if (!mkdtemp(tmpdir)) return 1;
    test_two_folders();
    test_one_tree();
    test_grey();
    test_errors();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) fprintf(stderr, "cannot remove %s\n", tmpdir);
    TEST_DONE();
}
