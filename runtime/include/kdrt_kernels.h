/* kdrt kernels: the int8 operators of the runtime. The `_ref` variants (runtime/src/kernels_ref.c)
 * are portable, obvious loops and the oracle: the training side's integer evaluation calls them,
 * and every optimised variant must match them bit for bit. The exact arithmetic is specified in
 * docs/QUANTIZATION.md; the comments here give shapes, layouts and ranges.
 *
 * Common rules: all tensors NHWC (see kdrt_dims); outputs first, then inputs, then parameters;
 * every kernel checks its arguments and returns a status without touching the output when one is
 * bad; none allocates, prints or keeps state, so kernels may run concurrently on different data. */
#ifndef KDRT_KERNELS_H
#define KDRT_KERNELS_H
#include "kdrt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Fixed-point arithmetic ------------------------------------------------------------------ */

/* round(a * b / 2^31), ties toward +infinity, i.e. floor((a * b + 2^30) / 2^31) computed exactly;
 * the single overflowing case a = b = INT32_MIN gives INT32_MAX (gemmlowp's
 * SaturatingRoundingDoublingHighMul). */
int32_t kdrt_doubling_high_mul(int32_t a, int32_t b);

/* x / 2^exponent rounded to nearest, ties away from zero; exponent in [0, 31] (gemmlowp's
 * RoundingDivideByPOT). */
int32_t kdrt_rounding_divide_by_pot(int32_t x, int exponent);

/* acc * mult / 2^31 * 2^shift as TFLite's MultiplyByQuantizedMultiplier:
 *   shift > 0:  kdrt_doubling_high_mul(sat(acc * 2^shift), mult)   (sat: clamp to int32)
 *   shift <= 0: kdrt_rounding_divide_by_pot(kdrt_doubling_high_mul(acc, mult), -shift)
 * mult in [0, 2^31 - 1], shift in [-31, 30] (values outside are clamped into that range). */
int32_t kdrt_requantize(int32_t acc, int32_t mult, int shift);

/* ---- Kernels (portable reference) -------------------------------------------------------------- */

/* 2-D convolution, dilation 1, one group.
 *   out     (N, OH, OW, OC)   out_dims
 *   in      (N, H, W, C)      in_dims, out_dims->n == in_dims->n
 *   filter  (OC, KH, KW, C)   filter_dims (OHWI), int8 symmetric per output channel
 *   bias    (OC) int32 at scale in_scale * w_scale[oc], or NULL for none
 *   quant   OC multipliers and shifts
 * out[b,y,x,o] = clamp(zp_out + requant(bias[o] + sum_{ky,kx,c} (in[b, y*sh-ph+ky, x*sw-pw+kx, c]
 *                - zp_in) * filter[o,ky,kx,c], mult[o], shift[o]))  over taps inside the input. */
kdrt_status kdrt_conv2d_s8_ref(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims,
                               const int8_t *in, const kdrt_dims *in_dims, const int8_t *filter,
                               const kdrt_dims *filter_dims, const int32_t *bias,
                               const kdrt_conv_params *params, const kdrt_channel_quant *quant);

/* Depthwise 2-D convolution, channel multiplier 1 (out channels == in channels == C).
 *   out (N, OH, OW, C), in (N, H, W, C), filter (1, KH, KW, C) (TFLite's layout), bias (C) or NULL,
 *   quant C multipliers and shifts. Same formula as conv2d with the sum over (ky, kx) only. */
kdrt_status kdrt_depthwise_conv2d_s8_ref(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims,
                                         const int8_t *in, const kdrt_dims *in_dims,
                                         const int8_t *filter, const kdrt_dims *filter_dims,
                                         const int32_t *bias, const kdrt_conv_params *params,
                                         const kdrt_channel_quant *quant);

/* Fully connected. The input (N, H, W, C) is read as N rows of F = H*W*C features in NHWC order;
 *   out (N, 1, 1, O) out_dims, weight (O, F) row-major, bias (O) or NULL, quant O entries.
 * out[b,o] = clamp(zp_out + requant(bias[o] + sum_i (in[b,i] - zp_in) * weight[o,i])). */
kdrt_status kdrt_fully_connected_s8_ref(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims,
                                        const int8_t *in, const kdrt_dims *in_dims, const int8_t *weight,
                                        const int32_t *bias, const kdrt_fc_params *params,
                                        const kdrt_channel_quant *quant);

/* Max pooling: out (N, OH, OW, C), in (N, H, W, C); the maximum over the window's positions inside
 * the input, then the clamp. Input and output share scale and zero point. */
kdrt_status kdrt_max_pool2d_s8_ref(int8_t *out, const kdrt_dims *out_dims, const int8_t *in,
                                   const kdrt_dims *in_dims, const kdrt_pool_params *params);

/* Average pooling: as max pooling with the mean of the window's positions inside the input
 * (count = how many), rounded to nearest with ties away from zero (TFLite):
 *   sum > 0 ? (sum + count/2) / count : (sum - count/2) / count    (C division, truncating) */
kdrt_status kdrt_avg_pool2d_s8_ref(int8_t *out, const kdrt_dims *out_dims, const int8_t *in,
                                   const kdrt_dims *in_dims, const kdrt_pool_params *params);

/* Elementwise add, no broadcasting: out, in1 and in2 all have shape `dims`.
 *   a = requant((in1 - zp1) * 2^left_shift, m1, s1);  b = requant((in2 - zp2) * 2^left_shift, m2, s2)
 *   out = clamp(zp_out + requant(a + b, m_out, s_out)) */
kdrt_status kdrt_add_s8_ref(int8_t *out, const int8_t *in1, const int8_t *in2, const kdrt_dims *dims,
                            const kdrt_add_params *params);

/* Index of the largest value along the channel axis: out_index has N*H*W entries, each in
 * [0, C - 1]; ties give the lowest index (as numpy and TFLite). */
kdrt_status kdrt_argmax_s8_ref(int32_t *out_index, const int8_t *in, const kdrt_dims *dims);

/* out[i] = q.scale * (float)(in[i] - q.zero_point) for i in [0, count): one float multiply of an
 * exactly representable integer, so the result is the same on every IEEE-754 target.
 * count >= 0; scale > 0 and finite; zero_point in [-128, 127]. */
kdrt_status kdrt_dequantize_s8_ref(float *out, const int8_t *in, int32_t count, kdrt_quant q);

/* ---- Optimised kernels and their dispatchers ------------------------------------------------
 * Same signatures, arguments, statuses and results (bit for bit) as the `_ref` kernels above; they
 * differ only in speed and in needing caller scratch through `ctx` (ctx->buf: any alignment,
 * ctx->size bytes). Each reports its need with a `_scratch_size` function of the shapes alone;
 * a ctx (or buf) that is NULL or smaller gives KDRT_STATUS_NO_SCRATCH (a need of 0 accepts a NULL
 * ctx). Argument checks come first, in the same order as `_ref`, so a bad call gives the same
 * status from every variant.
 *
 * The dispatchers (runtime/src/kernels_dispatch.c) run the fastest variant this CPU supports:
 *   x86-64:  AVX-512 VNNI (avx512f+bw+vl+vnni), else AVX2, else `_ref`   (CPU checked at run time)
 *   aarch64: NEON (with SDOT when the compiler targets the dot-product extension)
 *   others:  `_ref`
 * Their scratch need is the largest of the variants built for the architecture, whatever the CPU,
 * so arena sizes do not depend on the machine within an architecture (0 where only `_ref` exists). */

size_t kdrt_conv2d_s8_scratch_size(const kdrt_dims *out_dims, const kdrt_dims *in_dims,
                                   const kdrt_dims *filter_dims);
kdrt_status kdrt_conv2d_s8(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims, const int8_t *in,
                           const kdrt_dims *in_dims, const int8_t *filter, const kdrt_dims *filter_dims,
                           const int32_t *bias, const kdrt_conv_params *params, const kdrt_channel_quant *quant);

size_t kdrt_depthwise_conv2d_s8_scratch_size(const kdrt_dims *out_dims, const kdrt_dims *in_dims,
                                             const kdrt_dims *filter_dims);
kdrt_status kdrt_depthwise_conv2d_s8(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims,
                                     const int8_t *in, const kdrt_dims *in_dims, const int8_t *filter,
                                     const kdrt_dims *filter_dims, const int32_t *bias,
                                     const kdrt_conv_params *params, const kdrt_channel_quant *quant);

/* Pooling (runtime/src/kernels_pool.c): portable, bounds clipped per window and the channel loop
 * innermost; bit-exact with the `_ref` pools, no scratch. */
kdrt_status kdrt_max_pool2d_s8(int8_t *out, const kdrt_dims *out_dims, const int8_t *in, const kdrt_dims *in_dims,
                               const kdrt_pool_params *params);
kdrt_status kdrt_avg_pool2d_s8(int8_t *out, const kdrt_dims *out_dims, const int8_t *in, const kdrt_dims *in_dims,
                               const kdrt_pool_params *params);

/* Elementwise add: AVX-512 on x86-64 CPUs that have the VNNI set above, else `_ref`. No scratch. */
kdrt_status kdrt_add_s8(int8_t *out, const int8_t *in1, const int8_t *in2, const kdrt_dims *dims,
                        const kdrt_add_params *params);
kdrt_status kdrt_add_s8_avx512(int8_t *out, const int8_t *in1, const int8_t *in2, const kdrt_dims *dims,
                               const kdrt_add_params *params);

size_t kdrt_fully_connected_s8_scratch_size(const kdrt_dims *out_dims, const kdrt_dims *in_dims);
kdrt_status kdrt_fully_connected_s8(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims,
                                    const int8_t *in, const kdrt_dims *in_dims, const int8_t *weight,
                                    const int32_t *bias, const kdrt_fc_params *params,
                                    const kdrt_channel_quant *quant);

/* The variants themselves (declared only on their architecture). Called directly on a CPU without
 * the instructions they need, they return KDRT_STATUS_UNSUPPORTED (after the argument checks)
 * instead of faulting.
 *   _avx512: int8 x int8 as u8 x s8 with vpdpbusd: activations + 128, and a per-channel
 *            bias - (zp_in + 128) * sum(weights) correction computed per call; im2col with
 *            padded taps holding the input zero point; 1x1 convs copy rows without gathering.
 *   _avx2:   activations minus zero point and weights widened to int16, vpmaddwd pairs. */
#define KDRT_DECLARE_VARIANTS(suffix)                                                                       \
    size_t kdrt_conv2d_s8_##suffix##_scratch_size(const kdrt_dims *out_dims, const kdrt_dims *in_dims,      \
                                                  const kdrt_dims *filter_dims);                            \
    kdrt_status kdrt_conv2d_s8_##suffix(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims,        \
                                        const int8_t *in, const kdrt_dims *in_dims, const int8_t *filter,   \
                                        const kdrt_dims *filter_dims, const int32_t *bias,                  \
                                        const kdrt_conv_params *params, const kdrt_channel_quant *quant);   \
    kdrt_status kdrt_depthwise_conv2d_s8_##suffix(                                                          \
        const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims, const int8_t *in,                      \
        const kdrt_dims *in_dims, const int8_t *filter, const kdrt_dims *filter_dims, const int32_t *bias,  \
        const kdrt_conv_params *params, const kdrt_channel_quant *quant);                                   \
    kdrt_status kdrt_fully_connected_s8_##suffix(const kdrt_ctx *ctx, int8_t *out,                          \
                                                 const kdrt_dims *out_dims, const int8_t *in,               \
                                                 const kdrt_dims *in_dims, const int8_t *weight,            \
                                                 const int32_t *bias, const kdrt_fc_params *params,         \
                                                 const kdrt_channel_quant *quant);
#if defined(__x86_64__)
KDRT_DECLARE_VARIANTS(avx512)
KDRT_DECLARE_VARIANTS(avx2)
#endif
#if defined(__aarch64__)
/*   _neon:   SDOT on int8 with a bias - zp_in * sum(weights) correction when compiled for the
 *            dot-product extension (__ARM_FEATURE_DOTPROD), else int16 multiply-accumulate. */
KDRT_DECLARE_VARIANTS(neon)
#endif
/* Depthwise and fully-connected variants need no scratch (see the dispatchers' _scratch_size). */

/* ---- Parameter preparation (converter side; runtime/src/quant_params.c) ------------------------ */
/* These run on the host when a model is converted, but use no libm and no floating-point library
 * function (the double is decoded from its IEEE-754 bits), so they also build for a device. */

/* Decompose real >= 0 into mult / 2^31 * 2^shift, as TFLite's QuantizeMultiplier: real = q * 2^e
 * with q in [0.5, 1); mult = round(q * 2^31) (ties away from zero); if that is 2^31, mult = 2^30
 * and e + 1; shift = e. real = 0 (or below 2^-32, i.e. e < -31): mult = 0, shift = 0. e > 30:
 * mult = 2^31 - 1, shift = 30 (saturated). Negative, NaN or infinite real: KDRT_STATUS_BAD_QUANT. */
kdrt_status kdrt_quantize_multiplier(double real, int32_t *mult, int *shift);

/* The per-output-channel multipliers of a conv / depthwise conv / fully connected layer:
 * real[ch] = (double)in_scale * (double)w_scale[ch] / (double)out_scale, then
 * kdrt_quantize_multiplier. Scales must be > 0 and finite. mult, shift: (channels) arrays. */
kdrt_status kdrt_prepare_channel_quant(int32_t *mult, int32_t *shift, int32_t channels, float in_scale,
                                       const float *w_scale, float out_scale);

/* Every field of kdrt_add_params from the three tensors' quantization, as TFLite's int8 add:
 * left_shift = 20; twice_max = 2 * max(s1, s2); input multipliers s1 / twice_max and
 * s2 / twice_max (shift <= 0); output multiplier twice_max / (2^20 * s_out); all in double. */
kdrt_status kdrt_add_prepare(kdrt_add_params *params, kdrt_quant in1, kdrt_quant in2, kdrt_quant out,
                             kdrt_activation activation);

#ifdef __cplusplus
}
#endif
#endif
