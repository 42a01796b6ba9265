/* The data-parallel step shared by the training loops (kd_train, kd_lm_train): what every rank does
 * with its gradients and statistics after its backward pass. Single-process runs never call these
 * (the loops check kd_dist_size() > 1), so they stay bit-identical to what they were. */
#ifndef DISTILL_TRAIN_DATA_PARALLEL_H
#define DISTILL_TRAIN_DATA_PARALLEL_H

#include "distill/dist.h"
#include "distill/model.h"

/* Scales this rank's gradients by `scale` (its share of the global batch: a loss that is a mean
 * over the share becomes its part of the mean over the global batch), sums them over the ranks,
 * and sums the n_stats doubles of `stats` (the step's loss, correct count, stop flag) likewise. */
kd_status kd_dp_sum_grads(float *grads, size_t n, float scale, double *stats, int n_stats, kd_error *err);
/* Gradient buckets that overlap the sum with the backward pass: kd_dp_grad_ready is the model's
 * kd_grad_ready_fn; once `bucket` floats are finished it scales them and starts their sum, and
 * lets the started sums advance. kd_dp_buckets_end starts what is left and waits for them all. */
typedef struct kd_dp_buckets {
    float *grads;
    size_t bucket;     /* floats per bucket */
    size_t ready, end; /* [ready, end): finished, not yet started */
    float scale;
    kd_status st;      /* the first failure to start a sum, reported by kd_dp_buckets_end */
    kd_error err;
} kd_dp_buckets;
void kd_dp_buckets_begin(kd_dp_buckets *b, float *grads, size_t n, size_t bucket, float scale);
void kd_dp_grad_ready(void *ctx, size_t lo, size_t hi);
kd_status kd_dp_buckets_end(kd_dp_buckets *b, kd_error *err);
/* The kd_sum_fn of synchronised batch norm (kd_model_set_sync_bn): kd_dist_sum_f64. */
void kd_dp_bn_sum(double *buf, size_t n, void *ctx);
/* KD_STATUS_DIVERGED naming `what` unless every rank holds the same n parameters (kd_dist_same). */
kd_status kd_dp_check_same(const float *params, size_t n, const char *what, kd_error *err);
/* Replaces every rank's batch-norm running statistics by their mean over the ranks (per-rank batch
 * norm lets them drift apart) and checks that the replicas' parameters are still bit-identical. */
kd_status kd_dp_sync_model(kd_model *m, const char *what, kd_error *err);
/* The global batch's share of this rank, with the refusals data parallelism needs: B at least one
 * sample per rank. */
void kd_dp_share(int B, int *lo, int *n);

#endif
