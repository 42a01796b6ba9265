/* Status codes and error-message formatting. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/status.h"

/* A message longer than kd_error's buffer keeps its start (which names the file) and its end (the
 * reason, which a plain truncation would cut), joined by "...". KD_ERROR_HEAD bytes of the start
 * are kept; cuts never split a UTF-8 character. */
#define KD_ERROR_HEAD 160
#define KD_ERROR_DOTS "..."

static void shorten_middle(char *dst, size_t cap, const char *src, size_t len) {
    size_t head = KD_ERROR_HEAD, dots = sizeof KD_ERROR_DOTS - 1;
    size_t tail = cap - 1 - head - dots;
    while (head > 0 && ((unsigned char)src[head] & 0xc0) == 0x80) head--;  /* src[head] starts a character */
    size_t from = len - tail;
    while (from < len && ((unsigned char)src[from] & 0xc0) == 0x80) from++;
    memcpy(dst, src, head);
    memcpy(dst + head, KD_ERROR_DOTS, dots);
    memcpy(dst + head + dots, src + from, len - from + 1); /* with the terminating NUL */
}

kd_status kd_error_set(kd_error *err, kd_status status, const char *fmt, ...) {
    if (!err) return status;
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof err->msg) {
        /* Too long: format it whole and keep both ends. Without memory the start stays. */
        char *full = malloc((size_t)n + 1);
        if (full) {
            vsnprintf(full, (size_t)n + 1, fmt, ap2);
            shorten_middle(err->msg, sizeof err->msg, full, (size_t)n);
            free(full);
        }
    }
    va_end(ap2);
    err->status = status;
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
