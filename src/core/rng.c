/* PCG32 (O'Neill 2014): small state, good statistics, and the state is two integers, so a
 * checkpoint can save it exactly. */
#include <math.h>

#include "distill/rng.h"

void kd_rng_seed(kd_rng *r, uint64_t seed, uint64_t stream) {
    r->state = 0;
    r->inc = (stream << 1u) | 1u;
    kd_rng_u32(r);
    r->state += seed;
    kd_rng_u32(r);
}

#define PCG_MULT 6364136223846793005ULL

uint32_t kd_rng_u32(kd_rng *r) {
    uint64_t old = r->state;
    r->state = old * PCG_MULT + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

uint32_t kd_rng_below(kd_rng *r, uint32_t n) {
    /* Rejection of the low remainder: unbiased for every n. */
    uint32_t threshold = (uint32_t)(-n) % n;
    for (;;) {
        uint32_t x = kd_rng_u32(r);
        if (x >= threshold) return x % n;
    }
}

float kd_rng_uniform(kd_rng *r) { return (float)(kd_rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

float kd_rng_normal(kd_rng *r) {
    /* Box-Muller without caching the second value, so the state alone determines the stream. */
    float u1 = ((float)(kd_rng_u32(r) >> 8) + 1.0f) * (1.0f / 16777217.0f); /* (0, 1] */
    float u2 = kd_rng_uniform(r);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
}

void kd_rng_shuffle(kd_rng *r, int32_t *a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)kd_rng_below(r, (uint32_t)i + 1);
        int32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

float kd_rng_gamma(kd_rng *r, float shape) {
    if (shape < 1.f) { /* Gamma(a) = Gamma(a + 1) * U^(1/a) */
        float u = ((float)(kd_rng_u32(r) >> 8) + 1.0f) * (1.0f / 16777217.0f); /* (0, 1] */
        return kd_rng_gamma(r, shape + 1.f) * powf(u, 1.f / shape);
    }
    float d = shape - 1.f / 3.f, c = 1.f / sqrtf(9.f * d);
    for (;;) {
        float x = kd_rng_normal(r), v = 1.f + c * x;
        if (v <= 0.f) continue;
        v = v * v * v;
        float u = kd_rng_uniform(r);
        if (u < 1.f - 0.0331f * x * x * x * x || logf(u > 0.f ? u : 1e-30f) < 0.5f * x * x + d * (1.f - v + logf(v)))
            return d * v;
    }
}

float kd_rng_beta(kd_rng *r, float a, float b) {
    float x = kd_rng_gamma(r, a), y = kd_rng_gamma(r, b);
    return x + y > 0.f ? x / (x + y) : 0.5f;
}

uint64_t kd_rng_distance(const kd_rng *from, const kd_rng *to) {
    /* Bit by bit: the step count's bit k decides bit k of the state; mult and inc become those of
     * 2^k steps at once. */
    uint64_t cur = from->state, mult = PCG_MULT, inc = from->inc, bit = 1, d = 0;
    while (cur != to->state && bit) {
        if ((cur & bit) != (to->state & bit)) {
            cur = cur * mult + inc;
            d |= bit;
        }
        inc = (mult + 1) * inc;
        mult *= mult;
        bit <<= 1;
    }
    return d;
}

void kd_rng_advance(kd_rng *r, uint64_t delta) {
    /* Brown's jump-ahead for an LCG: square the step while halving delta (log2 delta rounds). */
    uint64_t acc_mult = 1, acc_plus = 0, mult = PCG_MULT, plus = r->inc;
    for (; delta; delta >>= 1) {
        if (delta & 1) {
            acc_mult *= mult;
            acc_plus = acc_plus * mult + plus;
        }
        plus = (mult + 1) * plus;
        mult *= mult;
    }
    r->state = acc_mult * r->state + acc_plus;
}
