/* libFuzzer target for the int8 checkpoint loader (kd_int8_load: the safetensors layer, then the
 * int8 model's JSON description and its I8/I32/F32 tensors). Built and run by scripts/fuzz.sh;
 * tests/unit/test_fuzz_corpus.c replays tests/fuzz/corpus/int8. */
#include "distill/int8.h"
#include "fuzz_file.h"

KD_FUZZ_LOADER_TARGET(int8, "int8", kd_int8_model, kd_int8_load, kd_int8_free)
