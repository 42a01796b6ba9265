/* libFuzzer target for the CSV reader (kd_dataset_load_csv: quotes, line ends, delimiter and
 * header detection, the scikit-learn layout, numbers, integer and string labels, ragged rows, the
 * stratified split). The input is one comma-separated file; both splits are read. Built and run by
 * scripts/fuzz.sh; tests/unit/test_fuzz_corpus.c replays tests/fuzz/corpus/csv. */
#include "distill/data.h"
#include "fuzz_file.h"

static int load_csv_data(const char *path) {
    kd_data_opts o = kd_data_opts_default();
    o.max_bytes = (size_t)64 << 20;
    int ok = 1;
    for (int t = 0; ok && t < 2; t++) {
        kd_dataset ds;
        kd_error err;
        ok = kd_dataset_load_csv(&ds, path, t ? "test" : "train", &o, &err) == KD_STATUS_OK;
        if (ok) kd_dataset_free(&ds);
    }
    return ok;
}

static int fuzz_csv(const uint8_t *data, size_t size) { return fuzz_load_file("csv", data, size, load_csv_data); }

KD_FUZZ_TARGET(fuzz_csv)
