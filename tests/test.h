/* Minimal test harness: CHECK records a failure and continues; each test program ends with
 * TEST_DONE(), which prints "N passed, M failed" and returns non-zero on any failure. */
#ifndef KD_TEST_H
#define KD_TEST_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int kd_test_pass = 0, kd_test_fail = 0;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (cond) {                                                                          \
            kd_test_pass++;                                                                  \
        } else {                                                                             \
            kd_test_fail++;                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);         \
        }                                                                                    \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                 \
    do {                                                                                     \
        if (cond) {                                                                          \
            kd_test_pass++;                                                                  \
        } else {                                                                             \
            kd_test_fail++;                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);         \
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
