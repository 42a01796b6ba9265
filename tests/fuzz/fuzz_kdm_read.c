/* libFuzzer target for the training side's .kdm reader (kd_kdm_read: the runtime's loader, then the
 * conversion to a kd_int8_model with multipliers, shifts and add parameters recomputed), used by
 * `distill export MODEL.kdm` and `distill bench --verify`. A model it accepts is run through the
 * integer forward (kd_int8_forward_q) on a fixed input and written back with kd_kdm_write, which
 * must read again (the writer's promise). As in fuzz_kdm, each input is also tried with its
 * CRC-32 rewritten, so that mutations reach the structural checks. Built and run by
 * scripts/fuzz.sh; tests/unit/test_fuzz_corpus.c replays tests/fuzz/corpus/kdm_read. */
#include <stdlib.h>
#include <string.h>

#include "distill/export.h"
#include "distill/int8.h"
#include "distill/quantize.h"
#include "fuzz_file.h"
#include "fuzz_kdm_crc.h"

static int kdm_read_one(const uint8_t *data, size_t size, int fix_crc) {
    uint8_t *bytes = malloc(size ? size : 1); /* an exact-size copy lets ASan catch over-reads */
    if (!bytes) return 0;
    memcpy(bytes, data, size);
    if (fix_crc) fuzz_kdm_fix_crc(bytes, size);
    kd_int8_model *q = NULL, *again = NULL;
    kd_error err;
    int ok = kd_kdm_read(bytes, size, &q, &err) == KD_STATUS_OK;
    free(bytes);
    if (!ok) return 0;
    size_t in_n = (size_t)q->in_h * q->in_w * q->in_c;
    int8_t *in = in_n < (1u << 24) ? malloc(in_n) : NULL, *logits = malloc((size_t)q->n_classes);
    if (in && logits) {
        for (size_t i = 0; i < in_n; i++) in[i] = (int8_t)(i * 37 + 11);
        kd_int8_forward_q(q, in, 1, logits, &err);
    }
    free(in);
    free(logits);
    unsigned char *image = NULL;
    size_t len = 0;
    if (kd_kdm_write(q, &image, &len, &err) == KD_STATUS_OK) {
        if (kd_kdm_read(image, len, &again, &err) != KD_STATUS_OK) abort(); /* what it writes it must read */
        kd_int8_free(again);
    }
    free(image);
    kd_int8_free(q);
    return 1;
}

/* Returns whether the bytes load as they are. */
static int fuzz_kdm_read(const uint8_t *data, size_t size) {
    int ok = kdm_read_one(data, size, 0);
    kdm_read_one(data, size, 1);
    return ok;
}

KD_FUZZ_TARGET(fuzz_kdm_read)
