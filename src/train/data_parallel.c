/* The data-parallel step shared by the training loops: see data_parallel.h. */
#include "train/data_parallel.h"

kd_status kd_dp_sum_grads(float *grads, size_t n, float scale, double *stats, int n_stats, kd_error *err) {
    if (scale != 1.f)
        for (size_t i = 0; i < n; i++) grads[i] *= scale;
    kd_status st = kd_dist_sum_f32(grads, n, err);
    if (!st && n_stats) st = kd_dist_sum_f64(stats, (size_t)n_stats, err);
    return st;
}

void kd_dp_buckets_begin(kd_dp_buckets *b, float *grads, size_t n, size_t bucket, float scale) {
    b->grads = grads;
    b->bucket = bucket ? bucket : 1;
    b->ready = b->end = n;
    b->scale = scale;
    b->st = KD_STATUS_OK;
}

static void start(kd_dp_buckets *b) {
    if (b->st || b->ready == b->end) return;
    float *g = b->grads + b->ready;
    size_t n = b->end - b->ready;
    if (b->scale != 1.f)
        for (size_t i = 0; i < n; i++) g[i] *= b->scale;
    b->st = kd_dist_isum_f32(g, n, &b->err);
    b->end = b->ready;
}

void kd_dp_grad_ready(void *ctx, size_t lo, size_t hi) {
    kd_dp_buckets *b = ctx;
    (void)hi;
    if (lo < b->ready) b->ready = lo;
    if (b->end - b->ready >= b->bucket) start(b);
    kd_dist_progress();
}

kd_status kd_dp_buckets_end(kd_dp_buckets *b, kd_error *err) {
    b->ready = 0; /* everything below is final too */
    start(b);
    kd_status st = kd_dist_wait(err);
    if (b->st) {
        *err = b->err;
        return b->st;
    }
    return st;
}

void kd_dp_bn_sum(double *buf, size_t n, void *ctx) {
    (void)ctx;
    kd_error e;
    /* a failed sum means a rank is gone: the MPI runtime ends the job, and the gradient sum that
     * follows reports it if it does not */
    (void)kd_dist_sum_f64(buf, n, &e);
}

kd_status kd_dp_sync_model(kd_model *m, const char *what, kd_error *err) {
    int N = kd_dist_size();
    if (N < 2) return KD_STATUS_OK;
    if (m->n_buffers) {
        kd_status st = kd_dist_sum_f32(m->buffers, m->n_buffers, err);
        if (st) return st;
        for (size_t i = 0; i < m->n_buffers; i++) m->buffers[i] /= (float)N;
    }
    return kd_dp_check_same(m->params, m->n_params, what, err);
}

kd_status kd_dp_check_same(const float *params, size_t n, const char *what, kd_error *err) {
    if (kd_dist_same(params, n * sizeof(float))) return KD_STATUS_OK;
    return kd_error_set(err, KD_STATUS_DIVERGED,
                        "the %d ranks' copies of %s differ after the same updates (rank %d's checksum is not rank "
                        "0's): the gradient sums did not give every rank the same bits", kd_dist_size(), what,
                        kd_dist_rank());
}

void kd_dp_share(int B, int *lo, int *n) {
    long long l, h;
    kd_dist_share(B, kd_dist_rank(), kd_dist_size(), &l, &h);
    *lo = (int)l;
    *n = (int)(h - l);
}
