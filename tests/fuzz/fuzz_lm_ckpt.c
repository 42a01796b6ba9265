/* libFuzzer target for the language-model checkpoint loader (kd_lm_load: the safetensors layer,
 * then the configuration, BPE merges and F32 tensors). Built and run by scripts/fuzz.sh;
 * tests/unit/test_fuzz_corpus.c replays tests/fuzz/corpus/lm_ckpt. */
#include "distill/lm.h"
#include "fuzz_file.h"

static int load_lm_ckpt(const char *path) {
    kd_lm *m = NULL;
    kd_error err;
    int ok = kd_lm_load(path, &m, &err) == KD_STATUS_OK;
    kd_lm_free(m);
    return ok;
}

static int fuzz_lm_ckpt(const uint8_t *data, size_t size) { return fuzz_load_file("lm", data, size, load_lm_ckpt); }

KD_FUZZ_TARGET(fuzz_lm_ckpt)
