/* NumPy .npy files (src/format/npy.c): teacher logits written by any framework with np.save, and
 * the logits Distill writes for them. */
#ifndef DISTILL_NPY_H
#define DISTILL_NPY_H
#include <stddef.h>
#include <stdint.h>

#include "distill/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The header of a .npy array (versions 1-3) held in memory: what kd_npy_parse_header found. */
#define KD_NPY_MAX_DIMS 8
typedef struct kd_npy_header {
    char kind;          /* 'f' float, 'i' signed, 'u' unsigned integer, 'b' bool; 0: another dtype */
    int item;           /* bytes per element (1, 2, 4, 8) */
    int big_endian;     /* '>' byte order (converted by kd_npy_get_*) */
    int fortran;        /* fortran_order: 1 True, 0 False, -1 missing or neither */
    int has_shape;      /* the dict has 'shape': (...) */
    int ndim;           /* dimensions, 0..KD_NPY_MAX_DIMS; -1 when the shape is missing or malformed
                           (then dims holds the first KD_NPY_MAX_DIMS parsed) */
    int64_t dims[KD_NPY_MAX_DIMS];
    char descr[80];     /* the dtype as written, printable (for messages); "(none)" when absent */
    size_t data_off;    /* the data's offset in the buffer */
} kd_npy_header;

/* Parse the magic, version, header dict (descr, fortran_order, shape) of a .npy image buf[0..len)
 * named `name` in messages. Fails only on a bad magic, an unknown version or a truncated header;
 * the caller checks the dtype, order and shape it needs (and the data size: kd_npy_data_bytes). */
kd_status kd_npy_parse_header(const void *buf, size_t len, const char *name, kd_npy_header *h, kd_error *err);
/* Elements (product of dims) and bytes of the data; INT64_MAX when they overflow or ndim < 0. */
int64_t kd_npy_count(const kd_npy_header *h);
/* Element i of the data at d (a header's kind 'f', 'i', 'u' or 'b', either byte order) as a double /
 * as an int64 (integers and bools only; uint64 above INT64_MAX reads as -1). */
double kd_npy_get_f64(const kd_npy_header *h, const unsigned char *d, size_t i);
int64_t kd_npy_get_i64(const kd_npy_header *h, const unsigned char *d, size_t i);

/* NumPy .npy reader for teacher logits: float32 or float16, C order, shape [N, C]; want_c > 0 is
 * the number of classes the logits must have (C), 0 takes any. */
kd_status kd_npy_load_logits(const char *path, int want_c, float **data, int *n, int *c, kd_error *err);
/* Write a float32 [n, c] .npy (version 1.0), atomically. */
kd_status kd_npy_save(const char *path, const float *data, int n, int c, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
