/* libFuzzer target for the .npy reader (kd_npy_load_logits: magic, version, header dict, dtype,
 * shape, data size, NaN/inf). Built and run by scripts/fuzz.sh; tests/unit/test_fuzz_corpus.c
 * replays tests/fuzz/corpus/npy. */
#include <stdlib.h>

#include "distill/npy.h"
#include "fuzz_file.h"

static int fuzz_npy(const uint8_t *data, size_t size) {
    const char *path = fuzz_file("npy", data, size);
    float *x = NULL;
    int n = 0, c = 0;
    kd_error err;
    if (!path) return 0;
    int ok = kd_npy_load_logits(path, &x, &n, &c, &err) == KD_STATUS_OK;
    free(x);
    unlink(path);
    return ok;
}

#ifndef KD_FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_npy(data, size);
    return 0;
}
#endif
