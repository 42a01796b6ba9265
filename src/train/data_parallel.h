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
/* The kd_sum_fn of synchronised batch norm (kd_model_set_sync_bn): kd_dist_sum_f64. */
void kd_dp_bn_sum(double *buf, size_t n, void *ctx);
/* Replaces every rank's batch-norm running statistics by their mean over the ranks (per-rank batch
 * norm lets them drift apart) and checks that the replicas' parameters are still bit-identical. */
kd_status kd_dp_sync_model(kd_model *m, const char *what, kd_error *err);
/* The global batch's share of this rank, with the refusals data parallelism needs: B at least one
 * sample per rank. */
void kd_dp_share(int B, int *lo, int *n);

#endif
