/* CIFAR-10/100 binary batches (src/data/cifar.c): the directory layouts, records read exactly, the
 * fine label of CIFAR-100, class names from batches.meta.txt or CIFAR-10's own, grey conversion, a
 * file list split stratified, and the errors (record size, label range, names file, --size).
 * Fixtures: scripts/fixtures-arrays.py (pixel j of record i of a file is (7*i + j) % 256). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "distill/data.h"
#include "test.h"

#define FIX KD_SOURCE_DIR "/tests/fixtures/data/cifar/"

static int pixels_ok(const kd_dataset *ds, int i, int rec) {
    for (int j = 0; j < 3072; j++)
        if (ds->pixels[(size_t)i * 3072 + (size_t)j] != (7 * rec + j) % 256) return 0;
    return 1;
}

static void test_cifar10(void) {
    kd_dataset ds;
    kd_error err = {0};
    kd_data_opts o = kd_data_opts_default();
    kd_status st = kd_dataset_load_ex(&ds, FIX "c10", "train", &o, &err);
    CHECK_MSG(st == KD_STATUS_OK, "%s", err.msg);
    if (st) return;
    CHECK(ds.n == 10 && ds.c == 3 && ds.h == 32 && ds.w == 32 && ds.n_classes == 10 && ds.type == KD_DATA_U8);
    CHECK_MSG(pixels_ok(&ds, 0, 0) && pixels_ok(&ds, 5, 5) && pixels_ok(&ds, 6, 0) && pixels_ok(&ds, 9, 3),
              "data_batch_1 then data_batch_2, read exactly");
    CHECK(ds.labels[5] == 5 && ds.labels[6] == 6 && ds.labels[9] == 9);
    CHECK(ds.class_names && !strcmp(ds.class_names[0], "name0") && !strcmp(ds.class_names[9], "name9"));
    kd_dataset_free(&ds);
    o.channels = 1;
    o.size_h = o.size_w = 32;
    st = kd_dataset_load_ex(&ds, FIX "c10", "test", &o, &err);
    CHECK_MSG(st == KD_STATUS_OK && ds.n == 3 && ds.c == 1 && ds.labels[0] == 9, "%s", err.msg);
    if (st) return;
    /* record 1, pixel 5: r = 12, g = (7+1029)%256 = 12, b = (7+2053)%256 = 12: grey 12; pixel 300: 51, 51, 51 */
    int r = (7 + 300) % 256, g = (7 + 1324) % 256, b = (7 + 2348) % 256;
    CHECK_MSG(ds.pixels[1024 + 300] == (299 * r + 587 * g + 114 * b + 500) / 1000, "grey %d", ds.pixels[1024 + 300]);
    kd_dataset_free(&ds);
}

static void test_cifar100(void) {
    kd_dataset ds;
    kd_error err = {0};
    kd_status st = kd_dataset_load_ex(&ds, FIX "c100", "train", NULL, &err); /* cifar-100-binary/ inside */
    CHECK_MSG(st == KD_STATUS_OK, "%s", err.msg);
    if (st) return;
    CHECK(ds.n == 5 && ds.n_classes == 100 && ds.labels[0] == 99 && ds.labels[1] == 5 && ds.labels[3] == 50);
    CHECK_MSG(ds.class_names == NULL, "no names for CIFAR-100 without fine_label_names.txt");
    CHECK(pixels_ok(&ds, 4, 4));
    kd_dataset_free(&ds);
    st = kd_dataset_load_ex(&ds, FIX "c100", "test", NULL, &err);
    CHECK_MSG(st == KD_STATUS_OK && ds.n == 2 && ds.labels[1] == 8, "%s", err.msg);
    if (!st) kd_dataset_free(&ds);
}

static void test_list_split(void) {
    kd_dataset tr, te;
    kd_error err = {0};
    const char *spec = FIX "list/data_batch_1.bin";
    kd_status a = kd_dataset_load_ex(&tr, spec, "train", NULL, &err), b = kd_dataset_load_ex(&te, spec, "test", NULL, &err);
    CHECK_MSG(a == KD_STATUS_OK && b == KD_STATUS_OK, "%s", err.msg);
    if (a || b) return;
    CHECK_MSG(tr.n == 9 && te.n == 3, "train %d test %d", tr.n, te.n);
    int seen[12] = {0}, ok = 1;
    for (int i = 0; i < tr.n; i++) seen[kd_dataset_orig_index(&tr, i)]++;
    for (int i = 0; i < te.n; i++) {
        int o = kd_dataset_orig_index(&te, i);
        seen[o]++;
        ok &= te.labels[i] == o % 3 && pixels_ok(&te, i, o);
    }
    for (int i = 0; i < 12; i++) ok &= seen[i] == 1;
    CHECK_MSG(ok, "splits not complementary, or a record moved");
    CHECK(tr.class_names && !strcmp(tr.class_names[3], "cat")); /* CIFAR-10's own names without batches.meta.txt */
    kd_dataset_free(&tr);
    kd_dataset_free(&te);
}

static void expect_fail(const char *spec, const char *split, int size, const char *needle) {
    kd_dataset ds;
    kd_error err = {0};
    kd_data_opts o = kd_data_opts_default();
    o.size_h = o.size_w = size;
    kd_status st = kd_dataset_load_ex(&ds, spec, split, &o, &err);
    CHECK_MSG(st != KD_STATUS_OK, "%s loaded", spec);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "'%s' not in '%s'", needle, err.msg);
    CHECK_MSG(ds.pixels == NULL && ds.n == 0, "ds not zeroed");
    if (!st) kd_dataset_free(&ds);
}

static void test_errors(void) {
    expect_fail(FIX "bad", "train", 0, "bad/data_batch_1.bin: 6151 bytes is not a whole number of CIFAR-10 records of 3073");
    expect_fail(FIX "badlabel", "train", 0, "badlabel/data_batch_1.bin: record 1 has label 12, CIFAR-10 has classes 0 .. 9");
    expect_fail(FIX "badnames", "train", 0, "badnames/batches.meta.txt: only class names, CIFAR-10 has 10");
    expect_fail(FIX "c10", "train", 28, "CIFAR images are 32x32 and are not resized (--size 28x28)");
    expect_fail(FIX "c100/cifar-100-binary/train.bin," FIX "c10/test_batch.bin", "train", 0, "mixes CIFAR-10 and CIFAR-100");
    expect_fail(FIX "c10/batches.meta.txt.bin", "train", 0, "not a CIFAR batch name");
    expect_fail(FIX "list", "test", 0, "list/test_batch.bin");
    kd_dataset ds;
    kd_error err = {0};
    CHECK(kd_dataset_load_cifar(&ds, KD_SOURCE_DIR "/tests/fixtures/data/csv", "train", NULL, &err) != KD_STATUS_OK &&
          strstr(err.msg, "data/csv: no CIFAR batches"));
}

int main(void) {
    test_cifar10();
    test_cifar100();
    test_list_split();
    test_errors();
    TEST_DONE();
}
