/* libFuzzer target for the CSV reader (kd_dataset_load_csv: quotes, line ends, delimiter and
 * header detection, the scikit-learn layout, numbers, integer and string labels, ragged rows, the
 * stratified split). The input is one comma-separated file; both splits are read. Built and run by
 * scripts/fuzz.sh; tests/unit/test_fuzz_corpus.c replays tests/fuzz/corpus/csv. */
#include "fuzz_data.h"
#include "fuzz_file.h"

static int load_csv_data(const char *path) { return fuzz_data_splits(kd_dataset_load_csv, path); }

static int fuzz_csv(const uint8_t *data, size_t size) { return fuzz_load_file("csv", data, size, load_csv_data); }

KD_FUZZ_TARGET(fuzz_csv)
