/* libFuzzer target for the language-model checkpoint loader (kd_lm_load: the safetensors layer,
 * then the configuration, BPE merges and F32 tensors). Built and run by scripts/fuzz.sh;
 * tests/unit/test_fuzz_corpus.c replays tests/fuzz/corpus/lm_ckpt. */
#include "distill/lm.h"
#include "fuzz_file.h"

static int fuzz_lm_ckpt(const uint8_t *data, size_t size) {
    const char *path = fuzz_file("lm", data, size);
    kd_lm *m = NULL;
    kd_error err;
    if (!path) return 0;
    int ok = kd_lm_load(path, &m, &err) == KD_STATUS_OK;
    kd_lm_free(m);
    unlink(path);
    return ok;
}

#ifndef KD_FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_lm_ckpt(data, size);
    return 0;
}
#endif
