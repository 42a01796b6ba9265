/* Status codes and error-message formatting. */
#include <stdarg.h>
#include <stdio.h>

#include "distill/status.h"

kd_status kd_error_set(kd_error *err, kd_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

const char *kd_status_name(kd_status s) {
    switch (s) {
    case KD_STATUS_OK: return "ok";
    case KD_STATUS_BAD_ARG: return "bad argument";
    case KD_STATUS_BAD_FILE: return "bad file";
    case KD_STATUS_IO: return "i/o error";
    case KD_STATUS_NOT_FOUND: return "not found";
    case KD_STATUS_NO_MEMORY: return "out of memory";
    case KD_STATUS_BAD_MODEL: return "bad model";
    case KD_STATUS_MISMATCH: return "mismatch";
    case KD_STATUS_DIVERGED: return "diverged";
    case KD_STATUS_INTERRUPTED: return "interrupted";
    }
    return "unknown";
}
