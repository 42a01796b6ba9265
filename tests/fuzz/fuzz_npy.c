/* libFuzzer target for the .npy reader (kd_npy_load_logits: magic, version, header dict, dtype,
 * shape, data size, NaN/inf). Built and run by scripts/fuzz.sh; tests/unit/test_fuzz_corpus.c
 * replays tests/fuzz/corpus/npy. */
#include <stdlib.h>

#include "distill/npy.h"
#include "fuzz_file.h"

static int load_npy(const char *path) {
    float *x = NULL;
    int n = 0, c = 0;
    kd_error err;
    int ok = kd_npy_load_logits(path, 0, &x, &n, &c, &err) == KD_STATUS_OK;
    free(x);
    return ok;
}

static int fuzz_npy(const uint8_t *data, size_t size) { return fuzz_load_file("npy", data, size, load_npy); }

KD_FUZZ_TARGET(fuzz_npy)
