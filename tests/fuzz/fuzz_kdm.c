/* libFuzzer target for the runtime's model loader: any bytes go through kdrt_model_load; a file it
 * accepts is prepared in an arena of exactly kdrt_arena_size bytes (so ASan sees any overrun) and
 * invoked on a fixed input. Nothing may crash, hang or touch memory outside the buffers.
 * Built and run by scripts/fuzz.sh (clang -fsanitize=fuzzer,address,undefined); links only kdrt.
 * tests/unit/test_fuzz_corpus.c replays tests/fuzz/corpus/kdm. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kdrt_model.h"
#include "fuzz_file.h"
#include "fuzz_kdm_crc.h"

/* Load, prepare and run one image (returns whether it loaded); `fix_crc` first rewrites the header's checksum (bytes 8-11, the
 * CRC-32 of bytes 12..file end) so that mutations get past it to the structural checks. */
static int kdm_run_one(const uint8_t *data, size_t size, int fix_crc) {
    /* the loader wants 4-byte-aligned bytes; an exact-size copy lets ASan catch over-reads */
    uint8_t *bytes = malloc(size ? size : 1);
    if (!bytes) return 0;
    memcpy(bytes, data, size);
    if (fix_crc) fuzz_kdm_fix_crc(bytes, size);
    kdrt_model m;
    int ok = kdrt_model_load(&m, bytes, size) == KDRT_STATUS_OK;
    if (ok) {
        size_t n = kdrt_arena_size(&m);
        uint8_t *arena = malloc(n ? n : 1);
        size_t in_n = (size_t)m.input_dims.h * m.input_dims.w * m.input_dims.c;
        int8_t *in = malloc(in_n), *out = malloc((size_t)m.n_classes);
        if (arena && in && out && in_n < (1u << 24) && kdrt_prepare(&m, arena, n) == KDRT_STATUS_OK) {
            for (size_t i = 0; i < in_n; i++) in[i] = (int8_t)(i * 37 + 11);
            kdrt_invoke(&m, in, out);
            kdrt_output_argmax(&m, out);
        }
        free(arena);
        free(in);
        free(out);
    }
    free(bytes);
    return ok;
}

/* Returns whether the bytes load as they are. */
static int fuzz_kdm(const uint8_t *data, size_t size) {
    int ok = kdm_run_one(data, size, 0);
    kdm_run_one(data, size, 1);
    return ok;
}

KD_FUZZ_TARGET(fuzz_kdm)
