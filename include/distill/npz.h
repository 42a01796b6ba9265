/* NumPy .npz archives (src/format/npz.c): the zip container np.savez and np.savez_compressed write,
 * members stored or deflate-compressed, zip64 where sizes or offsets need it. Every member's CRC-32
 * and sizes are checked; sizes are checked against the file and a budget before anything is
 * allocated. */
#ifndef DISTILL_NPZ_H
#define DISTILL_NPZ_H
#include <stddef.h>

#include "distill/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_npz kd_npz;

/* Open path and read its central directory. */
kd_status kd_npz_open(const char *path, kd_npz **out, kd_error *err);
/* 1 when the archive has member `name` (".npy" appended by np.savez: "x_train" finds x_train.npy). */
int kd_npz_has(const kd_npz *z, const char *name);
/* Member `name` (as kd_npz_has) read and checked (CRC-32, sizes) into a malloc'd buffer (*data,
 * *len); a member larger than max_bytes is refused before allocating, saying how large it is. */
kd_status kd_npz_read(kd_npz *z, const char *name, size_t max_bytes, unsigned char **data, size_t *len,
                      kd_error *err);
void kd_npz_close(kd_npz *z);

#ifdef __cplusplus
}
#endif
#endif
