/* libFuzzer target for the int8 checkpoint loader (kd_int8_load: the safetensors layer, then the
 * int8 model's JSON description and its I8/I32/F32 tensors). Built and run by scripts/fuzz.sh;
 * tests/unit/test_fuzz_corpus.c replays tests/fuzz/corpus/int8. */
#include "distill/int8.h"
#include "fuzz_file.h"

static int fuzz_int8(const uint8_t *data, size_t size) {
    const char *path = fuzz_file("int8", data, size);
    kd_int8_model *q = NULL;
    kd_error err;
    if (!path) return 0;
    int ok = kd_int8_load(path, &q, &err) == KD_STATUS_OK;
    kd_int8_free(q);
    unlink(path);
    return ok;
}

#ifndef KD_FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_int8(data, size);
    return 0;
}
#endif
