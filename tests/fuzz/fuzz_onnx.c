/* libFuzzer target for the ONNX importer (kd_onnx_import: protobuf-c's parse, then opsets, graph
 * input, initializers and their sizes, every operator's attributes and shapes, constant folding,
 * the built model). Built and run by scripts/fuzz.sh; tests/unit/test_fuzz_corpus.c replays
 * tests/fuzz/corpus/onnx. */
#include "distill/onnx.h"
#include "fuzz_file.h"

static int load_onnx(const char *path) {
    kd_model *m = NULL;
    kd_error err;
    int ok = kd_onnx_import(path, NULL, &m, NULL, &err) == KD_STATUS_OK;
    kd_model_free(m);
    return ok;
}

static int fuzz_onnx(const uint8_t *data, size_t size) { return fuzz_load_file("onnx", data, size, load_onnx); }

KD_FUZZ_TARGET(fuzz_onnx)
