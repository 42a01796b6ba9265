/* kdrt's optimised kernels (runtime/src/kernels_avx512.c, kernels_avx2.c, kernels_neon.c, kernels_dispatch.c) bit-exact
 * against the `_ref` oracle: the AVX-512 VNNI and AVX2 variants called directly (when this CPU has
 * them) and through the dispatchers, on the zoo's layer shapes and many random problems, with exact
 * scratch and one byte less (tests/runtime/kernel_check.h holds the generators and comparisons,
 * shared with the runtime-only tests/runtime/test_kernels_rt.c). */
#include "runtime/kernel_check.h"
#include "test.h"

static void test_variants(void) {
    kc_variant vs[4];
    int nv = kc_variants(vs);
#if defined(__x86_64__)
    printf("CPU: avx512 vnni %s, avx2 %s\n", __builtin_cpu_supports("avx512vnni") ? "yes" : "no",
           __builtin_cpu_supports("avx2") ? "yes" : "no");
#endif
    kc_run_all(vs, nv, 400);
    printf("%ld kernel runs checked against _ref\n", kc_checked);
    CHECK_MSG(kc_failed == 0, "%ld mismatches", kc_failed);
}

/* The dispatchers' scratch need does not depend on the CPU: the largest variant's. */
static void test_scratch_sizes(void) {
    kdrt_dims in = {1, 14, 14, 8}, out = {1, 14, 14, 16}, f = {16, 3, 3, 8};
    size_t need = kdrt_conv2d_s8_scratch_size(&out, &in, &f);
#if defined(__x86_64__)
    size_t a = kdrt_conv2d_s8_avx512_scratch_size(&out, &in, &f), b = kdrt_conv2d_s8_avx2_scratch_size(&out, &in, &f);
    CHECK(need == (a > b ? a : b));
    CHECK(a > 0 && b > 0);
#endif
    CHECK(kdrt_conv2d_s8_scratch_size(NULL, &in, &f) == 0);
    CHECK(kdrt_depthwise_conv2d_s8_scratch_size(&out, &in, &f) == 0);
    CHECK(kdrt_fully_connected_s8_scratch_size(&out, &in) == 0);
    (void)need;
}

int main(void) {
    test_scratch_sizes();
    test_variants();
    TEST_DONE();
}
