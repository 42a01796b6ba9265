/* NumPy .npy files (src/format/npy.c): teacher logits written by any framework with np.save, and
 * the logits Distill writes for them. */
#ifndef DISTILL_NPY_H
#define DISTILL_NPY_H
#include "distill/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* NumPy .npy reader for teacher logits: float32 or float16, C order, shape [N, C]; want_c > 0 is
 * the number of classes the logits must have (C), 0 takes any. */
kd_status kd_npy_load_logits(const char *path, int want_c, float **data, int *n, int *c, kd_error *err);
/* Write a float32 [n, c] .npy (version 1.0), atomically. */
kd_status kd_npy_save(const char *path, const float *data, int n, int c, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
