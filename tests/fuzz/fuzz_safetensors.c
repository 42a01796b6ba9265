/* libFuzzer target for the safetensors layer through the fp32 checkpoint loader
 * (kd_checkpoint_load: framing, tensor table, metadata, optimizer and training state, model YAML,
 * weights). Nothing may crash, leak or allocate beyond what the file justifies. Built and run by
 * scripts/fuzz.sh; tests/unit/test_fuzz_corpus.c replays tests/fuzz/corpus/safetensors. */
#include "distill/checkpoint.h"
#include "fuzz_file.h"

KD_FUZZ_LOADER_TARGET(safetensors, "st", kd_model, kd_checkpoint_load, kd_model_free)
