/* libFuzzer target for the safetensors layer through the fp32 checkpoint loader
 * (kd_checkpoint_load: framing, tensor table, metadata, optimizer and training state, model YAML,
 * weights). Nothing may crash, leak or allocate beyond what the file justifies. Built and run by
 * scripts/fuzz.sh; tests/unit/test_fuzz_corpus.c replays tests/fuzz/corpus/safetensors. */
#include "distill/checkpoint.h"
#include "fuzz_file.h"

static int load_safetensors(const char *path) {
    kd_model *m = NULL;
    kd_error err;
    int ok = kd_checkpoint_load(path, &m, &err) == KD_STATUS_OK;
    kd_model_free(m);
    return ok;
}

static int fuzz_safetensors(const uint8_t *data, size_t size) { return fuzz_load_file("st", data, size, load_safetensors); }

KD_FUZZ_TARGET(fuzz_safetensors)
