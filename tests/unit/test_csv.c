/* CSV/TSV tables (src/data/csv.c): header or none, label column by name, index or default, integer
 * and string labels (the same mapping for train and test), quotes, CRLF, BOM, TSV, semicolons,
 * scikit-learn's bundled layout, the stratified split of one file, and every error with its file,
 * row and column. Fixtures: scripts/fixtures-arrays.py. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "distill/data.h"
#include "test.h"

#define FIX KD_SOURCE_DIR "/tests/fixtures/data/csv/"

static kd_status load(kd_dataset *ds, const char *spec, const char *split, const char *label, kd_error *err) {
    kd_data_opts o = kd_data_opts_default();
    snprintf(o.label_column, sizeof o.label_column, "%s", label);
    return kd_dataset_load_ex(ds, spec, split, &o, err);
}

static float v(const kd_dataset *ds, int i, int f) {
    float x;
    memcpy(&x, ds->pixels + 4 * ((size_t)i * (size_t)ds->c + (size_t)f), 4);
    return x;
}

static void test_header_two_files(void) {
    kd_dataset ds;
    kd_error err = {0};
    kd_status st = load(&ds, FIX "header.csv," FIX "header.csv", "train", "", &err);
    CHECK_MSG(st == KD_STATUS_OK, "%s", err.msg);
    if (st) return;
    CHECK(ds.n == 4 && ds.c == 3 && ds.h == 1 && ds.w == 1 && ds.type == KD_DATA_F32 && ds.n_classes == 3);
    CHECK(v(&ds, 2, 1) == 8.5f && v(&ds, 2, 2) == -9.f && v(&ds, 3, 0) == 100.f && ds.labels[3] == 2);
    CHECK(ds.class_names == NULL);
    kd_dataset_free(&ds);
    /* label column by index: column 0 ("a": 1, 4, 7, 1e2: not all integers, so strings "1" "1e2" "4" "7") */
    st = load(&ds, FIX "header.csv," FIX "header.csv", "test", "0", &err);
    CHECK_MSG(st == KD_STATUS_OK && ds.n_classes == 4 && ds.labels[3] == 1 && ds.labels[2] == 3 && v(&ds, 0, 2) == 0.f &&
              ds.class_names && !strcmp(ds.class_names[1], "1e2"), "%s", err.msg);
    if (!st) kd_dataset_free(&ds);
}

static void test_noheader(void) {
    kd_dataset ds;
    kd_error err = {0};
    kd_status st = load(&ds, FIX "noheader.csv," FIX "noheader.csv", "train", "", &err);
    CHECK_MSG(st == KD_STATUS_OK, "%s", err.msg);
    if (st) return;
    CHECK_MSG(ds.n == 3 && ds.c == 2 && ds.n_classes == 4, "BOM, CRLF, blank line, no last newline: n %d c %d", ds.n, ds.c);
    CHECK(v(&ds, 0, 0) == 0.5f && v(&ds, 1, 1) == 3.25f && v(&ds, 2, 0) == 4.f && ds.labels[0] == 3 && ds.labels[2] == 1);
    kd_dataset_free(&ds);
}

static void test_strings(void) {
    kd_dataset ds;
    kd_error err = {0};
    kd_status st = load(&ds, FIX "strings.csv," FIX "strings.csv", "train", "species", &err);
    CHECK_MSG(st == KD_STATUS_OK, "%s", err.msg);
    if (st) return;
    CHECK(ds.n == 4 && ds.c == 2 && ds.n_classes == 3 && ds.class_names);
    if (ds.class_names) /* bytewise order */
        CHECK_MSG(!strcmp(ds.class_names[0], "big") && !strcmp(ds.class_names[1], "setosa") &&
                  !strcmp(ds.class_names[2], "versi, \"color\""), "%s|%s|%s", ds.class_names[0], ds.class_names[1],
                  ds.class_names[2]);
    CHECK(ds.labels[0] == 1 && ds.labels[1] == 2 && ds.labels[3] == 0 && v(&ds, 1, 0) == 3.f && v(&ds, 3, 1) == 8.f);
    kd_dataset_free(&ds);
    /* train and test map string labels the same way: "c" only in test */
    kd_dataset tr, te;
    kd_status a = load(&tr, FIX "train.csv," FIX "test.csv", "train", "", &err);
    kd_status b = load(&te, FIX "train.csv," FIX "test.csv", "test", "cls", &err);
    CHECK_MSG(a == KD_STATUS_OK && b == KD_STATUS_OK, "%s", err.msg);
    if (a || b) return;
    CHECK(tr.n_classes == 3 && te.n_classes == 3 && tr.labels[0] == 1 && tr.labels[1] == 0 && te.labels[0] == 2 &&
          te.labels[1] == 0 && !strcmp(te.class_names[2], "c") && !strcmp(tr.class_names[2], "c"));
    kd_dataset_free(&tr);
    kd_dataset_free(&te);
}

static void test_delimiters_sklearn(void) {
    kd_dataset ds;
    kd_error err = {0};
    const char *tabs[2] = {FIX "tab.tsv," FIX "tab.tsv", FIX "semi.csv," FIX "semi.csv"};
    for (int i = 0; i < 2; i++) {
        kd_status st = load(&ds, tabs[i], "train", "", &err);
        CHECK_MSG(st == KD_STATUS_OK && ds.n == 2 && ds.c == 2 && v(&ds, 1, 1) == 4.f && ds.labels[1] == 1, "%s: %s",
                  tabs[i], err.msg);
        if (!st) kd_dataset_free(&ds);
    }
    kd_status st = load(&ds, FIX "sklearn.csv," FIX "sklearn.csv", "train", "", &err);
    CHECK_MSG(st == KD_STATUS_OK, "%s", err.msg);
    if (st) return;
    CHECK(ds.n == 4 && ds.c == 2 && ds.n_classes == 2 && ds.labels[1] == 1 && v(&ds, 3, 0) == 7.f);
    CHECK(ds.class_names && !strcmp(ds.class_names[0], "alpha") && !strcmp(ds.class_names[1], "beta"));
    kd_dataset_free(&ds);
}

static void test_split(void) {
    kd_dataset tr, te;
    kd_error err = {0};
    kd_status a = load(&tr, FIX "split.csv", "train", "", &err), b = load(&te, FIX "split.csv", "test", "", &err);
    CHECK_MSG(a == KD_STATUS_OK && b == KD_STATUS_OK, "%s", err.msg);
    if (a || b) return;
    CHECK_MSG(tr.n == 12 && te.n == 3, "train %d test %d: round(0.2 * 5) = 1 per class", tr.n, te.n);
    int seen[15] = {0}, ok = 1;
    for (int i = 0; i < tr.n; i++) seen[kd_dataset_orig_index(&tr, i)]++;
    for (int i = 0; i < te.n; i++) {
        int o = kd_dataset_orig_index(&te, i);
        seen[o]++;
        ok &= te.labels[i] == o % 3 && v(&te, i, 1) == (float)(o * o);
    }
    for (int i = 0; i < 15; i++) ok &= seen[i] == 1;
    CHECK_MSG(ok, "splits not complementary or values moved");
    CHECK(te.labels[0] != te.labels[1] && te.labels[1] != te.labels[2] && te.labels[0] != te.labels[2]);
    kd_dataset_free(&tr);
    kd_dataset_free(&te);
}

static void expect_fail(const char *file, const char *label, const char *needle) {
    kd_dataset ds;
    kd_error err = {0};
    char spec[1024];
    snprintf(spec, sizeof spec, "%s%s,%s%s", FIX, file, FIX, file);
    kd_status st = load(&ds, spec, "train", label, &err);
    CHECK_MSG(st != KD_STATUS_OK, "%s loaded", file);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "'%s' not in '%s'", needle, err.msg);
    CHECK_MSG(ds.pixels == NULL && ds.n == 0, "ds not zeroed");
    if (!st) kd_dataset_free(&ds);
}

/* numeric column names (pandas' to_csv(index=False) of integer column names): row 0 is a header
 * because its label cell is no number while every other row's is an integer */
static void test_numeric_header(void) {
    FILE *f = fopen("csv_numhead.csv", "w");
    fprintf(f, "0,1,label\n0.5,1.5,0\n2,3,1\n4,5,1\n");
    fclose(f);
    kd_dataset ds;
    kd_error err = {0};
    kd_status st = load(&ds, "csv_numhead.csv,csv_numhead.csv", "train", "", &err);
    CHECK_MSG(st == KD_STATUS_OK && ds.n == 3 && ds.n_classes == 2 && ds.class_names == NULL && v(&ds, 0, 0) == 0.5f &&
              ds.labels[0] == 0 && ds.labels[2] == 1, "%s n %d classes %d", err.msg, ds.n, ds.n_classes);
    if (!st) kd_dataset_free(&ds);
    remove("csv_numhead.csv");
}

static void test_errors(void) {
    expect_fail("bad-ragged.csv", "", "bad-ragged.csv:3: 2 columns, the first row has 3 (a ragged row)");
    expect_fail("bad-missing.csv", "", "bad-missing.csv:3: column 2 (\"b\"): a missing value");
    expect_fail("bad-nonnum.csv", "", "bad-nonnum.csv:4: column 2 (\"b\"): not a number 'x7'");
    expect_fail("bad-nan.csv", "", "bad-nan.csv:2: column 2: NaN or inf (or beyond float32) 'nan'");
    expect_fail("bad-onecol.csv", "", "bad-onecol.csv:1: one column only");
    expect_fail("bad-empty.csv", "", "bad-empty.csv: no rows after the header");
    expect_fail("bad-ambiguous.csv", "", "bad-ambiguous.csv: line 1 has both commas and semicolons");
    expect_fail("bad-quote.csv", "", "bad-quote.csv:2: column 2: a quote is never closed");
    expect_fail("header.csv", "nosuch", "header.csv: no column named 'nosuch' in the first row");
    expect_fail("header.csv", "7", "header.csv: label column 7 does not exist (the table has 4 columns");
    kd_dataset ds;
    kd_error err = {0};
    CHECK(load(&ds, FIX "tab.tsv," FIX "header.csv", "train", "", &err) != KD_STATUS_OK &&
          strstr(err.msg, "tab.tsv has 3 columns (label: column 3)") && strstr(err.msg, "header.csv has 4"));
    CHECK(load(&ds, FIX "missing-file.csv", "train", "", &err) != KD_STATUS_OK && strstr(err.msg, "missing-file.csv"));
    /* a string label longer than a class name may be */
    FILE *f = fopen("csv_long.csv", "w");
    fprintf(f, "1,a\n2,%0100d\n3,b\n", 7);
    fclose(f);
    CHECK_MSG(load(&ds, "csv_long.csv", "train", "", &err) != KD_STATUS_OK &&
              strstr(err.msg, "csv_long.csv:2: column 2: the label (a class name) is longer than 63 bytes"), "%s", err.msg);
    remove("csv_long.csv");
    /* an empty label cell among string labels: refused at load with its line (by the rule models use) */
    f = fopen("csv_emptylabel.csv", "w");
    fprintf(f, "1,a\n2,\n3,b\n");
    fclose(f);
    CHECK_MSG(load(&ds, "csv_emptylabel.csv", "train", "", &err) != KD_STATUS_OK &&
              strstr(err.msg, "csv_emptylabel.csv:2: column 2: the label (a class name) is empty"), "%s", err.msg);
    remove("csv_emptylabel.csv");
    const char *bad[] = {"ok", "caf\xe9"}; /* Latin-1, not UTF-8 */
    kd_dataset two = {.n_classes = 2};
    CHECK_MSG(kd_dataset_set_class_names(&two, bad, 2, &err) != KD_STATUS_OK &&
              strstr(err.msg, "class name 1 is not valid UTF-8") && two.class_names == NULL, "%s", err.msg);
    /* too large for the memory allowed */
    kd_data_opts o = kd_data_opts_default();
    o.max_bytes = 16;
    CHECK(kd_dataset_load_ex(&ds, FIX "split.csv", "train", &o, &err) != KD_STATUS_OK && strstr(err.msg, "split.csv"));
}

int main(void) {
    test_header_two_files();
    test_noheader();
    test_strings();
    test_delimiters_sklearn();
    test_split();
    test_numeric_header();
    test_errors();
    TEST_DONE();
}
