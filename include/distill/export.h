/* Export of int8 models to the runtime's deployable `.kdm` format (runtime/include/kdrt_model.h,
 * docs/FORMAT.md), and back. The writer is src/format/kdm.c; the only reader is the runtime's
 * kdrt_model_load, which kd_kdm_read calls, so the two sides cannot disagree about the format.
 *
 * The writer stores int8 weights, int32 biases, float weight scales, per-tensor activation
 * quantization and operator parameters; it checks that the int8 model's requantization multipliers
 * and add parameters are exactly what the runtime will recompute from those scales (so the device's
 * logits are the training side's, bit for bit), plans the activation memory (greedy by size, memory
 * reused between tensors whose lifetimes do not overlap) and validates its own output by loading it. */
#ifndef DISTILL_EXPORT_H
#define DISTILL_EXPORT_H
#include <stddef.h>

#include "distill/int8.h"
#include "distill/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Serialise q to a new .kdm image (*bytes malloc'ed, free with free()). Errors: KD_STATUS_BAD_MODEL
 * naming the layer for a model the format cannot hold (a dimension above 65535, more than 32767
 * layers, inconsistent shapes or zero points, multipliers that do not follow from the scales). */
kd_status kd_kdm_write(const kd_int8_model *q, unsigned char **bytes, size_t *len, kd_error *err);

/* kd_kdm_write, then an atomic write of the file. */
kd_status kd_kdm_save(const char *path, const kd_int8_model *q, kd_error *err);

/* A C header holding the .kdm image as a 16-byte-aligned `static const unsigned char <symbol>[]`
 * array (for flash), with `#define <SYMBOL>_SIZE` (its bytes) and `#define <SYMBOL>_ARENA_SIZE`
 * (what kdrt_arena_size reports for it). symbol: a C identifier (letters, digits, '_', not starting
 * with a digit). *text malloc'ed, NUL-terminated; *len excludes the NUL. `source` (may be NULL)
 * is named in the header's comment. */
kd_status kd_kdm_to_c(const unsigned char *bytes, size_t n, const char *symbol, const char *source, char **text,
                      size_t *len, kd_error *err);

/* kd_kdm_write + kd_kdm_to_c, written atomically to path. */
kd_status kd_kdm_save_c(const char *path, const kd_int8_model *q, const char *symbol, kd_error *err);

/* A .kdm image back to a kd_int8_model through the runtime's loader (every field validated):
 * multipliers, shifts and add parameters recomputed as kdrt_prepare does; layers named "<op><i>"
 * (the file keeps no layer names), src = -1. KD_STATUS_BAD_FILE with the runtime's reason. */
kd_status kd_kdm_read(const void *bytes, size_t len, kd_int8_model **out, kd_error *err);
kd_status kd_kdm_load(const char *path, kd_int8_model **out, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
