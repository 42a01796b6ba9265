/* The one interface to the GEMM library. Today oneDNN's dnnl_sgemm (row-major), chosen by
 * measurement (~218 GFLOP/s on one core here vs ~105 for OpenBLAS as Debian ships it; see
 * docs/BENCHMARKS.md). Called inside an active OpenMP parallel region it runs single-threaded,
 * elsewhere on omp_get_max_threads() threads: oneDNN (built for OpenMP) takes no thread count per
 * call, so that one comes from the program, not from the library (ops.h). */
#include <stdio.h>

#include <oneapi/dnnl/dnnl.h>

#include "distill/ops.h"

void kd_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    /* dnnl_sgemm only fails on invalid arguments, which are programming errors here. */
    (void)dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

const char *kd_gemm_backend(void) {
    static char name[64];
    if (!name[0]) {
        const dnnl_version_t *v = dnnl_version();
        snprintf(name, sizeof name, "oneDNN %d.%d.%d sgemm", v->major, v->minor, v->patch);
    }
    return name;
}
