/* libFuzzer target for the language-model checkpoint loader (kd_lm_load: the safetensors layer,
 * then the configuration, BPE merges and F32 tensors). Built and run by scripts/fuzz.sh;
 * tests/unit/test_fuzz_corpus.c replays tests/fuzz/corpus/lm_ckpt. */
#include "distill/lm.h"
#include "fuzz_file.h"

KD_FUZZ_LOADER_TARGET(lm_ckpt, "lm", kd_lm, kd_lm_load, kd_lm_free)
