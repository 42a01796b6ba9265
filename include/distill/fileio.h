/* Whole-file I/O shared by every container format (src/format/fileio.c): an atomic write, so a
 * crash never leaves a half-written file under the real name, and a read of a whole file. */
#ifndef DISTILL_FILEIO_H
#define DISTILL_FILEIO_H
#include <stddef.h>

#include "distill/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Write `len` bytes atomically to path (temp + fsync + rename). */
kd_status kd_write_file_atomic(const char *path, const void *data, size_t len, kd_error *err);
/* Read a whole file (malloc'd, NUL-terminated for convenience). */
kd_status kd_read_file(const char *path, char **data, size_t *len, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
