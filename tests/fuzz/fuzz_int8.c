/* libFuzzer target for the int8 checkpoint loader (kd_int8_load: the safetensors layer, then the
 * int8 model's JSON description and its I8/I32/F32 tensors). Built and run by scripts/fuzz.sh;
 * tests/unit/test_fuzz_corpus.c replays tests/fuzz/corpus/int8. */
#include "distill/int8.h"
#include "fuzz_file.h"

static int load_int8(const char *path) {
    kd_int8_model *q = NULL;
    kd_error err;
    int ok = kd_int8_load(path, &q, &err) == KD_STATUS_OK;
    kd_int8_free(q);
    return ok;
}

static int fuzz_int8(const uint8_t *data, size_t size) { return fuzz_load_file("int8", data, size, load_int8); }

KD_FUZZ_TARGET(fuzz_int8)
