/* kdrt's kernel dispatchers: kdrt_conv2d_s8, kdrt_depthwise_conv2d_s8 and kdrt_fully_connected_s8
 * pick the fastest variant this CPU runs (x86-64: AVX-512 VNNI, then AVX2; aarch64: NEON) and fall
 * back to `_ref`. The argument checks all variants share are in kernels_check.c. */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "kdrt_kernels.h"
#include "kernels_internal.h"
#include "kernels_x86.h" /* the CPU feature tests; empty off x86-64 */

/* ---- Scratch sizes ------------------------------------------------------------------------------
 * The dispatcher's need is the largest of the variants built for this architecture, whatever the
 * CPU it runs on, so an arena size computed on one x86-64 machine holds on every other. Builds
 * without optimised kernels (Cortex-M, other architectures) need none. */

#if defined(__x86_64__)
static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }
#endif

size_t kdrt_conv2d_s8_scratch_size(const kdrt_dims *out_dims, const kdrt_dims *in_dims,
                                   const kdrt_dims *filter_dims) {
#if defined(__x86_64__)
    return max_size(kdrt_conv2d_s8_avx512_scratch_size(out_dims, in_dims, filter_dims),
                    kdrt_conv2d_s8_avx2_scratch_size(out_dims, in_dims, filter_dims));
#elif defined(__aarch64__)
    return kdrt_conv2d_s8_neon_scratch_size(out_dims, in_dims, filter_dims);
#else
    (void)out_dims;
    (void)in_dims;
    (void)filter_dims;
    return 0;
#endif
}

size_t kdrt_depthwise_conv2d_s8_scratch_size(const kdrt_dims *out_dims, const kdrt_dims *in_dims,
                                             const kdrt_dims *filter_dims) {
    (void)out_dims;
    (void)in_dims;
    (void)filter_dims;
    return 0; /* every variant works in registers */
}

size_t kdrt_fully_connected_s8_scratch_size(const kdrt_dims *out_dims, const kdrt_dims *in_dims) {
    (void)out_dims;
    (void)in_dims;
    return 0; /* every variant works in registers */
}

/* ---- Dispatchers -------------------------------------------------------------------------------- */

/* The order of preference of every dispatcher, written once: on x86-64 `kernel`_avx512 (AVX-512
 * VNNI), then `kernel`_avx2, else `kernel`_ref; on aarch64 `kernel`_neon; elsewhere `kernel`_ref.
 * The dispatcher's arguments are passed on unchanged; the chosen variant's status is returned. */
#if defined(__x86_64__)
#define DISPATCH(kernel, ...)                                                  \
    do {                                                                       \
        if (kdrt_cpu_avx512vnni()) return kernel##_avx512(__VA_ARGS__);        \
        if (kdrt_cpu_avx2()) return kernel##_avx2(__VA_ARGS__);                \
        return kernel##_ref(__VA_ARGS__);                                      \
    } while (0)
#elif defined(__aarch64__)
#define DISPATCH(kernel, ...) return kernel##_neon(__VA_ARGS__)
#else
#define DISPATCH(kernel, ...) return kernel##_ref(__VA_ARGS__)
#endif

static int scratch_ok(const kdrt_ctx *ctx, size_t need) {
    return need == 0 || (ctx && ctx->buf && ctx->size >= need);
}

kdrt_status kdrt_conv2d_s8(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims, const int8_t *in,
                           const kdrt_dims *in_dims, const int8_t *filter, const kdrt_dims *filter_dims,
                           const int32_t *bias, const kdrt_conv_params *params, const kdrt_channel_quant *quant) {
    kdrt_status st = kdrt_check_conv2d_s8(out, out_dims, in, in_dims, filter, filter_dims, params, quant);
    if (st != KDRT_STATUS_OK) return st;
    if (!scratch_ok(ctx, kdrt_conv2d_s8_scratch_size(out_dims, in_dims, filter_dims))) return KDRT_STATUS_NO_SCRATCH;
    DISPATCH(kdrt_conv2d_s8, ctx, out, out_dims, in, in_dims, filter, filter_dims, bias, params, quant);
}

kdrt_status kdrt_depthwise_conv2d_s8(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims,
                                     const int8_t *in, const kdrt_dims *in_dims, const int8_t *filter,
                                     const kdrt_dims *filter_dims, const int32_t *bias,
                                     const kdrt_conv_params *params, const kdrt_channel_quant *quant) {
    DISPATCH(kdrt_depthwise_conv2d_s8, ctx, out, out_dims, in, in_dims, filter, filter_dims, bias, params, quant);
}

kdrt_status kdrt_fully_connected_s8(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims,
                                    const int8_t *in, const kdrt_dims *in_dims, const int8_t *weight,
                                    const int32_t *bias, const kdrt_fc_params *params,
                                    const kdrt_channel_quant *quant) {
    DISPATCH(kdrt_fully_connected_s8, ctx, out, out_dims, in, in_dims, weight, bias, params, quant);
}

/* Only AVX-512 has an add kernel (AVX2 and NEON fall back to _ref), so this one is written out. */
kdrt_status kdrt_add_s8(int8_t *out, const int8_t *in1, const int8_t *in2, const kdrt_dims *dims,
                        const kdrt_add_params *params) {
#if defined(__x86_64__)
    if (kdrt_cpu_avx512vnni()) return kdrt_add_s8_avx512(out, in1, in2, dims, params);
#endif
    return kdrt_add_s8_ref(out, in1, in2, dims, params);
}
