/* Data-parallel processes over MPI (src/core/dist.c).
 *
 * `mpirun -np N distill train ...` starts N copies of the program; each is a rank. Every rank holds
 * the whole model and optimizer, takes a contiguous share of each global batch, and the ranks sum
 * their gradients (kd_dist_sum_*) before every rank applies the same update, so their weights stay
 * bit-identical. A process started without mpirun (or a build without MPI) is rank 0 of 1 and every
 * call here is a no-op: the single-process program is exactly the one it was before.
 *
 * Failures: MPI errors return a status and a message (MPI_ERRORS_RETURN); a rank that dies is
 * detected by the MPI runtime, which ends the whole job (mpirun names the rank). Only rank 0 writes
 * files and prints progress (the training loops and the CLI check kd_dist_rank()). */
#ifndef DISTILL_DIST_H
#define DISTILL_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "distill/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Joins the MPI job when the process was launched by an MPI launcher (mpirun/mpiexec, Slurm's
 * srun, Hydra: it looks for their environment variables), else does nothing. Safe to call once. */
kd_status kd_dist_init(int *argc, char ***argv, kd_error *err);
/* Leaves the job (MPI_Finalize) after a run all ranks finished together. */
void kd_dist_finalize(void);
/* Ends every rank of the job with `code` (MPI_Abort): for a failure on some ranks only, where the
 * others would wait for it in the next collective. Returns when the job has one rank. */
void kd_dist_abort(int code);

int kd_dist_rank(void);  /* 0 in a single process */
int kd_dist_size(void);  /* 1 in a single process */
int kd_dist_built(void); /* 1 if this build has MPI */

/* The contiguous share of n items that `rank` of `size` takes: [lo, hi), lo = floor(n*rank/size).
 * Shares differ by at most one item; the first ranks get the smaller ones. */
void kd_dist_share(long long n, int rank, int size, long long *lo, long long *hi);

/* In-place sums over all ranks (MPI_Allreduce); every rank receives the same bits. */
kd_status kd_dist_sum_f32(float *buf, size_t n, kd_error *err);
kd_status kd_dist_sum_f64(double *buf, size_t n, kd_error *err);
/* Non-blocking sums (MPI_Iallreduce), to overlap the gradient sum with the backward pass: start
 * one on a range that will not change until kd_dist_wait; kd_dist_progress lets started sums
 * advance (MPI progresses inside its calls); kd_dist_wait ends them all. At most
 * KD_DIST_MAX_PENDING at a time (a start beyond waits for the oldest first). */
#define KD_DIST_MAX_PENDING 64
kd_status kd_dist_isum_f32(float *buf, size_t n, kd_error *err);
void kd_dist_progress(void);
kd_status kd_dist_wait(kd_error *err);
/* Waits until every rank is here (MPI_Barrier): a run's clock starts after the ranks' loading. */
void kd_dist_barrier(void);
/* 1 if every rank holds the same bytes (a 64-bit hash compared across ranks): the check that the
 * replicas did not drift apart. */
int kd_dist_same(const void *buf, size_t bytes);
/* How long this rank has been waiting in its current collective (0 if in none): a rank that
 * stopped or hangs leaves the others waiting forever, so the CLI's watchdog thread ends the job
 * when this passes a limit (KD_DIST_TIMEOUT; docs/DISTRIBUTED.md). Safe from any thread. */
double kd_dist_waiting_seconds(void);
/* Seconds spent in the sums since the process started (what data parallelism costs this run). */
double kd_dist_comm_seconds(void);

#ifdef __cplusplus
}
#endif
#endif
