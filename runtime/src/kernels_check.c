/* The argument checks of kdrt's kernels, shared by the `_ref` kernels (kernels_ref.c), the
 * optimised variants and the dispatchers (kernels_dispatch.c), so every variant returns the same
 * status for the same bad call. Declared in kernels_internal.h. */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "kdrt_kernels.h"
#include "kernels_internal.h"

int kdrt_dims_ok(const kdrt_dims *d) {
    if (!d || d->n < 1 || d->h < 1 || d->w < 1 || d->c < 1) return 0;
    int64_t count = (int64_t)d->n * d->h;
    if (count > INT32_MAX) return 0;
    count *= d->w;
    if (count > INT32_MAX) return 0;
    count *= d->c;
    return count <= INT32_MAX;
}

int32_t kdrt_dims_count(const kdrt_dims *d) { return d->n * d->h * d->w * d->c; }

int kdrt_s8_ok(int32_t v) { return v >= -128 && v <= 127; }

int kdrt_activation_ok(kdrt_activation a) { return kdrt_s8_ok(a.min) && kdrt_s8_ok(a.max) && a.min <= a.max; }

/* Windows of size k, stride s, leading pad p over an input of size in giving `out` outputs: every
 * window must overlap the input (so a pooling window is never empty). */
int kdrt_window_ok(int32_t in, int32_t out, int32_t k, int32_t s, int32_t p) {
    if (k < 1 || s < 1 || p < 0 || p > k - 1) return 0;
    return (int64_t)(out - 1) * s - p <= (int64_t)in - 1;
}

static kdrt_status channel_quant_check(const kdrt_channel_quant *q, int32_t channels) {
    if (!q || !q->multiplier || !q->shift) return KDRT_STATUS_BAD_ARG;
    for (int32_t ch = 0; ch < channels; ch++)
        if (q->multiplier[ch] < 0 || q->shift[ch] < -31 || q->shift[ch] > 30) return KDRT_STATUS_BAD_QUANT;
    return KDRT_STATUS_OK;
}

/* Shared by conv2d and depthwise conv2d: everything but the filter's channel dimensions. */
static kdrt_status conv_check(const int8_t *out, const kdrt_dims *out_dims, const int8_t *in,
                              const kdrt_dims *in_dims, const int8_t *filter, const kdrt_dims *filter_dims,
                              const kdrt_conv_params *p) {
    if (!out || !in || !filter || !p) return KDRT_STATUS_BAD_ARG;
    if (!kdrt_dims_ok(out_dims) || !kdrt_dims_ok(in_dims) || !kdrt_dims_ok(filter_dims)) return KDRT_STATUS_BAD_SHAPE;
    if (out_dims->n != in_dims->n) return KDRT_STATUS_BAD_SHAPE;
    if (!kdrt_window_ok(in_dims->h, out_dims->h, filter_dims->h, p->stride.h, p->padding.h) ||
        !kdrt_window_ok(in_dims->w, out_dims->w, filter_dims->w, p->stride.w, p->padding.w))
        return KDRT_STATUS_BAD_SHAPE;
    if (!kdrt_s8_ok(p->input_zero_point) || !kdrt_s8_ok(p->output_zero_point) || !kdrt_activation_ok(p->activation))
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
    if (!kdrt_dims_ok(out_dims) || !kdrt_dims_ok(in_dims)) return KDRT_STATUS_BAD_SHAPE;
    if (out_dims->n != in_dims->n || out_dims->h != 1 || out_dims->w != 1) return KDRT_STATUS_BAD_SHAPE;
    const int32_t F = in_dims->h * in_dims->w * in_dims->c, O = out_dims->c;
    if ((int64_t)F * O > INT32_MAX) return KDRT_STATUS_BAD_SHAPE; /* weight element count */
    if (!kdrt_s8_ok(params->input_zero_point) || !kdrt_s8_ok(params->output_zero_point) ||
        !kdrt_activation_ok(params->activation))
        return KDRT_STATUS_BAD_QUANT;
    return channel_quant_check(quant, O);
}

kdrt_status kdrt_check_pool2d_s8(const int8_t *out, const kdrt_dims *out_dims, const int8_t *in,
                                 const kdrt_dims *in_dims, const kdrt_pool_params *p) {
    if (!out || !in || !p) return KDRT_STATUS_BAD_ARG;
    if (!kdrt_dims_ok(out_dims) || !kdrt_dims_ok(in_dims)) return KDRT_STATUS_BAD_SHAPE;
    if (out_dims->n != in_dims->n || out_dims->c != in_dims->c) return KDRT_STATUS_BAD_SHAPE;
    if (p->filter.h < 1 || p->filter.w < 1 || (int64_t)p->filter.h * p->filter.w > 65536)
        return KDRT_STATUS_BAD_SHAPE;
    if (!kdrt_window_ok(in_dims->h, out_dims->h, p->filter.h, p->stride.h, p->padding.h) ||
        !kdrt_window_ok(in_dims->w, out_dims->w, p->filter.w, p->stride.w, p->padding.w))
        return KDRT_STATUS_BAD_SHAPE;
    if (!kdrt_activation_ok(p->activation)) return KDRT_STATUS_BAD_QUANT;
    return KDRT_STATUS_OK;
}

kdrt_status kdrt_check_add_s8(const int8_t *out, const int8_t *in1, const int8_t *in2, const kdrt_dims *dims,
                              const kdrt_add_params *p) {
    if (!out || !in1 || !in2 || !p) return KDRT_STATUS_BAD_ARG;
    if (!kdrt_dims_ok(dims)) return KDRT_STATUS_BAD_SHAPE;
    /* These ranges keep every intermediate inside int32: |in - zp| <= 255 < 2^8, so the shifted
     * inputs are below 2^30, the scaled ones too (input multipliers <= 1), and their sum below 2^31. */
    if (!kdrt_s8_ok(p->input1_zero_point) || !kdrt_s8_ok(p->input2_zero_point) || !kdrt_s8_ok(p->output_zero_point) ||
        p->left_shift < 0 || p->left_shift > 22 || p->input1_multiplier < 0 || p->input2_multiplier < 0 ||
        p->output_multiplier < 0 || p->input1_shift < -31 || p->input1_shift > 0 || p->input2_shift < -31 ||
        p->input2_shift > 0 || p->output_shift < -31 || p->output_shift > 30 || !kdrt_activation_ok(p->activation))
        return KDRT_STATUS_BAD_QUANT;
    return KDRT_STATUS_OK;
}
