/* Test-side oracles shared by the int8 tests (tests/unit/test_int8_ref.c, test_quantize.c and
 * tests/runtime/kernel_check.h): the splitmix64 generator, and the requantization rule written from
 * the specification (docs/QUANTIZATION.md), deliberately differently from the kernels: floor
 * division and magnitude rounding in int64, no nudges, no masks. C99, runtime-only (no libdistill). */
#ifndef KD_TEST_INT8_ORACLE_H
#define KD_TEST_INT8_ORACLE_H
#include <stdint.h>

/* One step of splitmix64 on *state: self-contained and reproducible. */
static inline uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline int64_t floor_div_pow2(int64_t x, int e) {
    int64_t d = (int64_t)1 << e, q = x / d;
    if (x % d != 0 && x < 0) q--;
    return q;
}

/* floor((a b + 2^30) / 2^31), INT32_MIN^2 saturating */
static inline int32_t ref_high_mul(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    return (int32_t)floor_div_pow2((int64_t)a * b + ((int64_t)1 << 30), 31);
}

/* x / 2^e to nearest, ties away from zero */
static inline int32_t ref_div_pot(int32_t x, int e) {
    if (e == 0) return x;
    int64_t ax = x < 0 ? -(int64_t)x : x;
    int64_t r = (ax + ((int64_t)1 << (e - 1))) >> e;
    return (int32_t)(x < 0 ? -r : r);
}

static inline int32_t ref_requant(int32_t acc, int32_t m, int s) {
    if (s > 0) {
        int64_t v = (int64_t)acc * ((int64_t)1 << s);
        if (v > INT32_MAX) v = INT32_MAX;
        if (v < INT32_MIN) v = INT32_MIN;
        return ref_high_mul((int32_t)v, m);
    }
    return ref_div_pot(ref_high_mul(acc, m), -s);
}

/* clamp(zp + requant(acc)) to [lo, hi] computed in int64, clamping after the add (the kernels
 * clamp before); the specification's 32-bit accumulator wraps modulo 2^32 first. */
static inline int8_t ref_out(int64_t acc_wide, int32_t m, int32_t s, int32_t zp, int32_t lo, int32_t hi) {
    uint32_t u = (uint32_t)(uint64_t)acc_wide;
    int32_t acc = u <= INT32_MAX ? (int32_t)u : (int32_t)((int64_t)u - 4294967296ll);
    int64_t r = (int64_t)ref_requant(acc, m, (int)s) + zp;
    if (r < lo) r = lo;
    if (r > hi) r = hi;
    return (int8_t)r;
}

#endif
