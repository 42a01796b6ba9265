/* The pieces of data parallelism that need no second process (dist.h): the random generator's
 * jump-ahead, the shares of a batch, synchronised batch norm against the global batch's (a second
 * process simulated by the sum callback), and dropout drawing per share exactly the masks of the
 * whole batch. The MPI runs themselves: tests/e2e/test_mpi.c. */
#include <stdlib.h>
#include <string.h>

#include "distill/dist.h"
#include "distill/model.h"
#include "distill/ops.h"
#include "distill/rng.h"
#include "test.h"

static void test_rng_advance(void) {
    const uint64_t steps[] = {0, 1, 2, 7, 64, 1000, 123457};
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        kd_rng a, b;
        kd_rng_seed(&a, 42, 9);
        kd_rng_seed(&b, 42, 9);
        for (uint64_t i = 0; i < steps[k]; i++) kd_rng_u32(&a);
        kd_rng_advance(&b, steps[k]);
        CHECK_MSG(a.state == b.state && a.inc == b.inc, "advance %llu", (unsigned long long)steps[k]);
        CHECK(kd_rng_u32(&a) == kd_rng_u32(&b));
    }
}

static void test_share(void) {
    for (int n = 0; n < 40; n++)
        for (int size = 1; size <= 7; size++) {
            long long next = 0, smin = n, smax = 0;
            for (int r = 0; r < size; r++) {
                long long lo, hi;
                kd_dist_share(n, r, size, &lo, &hi);
                CHECK(lo == next && hi >= lo);
                next = hi;
                if (hi - lo < smin) smin = hi - lo;
                if (hi - lo > smax) smax = hi - lo;
            }
            CHECK_MSG(next == n && smax - smin <= 1, "n %d over %d", n, size);
        }
}

/* Batch norm over a global batch of B = B0 + B1 samples, computed by "process 0" on the first B0
 * with the synchronised kernels; the sum callback adds process 1's partial sums, which it computes
 * from the second B1 samples as that process would (at each phase: the plane sums; the squared
 * deviations from the global mean; dy and dy * x_hat). */
typedef struct {
    const float *x, *dy; /* process 1's share */
    int B, C, HW, phase;
    const float *mean, *invstd; /* process 0's saved statistics, global after the forward */
} other;

static void other_sum(double *buf, size_t n, void *ctx) {
    other *o = ctx;
    int C = o->C, HW = o->HW;
    for (int c = 0; c < C; c++) {
        double a = 0, b = 0;
        for (int s = 0; s < o->B; s++)
            for (int i = 0; i < HW; i++) {
                float x = o->x[((size_t)s * C + c) * HW + i];
                if (o->phase == 0) a += x;
                else if (o->phase == 1) a += (double)(x - o->mean[c]) * (x - o->mean[c]);
                else {
                    float dy = o->dy[((size_t)s * C + c) * HW + i];
                    a += dy;
                    b += dy * ((x - o->mean[c]) * o->invstd[c]);
                }
            }
        buf[c] += a;
        if (o->phase == 2) buf[C + c] += b;
    }
    if (o->phase == 0) buf[C] += (double)o->B * HW;
    if (o->phase == 2) buf[2 * C] += (double)o->B * HW;
    (void)n;
    o->phase++;
}

static void test_sync_bn(void) {
    enum { B0 = 3, B1 = 4, B = B0 + B1, C = 3, HW = 5, N = B * C * HW };
    kd_rng r;
    kd_rng_seed(&r, 3, 1);
    float x[N], dy[N], g[C], be[C];
    for (int i = 0; i < N; i++) x[i] = 2.f * kd_rng_normal(&r) + 1.f, dy[i] = kd_rng_normal(&r);
    for (int c = 0; c < C; c++) g[c] = 1.f + 0.1f * c, be[c] = 0.2f * c;
    /* the global batch in one process */
    float out[N], mean[C], inv[C], rm[C] = {0}, rv[C] = {1, 1, 1}, din[N] = {0}, dg[C] = {0}, db[C] = {0};
    kd_batchnorm_forward_train(out, mean, inv, rm, rv, x, g, be, B, C, HW, 1e-5f, 0.1f, 1);
    kd_batchnorm_backward(din, dg, db, dy, x, g, mean, inv, B, C, HW, 1);
    /* process 0's share, synchronised */
    float out0[B0 * C * HW], mean0[C], inv0[C], rm0[C] = {0}, rv0[C] = {1, 1, 1}, din0[B0 * C * HW] = {0},
        dg0[C] = {0}, db0[C] = {0};
    double tmp[2 * C + 1];
    other o = {x + B0 * C * HW, dy + B0 * C * HW, B1, C, HW, 0, mean0, inv0};
    kd_batchnorm_forward_train_sync(out0, mean0, inv0, rm0, rv0, x, g, be, B0, C, HW, 1e-5f, 0.1f, 1, tmp, other_sum, &o);
    kd_batchnorm_backward_sync(din0, dg0, db0, dy, x, g, mean0, inv0, B0, C, HW, 1, tmp, other_sum, &o);
    double e = 0;
    for (int c = 0; c < C; c++) {
        e = fmax(e, fabs(mean0[c] - mean[c]) + fabs(inv0[c] - inv[c]));
        e = fmax(e, fabs(rm0[c] - rm[c]) + fabs(rv0[c] - rv[c]));
    }
    for (int i = 0; i < B0 * C * HW; i++) e = fmax(e, fabs(out0[i] - out[i]) + fabs(din0[i] - din[i]));
    CHECK_MSG(e < 1e-5, "synchronised batch norm vs the global batch: %g", e);
    /* dgamma, dbeta: process 0 keeps its own share (the gradient sum adds process 1's) */
    double sg = 0;
    for (int s = 0; s < B0; s++)
        for (int i = 0; i < HW; i++) sg += dy[(s * C + 0) * HW + i];
    CHECK_NEAR(db0[0], sg, 1e-5);
    /* one process, the sum an identity: the very bits of the plain kernels */
    float out1[N], mean1[C], inv1[C], rm1[C] = {0}, rv1[C] = {1, 1, 1}, din1[N] = {0}, dg1[C] = {0}, db1[C] = {0};
    other none = {x, dy, 0, C, HW, 0, mean1, inv1};
    kd_batchnorm_forward_train_sync(out1, mean1, inv1, rm1, rv1, x, g, be, B, C, HW, 1e-5f, 0.1f, 1, tmp, other_sum, &none);
    kd_batchnorm_backward_sync(din1, dg1, db1, dy, x, g, mean1, inv1, B, C, HW, 1, tmp, other_sum, &none);
    CHECK(!memcmp(out1, out, sizeof out) && !memcmp(din1, din, sizeof din) && !memcmp(dg1, dg, sizeof dg) &&
          !memcmp(rv1, rv, sizeof rv));
}

/* Dropout in shares: each share's masks are the whole batch's at its samples, and the generator
 * ends where the whole batch leaves it. */
static void test_dropout_shares(void) {
    const char *yaml = "name: d\ninput: [6, 1, 1]\nlayers:\n  - {name: a, type: linear, out: 8}\n"
                       "  - {name: d, type: dropout, p: 0.5}\n  - {name: b, type: linear, out: 3}\n"
                       "  - {name: d2, type: dropout, p: 0.3}\n";
    kd_model *m = NULL;
    kd_error err;
    CHECK_MSG(kd_model_from_yaml(&m, yaml, "test", 7, &err) == KD_STATUS_OK, "%s", err.msg);
    if (!m) return;
    enum { B = 7 };
    CHECK(kd_model_set_batch(m, B, 1, &err) == KD_STATUS_OK);
    float x[B * 6], whole[B * 3];
    for (int i = 0; i < B * 6; i++) x[i] = 0.1f * (float)(i % 13) - 0.5f;
    kd_rng r0, r;
    kd_rng_seed(&r0, 5, 5);
    r = r0;
    memcpy(whole, kd_model_forward(m, x, B, 1, &r), sizeof whole);
    int lo[] = {0, 3}, n[] = {3, 4};
    for (int k = 0; k < 2; k++) {
        kd_rng rs = r0;
        kd_model_set_shard(m, lo[k], B);
        const float *part = kd_model_forward(m, x + lo[k] * 6, n[k], 1, &rs);
        CHECK_MSG(!memcmp(part, whole + lo[k] * 3, sizeof(float) * 3 * n[k]), "share %d", k);
        CHECK(rs.state == r.state);
    }
    kd_model_set_shard(m, 0, 0);
    kd_model_free(m);
}

int main(void) {
    test_rng_advance();
    test_share();
    test_sync_bn();
    test_dropout_shares();
    CHECK(kd_dist_rank() == 0 && kd_dist_size() == 1); /* no mpirun: one process */
    TEST_DONE();
}
