/* The portable int8 reference kernels of kdrt (`_ref`): plain loops written to be obviously right,
 * the oracle every optimised kernel and the training side's integer evaluation are checked against.
 * Arithmetic per docs/QUANTIZATION.md. C99, no allocation, no libc beyond <stdint.h>/<stddef.h>. */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "kdrt_kernels.h"
#include "kernels_internal.h"

/* The rounding shift below relies on >> of a negative int32_t being arithmetic (floor division);
 * every compiler we target does this (it is implementation-defined in C99), and this line refuses
 * to compile where it is not. int32_t itself is two's complement by definition. */
typedef char kdrt_check_arithmetic_shift[((int32_t)-5 >> 1) == -3 ? 1 : -1];

/* ---- Fixed-point arithmetic ------------------------------------------------------------------ */

static int32_t doubling_high_mul(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    /* ab / 2^31 truncates toward zero; the nudge turns that into floor((ab + 2^30) / 2^31) for
     * both signs (gemmlowp's formulation, kept for recognisability). |result| < 2^31. */
    int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

static int32_t rounding_divide_by_pot(int32_t x, int exponent) {
    int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

static int32_t requantize(int32_t acc, int32_t mult, int shift) {
    if (shift > 30) shift = 30;
    if (shift < -31) shift = -31;
    if (shift > 0) {
        /* Saturating acc * 2^shift: multiplication, not <<, so negative values are not UB. */
        if (acc > (INT32_MAX >> shift)) acc = INT32_MAX;
        else if (acc < (INT32_MIN >> shift)) acc = INT32_MIN;
        else acc = acc * ((int32_t)1 << shift);
        return doubling_high_mul(acc, mult);
    }
    return rounding_divide_by_pot(doubling_high_mul(acc, mult), -shift);
}

int32_t kdrt_doubling_high_mul(int32_t a, int32_t b) { return doubling_high_mul(a, b); }

int32_t kdrt_rounding_divide_by_pot(int32_t x, int exponent) {
    if (exponent < 0) exponent = 0;
    if (exponent > 31) exponent = 31;
    return rounding_divide_by_pot(x, exponent);
}

int32_t kdrt_requantize(int32_t acc, int32_t mult, int shift) { return requantize(acc, mult, shift); }

/* 32-bit accumulation wraps modulo 2^32 (specified; what SMLAD, SDOT and VPDPBUSD do). It is done
 * in uint32_t so that a model that does overflow gives a defined result, not undefined behaviour. */
static int32_t wrap_s32(uint32_t u) {
    return u <= (uint32_t)INT32_MAX ? (int32_t)u : (int32_t)(u - 0x80000000u) - INT32_MAX - 1;
}

/* requantize, add the output zero point, clamp. Clamping before the add is the same as clamping
 * after it, and cannot overflow. */
static int8_t output_s8(int32_t acc, int32_t mult, int32_t shift, int32_t zero_point, kdrt_activation act) {
    int32_t r = requantize(acc, mult, (int)shift);
    int32_t lo = act.min - zero_point, hi = act.max - zero_point;
    if (r < lo) r = lo;
    if (r > hi) r = hi;
    return (int8_t)(r + zero_point);
}

/* ---- Convolutions ------------------------------------------------------------------------------ */

/* acc plus the sum over the window of output pixel (oy, ox) of (x - zp_in) * f, skipping taps on the
 * padding: n channels per tap from x = img + (iy * W + ix) * C and f = filt + (ky * KW + kx) * C
 * (conv2d: a whole filter, n = C; depthwise: one channel, n = 1, img and filt offset by it). */
static uint32_t window_dot(uint32_t acc, const int8_t *img, const kdrt_dims *in_dims, const int8_t *filt,
                           const kdrt_dims *filter_dims, int32_t n, const kdrt_conv_params *params, int32_t oy,
                           int32_t ox) {
    const int32_t H = in_dims->h, W = in_dims->w, C = in_dims->c, KH = filter_dims->h, KW = filter_dims->w;
    for (int32_t ky = 0; ky < KH; ky++) {
        int32_t iy = oy * params->stride.h - params->padding.h + ky;
        if (iy < 0 || iy >= H) continue;
        for (int32_t kx = 0; kx < KW; kx++) {
            int32_t ix = ox * params->stride.w - params->padding.w + kx;
            if (ix < 0 || ix >= W) continue;
            const int8_t *x = img + (iy * W + ix) * C, *f = filt + (ky * KW + kx) * C;
            for (int32_t c = 0; c < n; c++)
                acc += (uint32_t)(((int32_t)x[c] - params->input_zero_point) * (int32_t)f[c]);
        }
    }
    return acc;
}

kdrt_status kdrt_conv2d_s8_ref(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims,
                               const int8_t *in, const kdrt_dims *in_dims, const int8_t *filter,
                               const kdrt_dims *filter_dims, const int32_t *bias,
                               const kdrt_conv_params *params, const kdrt_channel_quant *quant) {
    (void)ctx; /* no scratch needed */
    kdrt_status st = kdrt_check_conv2d_s8(out, out_dims, in, in_dims, filter, filter_dims, params, quant);
    if (st != KDRT_STATUS_OK) return st;

    const int32_t H = in_dims->h, W = in_dims->w, C = in_dims->c;
    const int32_t OH = out_dims->h, OW = out_dims->w, OC = out_dims->c;
    const int32_t K = filter_dims->h * filter_dims->w * C;
    for (int32_t b = 0; b < in_dims->n; b++)
        for (int32_t oy = 0; oy < OH; oy++)
            for (int32_t ox = 0; ox < OW; ox++)
                for (int32_t oc = 0; oc < OC; oc++) {
                    uint32_t acc = window_dot(bias ? (uint32_t)bias[oc] : 0u, in + b * H * W * C, in_dims,
                                              filter + oc * K, filter_dims, C, params, oy, ox);
                    out[((b * OH + oy) * OW + ox) * OC + oc] =
                        output_s8(wrap_s32(acc), quant->multiplier[oc], quant->shift[oc],
                                  params->output_zero_point, params->activation);
                }
    return KDRT_STATUS_OK;
}

kdrt_status kdrt_depthwise_conv2d_s8_ref(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims,
                                         const int8_t *in, const kdrt_dims *in_dims,
                                         const int8_t *filter, const kdrt_dims *filter_dims,
                                         const int32_t *bias, const kdrt_conv_params *params,
                                         const kdrt_channel_quant *quant) {
    (void)ctx;
    kdrt_status st = kdrt_check_depthwise_conv2d_s8(out, out_dims, in, in_dims, filter, filter_dims, params, quant);
    if (st != KDRT_STATUS_OK) return st;

    const int32_t H = in_dims->h, W = in_dims->w, C = in_dims->c;
    const int32_t OH = out_dims->h, OW = out_dims->w;
    for (int32_t b = 0; b < in_dims->n; b++)
        for (int32_t oy = 0; oy < OH; oy++)
            for (int32_t ox = 0; ox < OW; ox++)
                for (int32_t c = 0; c < C; c++) {
                    uint32_t acc = window_dot(bias ? (uint32_t)bias[c] : 0u, in + b * H * W * C + c, in_dims,
                                              filter + c, filter_dims, 1, params, oy, ox);
                    out[((b * OH + oy) * OW + ox) * C + c] =
                        output_s8(wrap_s32(acc), quant->multiplier[c], quant->shift[c],
                                  params->output_zero_point, params->activation);
                }
    return KDRT_STATUS_OK;
}

/* ---- Fully connected ------------------------------------------------------------------------- */

kdrt_status kdrt_fully_connected_s8_ref(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims,
                                        const int8_t *in, const kdrt_dims *in_dims, const int8_t *weight,
                                        const int32_t *bias, const kdrt_fc_params *params,
                                        const kdrt_channel_quant *quant) {
    (void)ctx;
    kdrt_status st = kdrt_check_fully_connected_s8(out, out_dims, in, in_dims, weight, params, quant);
    if (st != KDRT_STATUS_OK) return st;
    const int32_t F = in_dims->h * in_dims->w * in_dims->c, O = out_dims->c;

    for (int32_t b = 0; b < in_dims->n; b++)
        for (int32_t o = 0; o < O; o++) {
            const int8_t *x = in + b * F, *w = weight + o * F;
            uint32_t acc = bias ? (uint32_t)bias[o] : 0u;
            for (int32_t i = 0; i < F; i++)
                acc += (uint32_t)(((int32_t)x[i] - params->input_zero_point) * (int32_t)w[i]);
            out[b * O + o] = output_s8(wrap_s32(acc), quant->multiplier[o], quant->shift[o],
                                       params->output_zero_point, params->activation);
        }
    return KDRT_STATUS_OK;
}

/* ---- Pooling --------------------------------------------------------------------------------- */

static int32_t clamp_act(int32_t v, kdrt_activation a) { return v < a.min ? a.min : v > a.max ? a.max : v; }

/* One routine for both pools: `average` selects the rounded mean instead of the maximum. */
static kdrt_status pool2d(int8_t *out, const kdrt_dims *out_dims, const int8_t *in, const kdrt_dims *in_dims,
                          const kdrt_pool_params *p, int average) {
    kdrt_status st = kdrt_check_pool2d_s8(out, out_dims, in, in_dims, p);
    if (st != KDRT_STATUS_OK) return st;
    const int32_t H = in_dims->h, W = in_dims->w, C = in_dims->c, OH = out_dims->h, OW = out_dims->w;
    for (int32_t b = 0; b < in_dims->n; b++)
        for (int32_t oy = 0; oy < OH; oy++)
            for (int32_t ox = 0; ox < OW; ox++)
                for (int32_t c = 0; c < C; c++) {
                    int32_t sum = 0, max = INT8_MIN, count = 0;
                    for (int32_t ky = 0; ky < p->filter.h; ky++) {
                        int32_t iy = oy * p->stride.h - p->padding.h + ky;
                        if (iy < 0 || iy >= H) continue;
                        for (int32_t kx = 0; kx < p->filter.w; kx++) {
                            int32_t ix = ox * p->stride.w - p->padding.w + kx;
                            if (ix < 0 || ix >= W) continue;
                            int32_t v = in[((b * H + iy) * W + ix) * C + c];
                            sum += v;
                            if (v > max) max = v;
                            count++;
                        }
                    }
                    int32_t r = max;
                    if (average) r = kdrt_rounded_mean(sum, count); /* count >= 1: window_ok */
                    out[((b * OH + oy) * OW + ox) * C + c] = (int8_t)clamp_act(r, p->activation);
                }
    return KDRT_STATUS_OK;
}

kdrt_status kdrt_max_pool2d_s8_ref(int8_t *out, const kdrt_dims *out_dims, const int8_t *in,
                                   const kdrt_dims *in_dims, const kdrt_pool_params *params) {
    return pool2d(out, out_dims, in, in_dims, params, 0);
}

kdrt_status kdrt_avg_pool2d_s8_ref(int8_t *out, const kdrt_dims *out_dims, const int8_t *in,
                                   const kdrt_dims *in_dims, const kdrt_pool_params *params) {
    return pool2d(out, out_dims, in, in_dims, params, 1);
}

/* ---- Elementwise add ------------------------------------------------------------------------- */

kdrt_status kdrt_add_s8_ref(int8_t *out, const int8_t *in1, const int8_t *in2, const kdrt_dims *dims,
                            const kdrt_add_params *p) {
    kdrt_status st = kdrt_check_add_s8(out, in1, in2, dims, p);
    if (st != KDRT_STATUS_OK) return st;
    const int32_t n = kdrt_dims_count(dims), scale = (int32_t)1 << p->left_shift;
    for (int32_t i = 0; i < n; i++) {
        int32_t a = requantize(((int32_t)in1[i] - p->input1_zero_point) * scale, p->input1_multiplier,
                               (int)p->input1_shift);
        int32_t b = requantize(((int32_t)in2[i] - p->input2_zero_point) * scale, p->input2_multiplier,
                               (int)p->input2_shift);
        out[i] = output_s8(a + b, p->output_multiplier, p->output_shift, p->output_zero_point, p->activation);
    }
    return KDRT_STATUS_OK;
}

/* ---- Output ---------------------------------------------------------------------------------- */

kdrt_status kdrt_argmax_s8_ref(int32_t *out_index, const int8_t *in, const kdrt_dims *dims) {
    if (!out_index || !in) return KDRT_STATUS_BAD_ARG;
    if (!kdrt_dims_ok(dims)) return KDRT_STATUS_BAD_SHAPE;
    const int32_t rows = dims->n * dims->h * dims->w, C = dims->c;
    for (int32_t r = 0; r < rows; r++) {
        const int8_t *x = in + r * C;
        int32_t best = 0;
        for (int32_t c = 1; c < C; c++)
            if (x[c] > x[best]) best = c;
        out_index[r] = best;
    }
    return KDRT_STATUS_OK;
}

kdrt_status kdrt_dequantize_s8_ref(float *out, const int8_t *in, int32_t count, kdrt_quant q) {
    if (count < 0 || (count > 0 && (!out || !in))) return KDRT_STATUS_BAD_ARG;
    /* scale - scale is NaN for inf and NaN, so this rejects non-finite scales without <math.h>. */
    if (!(q.scale > 0.0f) || q.scale - q.scale != 0.0f || !kdrt_s8_ok(q.zero_point)) return KDRT_STATUS_BAD_QUANT;
    for (int32_t i = 0; i < count; i++) out[i] = q.scale * (float)((int32_t)in[i] - q.zero_point);
    return KDRT_STATUS_OK;
}
