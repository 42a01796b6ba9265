/* Data-parallel processes over MPI: see include/distill/dist.h. Built with MPI when CMake finds it
 * (KD_HAVE_MPI); without it every function is the single-process case. Only the thread that called
 * kd_dist_init calls MPI (MPI_THREAD_FUNNELED): OpenMP threads inside a rank never do. */
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "distill/dist.h"

#ifdef KD_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1;
static double g_comm_seconds = 0.0;

int kd_dist_rank(void) { return g_rank; }
int kd_dist_size(void) { return g_size; }
double kd_dist_comm_seconds(void) { return g_comm_seconds; }

void kd_dist_share(long long n, int rank, int size, long long *lo, long long *hi) {
    if (size < 1) size = 1;
    *lo = n * rank / size;
    *hi = n * (rank + 1) / size;
}

#ifdef KD_HAVE_MPI
static int g_on = 0;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* When the collective this rank is in started (0: none), for kd_dist_waiting_seconds, which a
 * watchdog thread reads while the main thread waits. */
static _Atomic double g_wait_since = 0.0;

static double begin(void) {
    double t = now();
    atomic_store(&g_wait_since, t);
    return t;
}

static void end(double t0) {
    g_comm_seconds += now() - t0;
    atomic_store(&g_wait_since, 0.0);
}

double kd_dist_waiting_seconds(void) {
    double t = atomic_load(&g_wait_since);
    return t > 0 ? now() - t : 0.0;
}
int kd_dist_built(void) { return 1; }

/* A launcher leaves one of these in each rank's environment: Open MPI's mpirun, PMIx (Open MPI 4+,
 * Slurm's srun --mpi=pmix), PMI-1/2 (MPICH's Hydra, srun --mpi=pmi2). */
static int launched_by_mpi(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

static kd_status mpi_fail(kd_error *err, const char *what, int rc) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
    return kd_error_set(err, KD_STATUS_IO, "%s failed on rank %d of %d: %s", what, g_rank, g_size, msg);
}

kd_status kd_dist_init(int *argc, char ***argv, kd_error *err) {
    if (g_on || !launched_by_mpi()) return KD_STATUS_OK;
    int provided = 0, rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return kd_error_set(err, KD_STATUS_IO, "MPI_Init_thread failed (error %d)", rc);
    g_on = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (provided < MPI_THREAD_FUNNELED)
        return kd_error_set(err, KD_STATUS_IO, "this MPI library gives thread level %d, distill needs "
                            "MPI_THREAD_FUNNELED (OpenMP threads inside each rank)", provided);
    return KD_STATUS_OK;
}

void kd_dist_finalize(void) {
    if (!g_on) return;
    MPI_Finalize();
    g_on = 0;
}

void kd_dist_abort(int code) {
    if (g_on && g_size > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

/* MPI counts are ints: sums of more than 2^30 elements go in pieces. */
#define CHUNK ((size_t)1 << 30)

static kd_status sum(void *buf, size_t n, MPI_Datatype type, size_t elem, kd_error *err) {
    if (!g_on || g_size < 2 || !n) return KD_STATUS_OK;
    double t0 = begin();
    for (size_t off = 0; off < n; off += CHUNK) {
        int cnt = (int)(n - off < CHUNK ? n - off : CHUNK);
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * elem, cnt, type, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) {
            end(t0);
            return mpi_fail(err, "MPI_Allreduce", rc);
        }
    }
    end(t0);
    return KD_STATUS_OK;
}

kd_status kd_dist_sum_f32(float *buf, size_t n, kd_error *err) { return sum(buf, n, MPI_FLOAT, sizeof(float), err); }
kd_status kd_dist_sum_f64(double *buf, size_t n, kd_error *err) { return sum(buf, n, MPI_DOUBLE, sizeof(double), err); }

static MPI_Request g_req[KD_DIST_MAX_PENDING];
static int g_pending = 0;

kd_status kd_dist_wait(kd_error *err) {
    if (!g_pending) return KD_STATUS_OK;
    double t0 = begin();
    int rc = MPI_Waitall(g_pending, g_req, MPI_STATUSES_IGNORE);
    g_pending = 0;
    end(t0);
    return rc == MPI_SUCCESS ? KD_STATUS_OK : mpi_fail(err, "MPI_Iallreduce", rc);
}

kd_status kd_dist_isum_f32(float *buf, size_t n, kd_error *err) {
    if (!g_on || g_size < 2 || !n) return KD_STATUS_OK;
    if (n > CHUNK) return kd_error_set(err, KD_STATUS_BAD_ARG, "a non-blocking sum of %zu floats: at most 2^30", n);
    kd_status st;
    if (g_pending == KD_DIST_MAX_PENDING && (st = kd_dist_wait(err))) return st;
    double t0 = begin();
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &g_req[g_pending]);
    end(t0);
    if (rc != MPI_SUCCESS) return mpi_fail(err, "MPI_Iallreduce", rc);
    g_pending++;
    return KD_STATUS_OK;
}

void kd_dist_progress(void) {
    if (!g_pending) return;
    int done = 0;
    double t0 = begin();
    MPI_Testall(g_pending, g_req, &done, MPI_STATUSES_IGNORE);
    if (done) g_pending = 0;
    end(t0);
}

void kd_dist_barrier(void) {
    if (!g_on || g_size < 2) return;
    double t0 = begin();
    MPI_Barrier(MPI_COMM_WORLD);
    end(t0);
}

int kd_dist_same(const void *buf, size_t bytes) {
    if (!g_on || g_size < 2) return 1;
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    const unsigned char *p = buf;
    for (size_t i = 0; i < bytes; i++) h = (h ^ p[i]) * 1099511628211ULL;
    /* every bit set on all ranks (AND) equals every bit set on any (OR) only if all hashes agree */
    uint64_t all = 0, any = 0;
    double t0 = begin();
    int ok = MPI_Allreduce(&h, &all, 1, MPI_UINT64_T, MPI_BAND, MPI_COMM_WORLD) == MPI_SUCCESS &&
             MPI_Allreduce(&h, &any, 1, MPI_UINT64_T, MPI_BOR, MPI_COMM_WORLD) == MPI_SUCCESS;
    end(t0);
    return ok && all == any;
}

#else /* no MPI in this build: one process */
int kd_dist_built(void) { return 0; }
/* N copies of a build without MPI would each train alone and write the same files: refuse. */
kd_status kd_dist_init(int *argc, char ***argv, kd_error *err) {
    (void)argc, (void)argv;
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    if (!n) n = getenv("PMI_SIZE");
    if (n && atoi(n) > 1)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "launched as one of %s processes, but this distill was built "
                            "without MPI (install libopenmpi-dev and rebuild) and would run %s separate copies", n, n);
    return KD_STATUS_OK;
}
void kd_dist_finalize(void) {}
void kd_dist_abort(int code) { (void)code; }
kd_status kd_dist_sum_f32(float *buf, size_t n, kd_error *err) {
    (void)buf, (void)n, (void)err;
    return KD_STATUS_OK;
}
kd_status kd_dist_sum_f64(double *buf, size_t n, kd_error *err) {
    (void)buf, (void)n, (void)err;
    return KD_STATUS_OK;
}
void kd_dist_barrier(void) {}
double kd_dist_waiting_seconds(void) { return 0.0; }
kd_status kd_dist_isum_f32(float *buf, size_t n, kd_error *err) {
    (void)buf, (void)n, (void)err;
    return KD_STATUS_OK;
}
void kd_dist_progress(void) {}
kd_status kd_dist_wait(kd_error *err) {
    (void)err;
    return KD_STATUS_OK;
}
int kd_dist_same(const void *buf, size_t bytes) {
    (void)buf, (void)bytes;
    return 1;
}
#endif
