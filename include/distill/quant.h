/* The scalar quantization rule that the fp32 side (fake quantization in training), the int8 model
 * builder and the runtime's users share: a float range -> scale and zero point, a value -> int8,
 * per-channel int8 and per-group int4 weights (src/core/quant.c). The arithmetic is
 * docs/QUANTIZATION.md. The quantization parameters are the runtime's own struct (kdrt_quant), so
 * the training side's integer simulation and the device compute with the same values.
 * The third part of the rule, a real scale -> Q31 multiplier + shift (requantization), has one
 * home, the runtime: kdrt_quantize_multiplier and kdrt_prepare_channel_quant
 * (runtime/src/quant_params.c, declared in kdrt_kernels.h). The runtime is below everything and
 * the device computes them at prepare time, so the training side calls those rather than keep a
 * copy that could round differently. */
#ifndef DISTILL_QUANT_H
#define DISTILL_QUANT_H
#include <stddef.h>
#include <stdint.h>

#include "kdrt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Per-tensor asymmetric parameters for a range (docs/QUANTIZATION.md section 1): lo = min(lo, 0),
 * hi = max(hi, 0), s = (hi - lo) / 255 (a degenerate range gets s = 1/255), zp = clamp(round(-128 -
 * lo / s)). */
kdrt_quant kd_quant_from_range(float lo, float hi);
/* clamp(round(x / s) + zp, -128, 127), ties away from zero. */
int8_t kd_quantize_value(float x, kdrt_quant q);

/* Per-output-channel symmetric weights: w is (channels, k) row-major, scale[c] = max|w[c,:]| / 127
 * (1 for a channel of zeros), q = clamp(round(w / scale), -127, 127). Dequantized, every weight is
 * within scale[c] / 2 of w. */
void kd_quantize_weights(int8_t *q, float *scale, const float *w, int channels, size_t k);

/* int4 weights with per-group scales, expressed so that the int8 kernels run them unchanged
 * (docs/QUANTIZATION.md section 9). Row c (k weights) has a channel scale s = max|w[c,:]| / 112 and
 * is cut into groups of `group` consecutive weights; group g has an integer scale
 * m_g = clamp(ceil(max|w_g| / (7 s)), 1, 16) (4 bits) and int4 values v = clamp(round(w / (m_g s)),
 * -7, 7). The stored int8 weight is q = m_g * v, in [-112, 112], so w ~ s * q with a step of m_g * s
 * ~ max|w_g| / 7 in each group: per-group int4 precision, and a device can keep 4 bits + 4 bits per
 * group and expand to int8 when it loads. bits 8 is kd_quantize_weights. Rows are in the order the
 * caller gives (the training layout: conv OIHW rows, linear (O, F) with F in CHW order). */
void kd_quantize_weights_bits(int8_t *q, float *scale, const float *w, int channels, size_t k, int bits, int group);

/* An IEEE 754 half (binary16, as .npy '<f2' and ONNX float16 store it) as a float: exact, subnormals,
 * infinities and NaN included. */
float kd_half_to_float(uint16_t h);

#ifdef __cplusplus
}
#endif
#endif
