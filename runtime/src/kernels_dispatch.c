/* kdrt's kernel dispatchers: kdrt_conv2d_s8, kdrt_depthwise_conv2d_s8 and kdrt_fully_connected_s8
 * pick the fastest variant this CPU runs (x86-64: AVX-512 VNNI, then AVX2; aarch64: NEON) and fall
 * back to `_ref`. Also the argument checks every optimised variant shares (kernels_internal.h). */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "kdrt_kernels.h"
#include "kernels_internal.h"

/* ---- Argument checks: the rules of kernels_ref.c, in the same order ---------------------------- */

static int dims_ok(const kdrt_dims *d) {
    if (!d || d->n < 1 || d->h < 1 || d->w < 1 || d->c < 1) return 0;
    int64_t count = (int64_t)d->n * d->h;
    if (count > INT32_MAX) return 0;
    count *= d->w;
    if (count > INT32_MAX) return 0;
    count *= d->c;
    return count <= INT32_MAX;
}

static int s8_ok(int32_t v) { return v >= -128 && v <= 127; }

static int activation_ok(kdrt_activation a) { return s8_ok(a.min) && s8_ok(a.max) && a.min <= a.max; }

static int window_ok(int32_t in, int32_t out, int32_t k, int32_t s, int32_t p) {
    if (k < 1 || s < 1 || p < 0 || p > k - 1) return 0;
    return (int64_t)(out - 1) * s - p <= (int64_t)in - 1;
}

static kdrt_status channel_quant_check(const kdrt_channel_quant *q, int32_t channels) {
    if (!q || !q->multiplier || !q->shift) return KDRT_STATUS_BAD_ARG;
    for (int32_t ch = 0; ch < channels; ch++)
        if (q->multiplier[ch] < 0 || q->shift[ch] < -31 || q->shift[ch] > 30) return KDRT_STATUS_BAD_QUANT;
    return KDRT_STATUS_OK;
}

static kdrt_status conv_check(const int8_t *out, const kdrt_dims *out_dims, const int8_t *in,
                              const kdrt_dims *in_dims, const int8_t *filter, const kdrt_dims *filter_dims,
                              const kdrt_conv_params *p) {
    if (!out || !in || !filter || !p) return KDRT_STATUS_BAD_ARG;
    if (!dims_ok(out_dims) || !dims_ok(in_dims) || !dims_ok(filter_dims)) return KDRT_STATUS_BAD_SHAPE;
    if (out_dims->n != in_dims->n) return KDRT_STATUS_BAD_SHAPE;
    if (!window_ok(in_dims->h, out_dims->h, filter_dims->h, p->stride.h, p->padding.h) ||
        !window_ok(in_dims->w, out_dims->w, filter_dims->w, p->stride.w, p->padding.w))
        return KDRT_STATUS_BAD_SHAPE;
    if (!s8_ok(p->input_zero_point) || !s8_ok(p->output_zero_point) || !activation_ok(p->activation))
        return KDRT_STATUS_BAD_QUANT;
    return KDRT_STATUS_OK;
}

kdrt_status kdrt_check_conv2d_s8(const int8_t *out, const kdrt_dims *out_dims, const int8_t *in,
                                 const kdrt_dims *in_dims, const int8_t *filter, const kdrt_dims *filter_dims,
                                 const kdrt_conv_params *params, const kdrt_channel_quant *quant) {
    kdrt_status st = conv_check(out, out_dims, in, in_dims, filter, filter_dims, params);
    if (st != KDRT_STATUS_OK) return st;
    if (filter_dims->n != out_dims->c || filter_dims->c != in_dims->c) return KDRT_STATUS_BAD_SHAPE;
    return channel_quant_check(quant, out_dims->c);
}

kdrt_status kdrt_check_depthwise_conv2d_s8(const int8_t *out, const kdrt_dims *out_dims, const int8_t *in,
                                           const kdrt_dims *in_dims, const int8_t *filter,
                                           const kdrt_dims *filter_dims, const kdrt_conv_params *params,
                                           const kdrt_channel_quant *quant) {
    kdrt_status st = conv_check(out, out_dims, in, in_dims, filter, filter_dims, params);
    if (st != KDRT_STATUS_OK) return st;
    if (filter_dims->n != 1 || filter_dims->c != in_dims->c || out_dims->c != in_dims->c)
        return KDRT_STATUS_BAD_SHAPE;
    return channel_quant_check(quant, out_dims->c);
}

kdrt_status kdrt_check_fully_connected_s8(const int8_t *out, const kdrt_dims *out_dims, const int8_t *in,
                                          const kdrt_dims *in_dims, const int8_t *weight,
                                          const kdrt_fc_params *params, const kdrt_channel_quant *quant) {
    if (!out || !in || !weight || !params) return KDRT_STATUS_BAD_ARG;
    if (!dims_ok(out_dims) || !dims_ok(in_dims)) return KDRT_STATUS_BAD_SHAPE;
    if (out_dims->n != in_dims->n || out_dims->h != 1 || out_dims->w != 1) return KDRT_STATUS_BAD_SHAPE;
    const int32_t F = in_dims->h * in_dims->w * in_dims->c, O = out_dims->c;
    if ((int64_t)F * O > INT32_MAX) return KDRT_STATUS_BAD_SHAPE;
    if (!s8_ok(params->input_zero_point) || !s8_ok(params->output_zero_point) ||
        !activation_ok(params->activation))
        return KDRT_STATUS_BAD_QUANT;
    return channel_quant_check(quant, O);
}

/* ---- CPU features ------------------------------------------------------------------------------ */

#if defined(__x86_64__)
/* __builtin_cpu_supports reads libgcc's CPU model (filled by its constructor, OS support of the
 * AVX-512 register state included): no libc, no mutable state of ours. */
static int have_avx512vnni(void) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}
static int have_avx2(void) { return __builtin_cpu_supports("avx2"); }
#endif

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

static int scratch_ok(const kdrt_ctx *ctx, size_t need) {
    return need == 0 || (ctx && ctx->buf && ctx->size >= need);
}

kdrt_status kdrt_conv2d_s8(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims, const int8_t *in,
                           const kdrt_dims *in_dims, const int8_t *filter, const kdrt_dims *filter_dims,
                           const int32_t *bias, const kdrt_conv_params *params, const kdrt_channel_quant *quant) {
    kdrt_status st = kdrt_check_conv2d_s8(out, out_dims, in, in_dims, filter, filter_dims, params, quant);
    if (st != KDRT_STATUS_OK) return st;
    if (!scratch_ok(ctx, kdrt_conv2d_s8_scratch_size(out_dims, in_dims, filter_dims))) return KDRT_STATUS_NO_SCRATCH;
#if defined(__x86_64__)
    if (have_avx512vnni())
        return kdrt_conv2d_s8_avx512(ctx, out, out_dims, in, in_dims, filter, filter_dims, bias, params, quant);
    if (have_avx2())
        return kdrt_conv2d_s8_avx2(ctx, out, out_dims, in, in_dims, filter, filter_dims, bias, params, quant);
#elif defined(__aarch64__)
    return kdrt_conv2d_s8_neon(ctx, out, out_dims, in, in_dims, filter, filter_dims, bias, params, quant);
#endif
    return kdrt_conv2d_s8_ref(ctx, out, out_dims, in, in_dims, filter, filter_dims, bias, params, quant);
}

kdrt_status kdrt_depthwise_conv2d_s8(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims,
                                     const int8_t *in, const kdrt_dims *in_dims, const int8_t *filter,
                                     const kdrt_dims *filter_dims, const int32_t *bias,
                                     const kdrt_conv_params *params, const kdrt_channel_quant *quant) {
#if defined(__x86_64__)
    if (have_avx512vnni())
        return kdrt_depthwise_conv2d_s8_avx512(ctx, out, out_dims, in, in_dims, filter, filter_dims, bias, params,
                                               quant);
    if (have_avx2())
        return kdrt_depthwise_conv2d_s8_avx2(ctx, out, out_dims, in, in_dims, filter, filter_dims, bias, params,
                                             quant);
#elif defined(__aarch64__)
    return kdrt_depthwise_conv2d_s8_neon(ctx, out, out_dims, in, in_dims, filter, filter_dims, bias, params, quant);
#endif
    return kdrt_depthwise_conv2d_s8_ref(ctx, out, out_dims, in, in_dims, filter, filter_dims, bias, params, quant);
}

kdrt_status kdrt_fully_connected_s8(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims,
                                    const int8_t *in, const kdrt_dims *in_dims, const int8_t *weight,
                                    const int32_t *bias, const kdrt_fc_params *params,
                                    const kdrt_channel_quant *quant) {
#if defined(__x86_64__)
    if (have_avx512vnni())
        return kdrt_fully_connected_s8_avx512(ctx, out, out_dims, in, in_dims, weight, bias, params, quant);
    if (have_avx2())
        return kdrt_fully_connected_s8_avx2(ctx, out, out_dims, in, in_dims, weight, bias, params, quant);
#elif defined(__aarch64__)
    return kdrt_fully_connected_s8_neon(ctx, out, out_dims, in, in_dims, weight, bias, params, quant);
#endif
    return kdrt_fully_connected_s8_ref(ctx, out, out_dims, in, in_dims, weight, bias, params, quant);
}
