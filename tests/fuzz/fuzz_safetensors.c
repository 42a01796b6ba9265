/* libFuzzer target for the safetensors layer through the fp32 checkpoint loader
 * (kd_checkpoint_load: framing, tensor table, metadata, optimizer and training state, model YAML,
 * weights). Nothing may crash, leak or allocate beyond what the file justifies. Built and run by
 * scripts/fuzz.sh; tests/unit/test_fuzz_corpus.c replays tests/fuzz/corpus/safetensors. */
#include "distill/checkpoint.h"
#include "fuzz_file.h"

static int fuzz_safetensors(const uint8_t *data, size_t size) {
    const char *path = fuzz_file("st", data, size);
    kd_model *m = NULL;
    kd_error err;
    if (!path) return 0;
    int ok = kd_checkpoint_load(path, &m, &err) == KD_STATUS_OK;
    kd_model_free(m);
    unlink(path);
    return ok;
}

#ifndef KD_FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_safetensors(data, size);
    return 0;
}
#endif
