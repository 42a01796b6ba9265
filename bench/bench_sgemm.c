/* bench_sgemm: SGEMM GFLOP/s of the reference libraries, the ceiling Distill's GEMM-bound layers
 * are measured against. Square row-major C = A*B (no transpose), n = 512, 1024, 2048 (or the
 * sizes given as arguments), 1 and 2 threads, best of REPS timed calls after one warm-up call.
 *
 * Build (oneDNN only):       gcc -O2 bench/bench_sgemm.c -o bench_sgemm -ldnnl -fopenmp
 * Build (+ OpenBLAS):        gcc -O2 -DWITH_OPENBLAS bench/bench_sgemm.c -o bench_sgemm -ldnnl -lopenblas -fopenmp
 * Run:                       ./bench_sgemm [n ...]
 *                            OPENBLAS_CORETYPE=SkylakeX ./bench_sgemm     (force OpenBLAS's kernel set)
 * Environment: REPS (default 5), THREADS (max thread count, default 2).
 * Not part of the build or the tests; results in bench/results/sgemm.txt. */
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef WITH_OPENBLAS
#include <cblas.h>
char *openblas_get_corename(void);
char *openblas_get_config(void);
void openblas_set_num_threads(int);
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

enum { LIB_DNNL, LIB_OPENBLAS };

static void gemm(int lib, int n, const float *A, const float *B, float *C) {
    if (lib == LIB_DNNL) {
        dnnl_status_t s = dnnl_sgemm('N', 'N', n, n, n, 1.f, A, n, B, n, 0.f, C, n);
        if (s != dnnl_success) {
            fprintf(stderr, "dnnl_sgemm failed: %d\n", (int)s);
            exit(1);
        }
    }
#ifdef WITH_OPENBLAS
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, A, n, B, n, 0.f, C, n);
#endif
}

/* Best GFLOP/s over reps calls; also checks one entry of C against a direct dot product. */
static double bench(int lib, int n, int reps, const float *A, const float *B, float *C) {
    gemm(lib, n, A, B, C); /* warm-up: thread pools, JIT kernels, page faults */
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = now();
        gemm(lib, n, A, B, C);
        t = now() - t;
        if (t < best) best = t;
    }
    int i = n / 3, j = n / 7;
    double ref = 0;
    for (int k = 0; k < n; k++) ref += (double)A[(size_t)i * n + k] * B[(size_t)k * n + j];
    double err = C[(size_t)i * n + j] - ref;
    if (err < 0) err = -err;
    if (err > 1e-3 * (1 + (ref < 0 ? -ref : ref))) {
        fprintf(stderr, "wrong result: C[%d,%d] = %g, expected %g\n", i, j, C[(size_t)i * n + j], ref);
        exit(1);
    }
    return 2.0 * n * n * n / best / 1e9;
}

int main(int argc, char **argv) {
    int sizes[16], ns = 0;
    for (int a = 1; a < argc && ns < 16; a++) sizes[ns++] = atoi(argv[a]);
    if (!ns) { sizes[0] = 512; sizes[1] = 1024; sizes[2] = 2048; ns = 3; }
    int reps = getenv("REPS") ? atoi(getenv("REPS")) : 5;
    int maxt = getenv("THREADS") ? atoi(getenv("THREADS")) : 2;
    if (reps < 1) reps = 1;
    if (maxt < 1) maxt = 1;

    const dnnl_version_t *v = dnnl_version();
    printf("oneDNN %d.%d.%d (cpu runtime %s)", v->major, v->minor, v->patch,
           v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other");
#ifdef WITH_OPENBLAS
    printf(", %s, core %s, OPENBLAS_CORETYPE=%s", openblas_get_config(), openblas_get_corename(),
           getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)");
#endif
    printf("\nrow-major square SGEMM, C = A*B, best of %d; GFLOP/s = 2n^3 / time\n", reps);
    printf("%-10s %6s %8s %10s\n", "library", "n", "threads", "GFLOP/s");

    int nmax = 0;
    for (int s = 0; s < ns; s++) if (sizes[s] > nmax) nmax = sizes[s];
    size_t sz = (size_t)nmax * nmax;
    float *A = malloc(sz * sizeof *A), *B = malloc(sz * sizeof *B), *C = malloc(sz * sizeof *C);
    if (!A || !B || !C) { fprintf(stderr, "out of memory\n"); return 1; }
    unsigned x = 12345;
    for (size_t i = 0; i < sz; i++) {
        x = x * 1664525u + 1013904223u; A[i] = (float)(x >> 8) / 16777216.f - 0.5f;
        x = x * 1664525u + 1013904223u; B[i] = (float)(x >> 8) / 16777216.f - 0.5f;
    }

    int libs[2] = {LIB_DNNL, LIB_OPENBLAS}, nlibs = 1;
    const char *names[2] = {"oneDNN", "OpenBLAS"};
#ifdef WITH_OPENBLAS
    nlibs = 2;
#endif
    for (int l = 0; l < nlibs; l++)
        for (int t = 1; t <= maxt; t++) {
            omp_set_num_threads(t);
#ifdef WITH_OPENBLAS
            openblas_set_num_threads(t);
#endif
            for (int s = 0; s < ns; s++) {
                double g = bench(libs[l], sizes[s], reps, A, B, C);
                printf("%-10s %6d %8d %10.1f\n", names[l], sizes[s], t, g);
                fflush(stdout);
            }
        }
    free(A); free(B); free(C);
    return 0;
}
