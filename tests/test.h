/* Minimal test harness: CHECK records a failure and continues; each test program ends with
 * TEST_DONE(), which prints "N passed, M failed" and returns non-zero on any failure. */
#ifndef KD_TEST_H
#define KD_TEST_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int kd_test_pass = 0, kd_test_fail = 0;

/* Counts one check; on failure prints "file:line: CHECK failed: expr" and either a newline or,
 * when a message follows (CHECK_MSG), ": ". Returns ok. */
static inline int kd_test_check(int ok, const char *file, int line, const char *expr, int has_msg) {
    if (ok) {
        kd_test_pass++;
        return 1;
    }
    kd_test_fail++;
    fprintf(stderr, "%s:%d: CHECK failed: %s%s", file, line, expr, has_msg ? ": " : "\n");
    return 0;
}

#define CHECK(cond) ((void)kd_test_check((cond) ? 1 : 0, __FILE__, __LINE__, #cond, 0))

#define CHECK_MSG(cond, ...)                                                                 \
    do {                                                                                     \
        if (!kd_test_check((cond) ? 1 : 0, __FILE__, __LINE__, #cond, 1)) {                  \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
        }                                                                                    \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                \
    CHECK_MSG(fabs((double)(a) - (double)(b)) <= (tol), "%g vs %g (tol %g)", (double)(a),    \
              (double)(b), (double)(tol))

#define TEST_DONE()                                                                          \
    do {                                                                                     \
        printf("%d passed, %d failed\n", kd_test_pass, kd_test_fail);                       \
        return kd_test_fail ? 1 : 0;                                                         \
    } while (0)

#endif
