/* libFuzzer target for NumPy data in a .npz (kd_dataset_load_numpy: the zip container's end
 * record, zip64, central directory, local headers, stored and deflate members, CRC-32 and sizes;
 * then each member's .npy header (kd_npy_parse_header), dtype, shape, labels, NaN/inf). Both splits
 * are read. Built and run by scripts/fuzz.sh; tests/unit/test_fuzz_corpus.c replays
 * tests/fuzz/corpus/npz. */
#include "distill/data.h"
#include "fuzz_file.h"

static int load_npz_data(const char *path) {
    kd_data_opts o = kd_data_opts_default();
    o.max_bytes = (size_t)64 << 20;
    int ok = 1;
    for (int t = 0; ok && t < 2; t++) {
        kd_dataset ds;
        kd_error err;
        ok = kd_dataset_load_numpy(&ds, path, t ? "test" : "train", &o, &err) == KD_STATUS_OK;
        if (ok) kd_dataset_free(&ds);
    }
    return ok;
}

static int fuzz_npz(const uint8_t *data, size_t size) { return fuzz_load_file("npz", data, size, load_npz_data); }

KD_FUZZ_TARGET(fuzz_npz)
