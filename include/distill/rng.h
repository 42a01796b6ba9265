/* Seeded random numbers (PCG32). The whole state is two integers so checkpoints can save it and
 * a resumed run draws exactly the numbers an uninterrupted run would have drawn. */
#ifndef DISTILL_RNG_H
#define DISTILL_RNG_H
#include <stdint.h>

typedef struct kd_rng {
    uint64_t state;
    uint64_t inc;
} kd_rng;

void kd_rng_seed(kd_rng *r, uint64_t seed, uint64_t stream);
uint32_t kd_rng_u32(kd_rng *r);
uint32_t kd_rng_below(kd_rng *r, uint32_t n);   /* uniform in [0, n), n > 0, unbiased */
float kd_rng_uniform(kd_rng *r);                /* [0, 1) */
float kd_rng_normal(kd_rng *r);                 /* N(0, 1), Box-Muller */
void kd_rng_shuffle(kd_rng *r, int32_t *a, int n);
/* Gamma(shape, 1) for shape > 0 (Marsaglia & Tsang 2000, with the boost u^(1/shape) below 1), and
 * Beta(a, b) = X / (X + Y) from two of them: mixup's and CutMix's mixing ratio. */
float kd_rng_gamma(kd_rng *r, float shape);
float kd_rng_beta(kd_rng *r, float a, float b);
/* How many kd_rng_u32 calls take `from` to `to` (same inc; O'Neill's distance for PCG's LCG, 64
 * iterations at most): how far a saved state is from a seeding, which tells whether it came from it. */
uint64_t kd_rng_distance(const kd_rng *from, const kd_rng *to);
/* The state after `delta` kd_rng_u32 calls, in O(log delta): a data-parallel rank skips the draws
 * of the samples other ranks take. */
void kd_rng_advance(kd_rng *r, uint64_t delta);
#endif
