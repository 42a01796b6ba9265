/* libFuzzer target for NumPy data in a .npz (kd_dataset_load_numpy: the zip container's end
 * record, zip64, central directory, local headers, stored and deflate members, CRC-32 and sizes;
 * then each member's .npy header (kd_npy_parse_header), dtype, shape, labels, NaN/inf). Both splits
 * are read. Built and run by scripts/fuzz.sh; tests/unit/test_fuzz_corpus.c replays
 * tests/fuzz/corpus/npz. */
#include "fuzz_data.h"
#include "fuzz_file.h"

static int load_npz_data(const char *path) { return fuzz_data_splits(kd_dataset_load_numpy, path); }

static int fuzz_npz(const uint8_t *data, size_t size) { return fuzz_load_file("npz", data, size, load_npz_data); }

KD_FUZZ_TARGET(fuzz_npz)
