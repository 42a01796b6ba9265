/* Status codes and error messages of the Distill training library.
 * Every library function that can fail returns a kd_status and, when given a kd_error,
 * fills it with a one-line message naming the file/layer and the problem. Only the CLI exits. */
#ifndef DISTILL_STATUS_H
#define DISTILL_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kd_status {
    KD_STATUS_OK = 0,
    KD_STATUS_BAD_ARG,      /* a caller passed an invalid value */
    KD_STATUS_BAD_FILE,     /* a file from outside is malformed, truncated or inconsistent */
    KD_STATUS_IO,           /* open/read/write/rename failed */
    KD_STATUS_NOT_FOUND,    /* a file or a named item does not exist */
    KD_STATUS_NO_MEMORY,
    KD_STATUS_BAD_MODEL,    /* model description invalid (unknown layer, shape mismatch) */
    KD_STATUS_MISMATCH,     /* checkpoint does not match the model */
    KD_STATUS_DIVERGED,     /* training produced NaN or inf */
    KD_STATUS_INTERRUPTED   /* stopped by a signal; state was saved */
} kd_status;

typedef struct kd_error {
    kd_status status;
    char msg[512];
} kd_error;

/* Set err (may be NULL) to status + printf-style message; returns status so callers can
 * `return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: truncated", path);`. A message longer than
 * msg keeps its start and its end (the reason), with "..." in place of the middle. */
kd_status kd_error_set(kd_error *err, kd_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

const char *kd_status_name(kd_status s);

#ifdef __cplusplus
}
#endif
#endif
