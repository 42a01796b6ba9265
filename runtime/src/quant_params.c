/* Quantization-parameter preparation for kdrt: real multipliers to (Q31 multiplier, shift) pairs,
 * per-channel conv/FC multipliers, and the add operator's parameters. Used by the converter on the
 * host; written without libm (the double is decoded from its IEEE-754 bits instead of frexp), so
 * the device can prepare parameters too and both sides get identical integers. */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "kdrt_kernels.h"

/* The bit decoding assumes IEEE-754 binary64 doubles with the integers' byte order (true of every
 * target: x86, ARM, RISC-V; Cortex-M's soft-float double included). */
typedef char kdrt_check_double_is_64_bits[sizeof(double) == 8 ? 1 : -1];

kdrt_status kdrt_quantize_multiplier(double real, int32_t *mult, int *shift) {
    if (!mult || !shift) return KDRT_STATUS_BAD_ARG;
    uint64_t bits;
    memcpy(&bits, &real, sizeof bits);
    const unsigned sign = (unsigned)(bits >> 63);
    const int32_t biased = (int32_t)((bits >> 52) & 0x7ff);
    const uint64_t frac = bits & (((uint64_t)1 << 52) - 1);
    if (biased == 0x7ff) return KDRT_STATUS_BAD_QUANT;                  /* inf, NaN */
    if (sign && (biased != 0 || frac != 0)) return KDRT_STATUS_BAD_QUANT; /* negative (-0 is 0) */
    if (biased == 0) { /* zero, or subnormal: far below 2^-32, so all its products round to 0 */
        *mult = 0;
        *shift = 0;
        return KDRT_STATUS_OK;
    }
    /* real = m / 2^53 * 2^e with m = 1.frac as a 53-bit integer, so q = m / 2^53 in [0.5, 1) and
     * e = biased - 1022, which is what frexp returns. round(q * 2^31) = round(m / 2^22): add half
     * and truncate (m > 0, so ties go away from zero, as std::round). */
    const uint64_t m = ((uint64_t)1 << 52) | frac;
    uint64_t q31 = (m + ((uint64_t)1 << 21)) >> 22;
    int e = (int)biased - 1022;
    if (q31 == ((uint64_t)1 << 31)) {
        q31 >>= 1;
        e++;
    }
    if (e < -31) { /* every int32 accumulator times this rounds to 0 (TFLite does the same) */
        *mult = 0;
        *shift = 0;
    } else if (e > 30) { /* saturate, as TFLite */
        *mult = INT32_MAX;
        *shift = 30;
    } else {
        *mult = (int32_t)q31;
        *shift = e;
    }
    return KDRT_STATUS_OK;
}

/* scale - scale is 0 for finite values and NaN for inf and NaN. */
static int scale_ok(float s) { return s > 0.0f && s - s == 0.0f; }

kdrt_status kdrt_prepare_channel_quant(int32_t *mult, int32_t *shift, int32_t channels, float in_scale,
                                       const float *w_scale, float out_scale) {
    if (!mult || !shift || !w_scale || channels < 1) return KDRT_STATUS_BAD_ARG;
    if (!scale_ok(in_scale) || !scale_ok(out_scale)) return KDRT_STATUS_BAD_QUANT;
    for (int32_t ch = 0; ch < channels; ch++)
        if (!scale_ok(w_scale[ch])) return KDRT_STATUS_BAD_QUANT;
    for (int32_t ch = 0; ch < channels; ch++) {
        double real = (double)in_scale * (double)w_scale[ch] / (double)out_scale;
        int s;
        kdrt_status st = kdrt_quantize_multiplier(real, &mult[ch], &s);
        if (st != KDRT_STATUS_OK) return st;
        shift[ch] = s;
    }
    return KDRT_STATUS_OK;
}

kdrt_status kdrt_add_prepare(kdrt_add_params *p, kdrt_quant in1, kdrt_quant in2, kdrt_quant out,
                             kdrt_activation activation) {
    if (!p) return KDRT_STATUS_BAD_ARG;
    if (!scale_ok(in1.scale) || !scale_ok(in2.scale) || !scale_ok(out.scale)) return KDRT_STATUS_BAD_QUANT;
    if (in1.zero_point < -128 || in1.zero_point > 127 || in2.zero_point < -128 || in2.zero_point > 127 ||
        out.zero_point < -128 || out.zero_point > 127 || activation.min < -128 || activation.max > 127 ||
        activation.min > activation.max)
        return KDRT_STATUS_BAD_QUANT;
    const int left_shift = 20;
    const double s1 = (double)in1.scale, s2 = (double)in2.scale, so = (double)out.scale;
    const double twice_max = 2.0 * (s1 > s2 ? s1 : s2);
    int sh1, sh2, sho;
    kdrt_add_params r;
    if (kdrt_quantize_multiplier(s1 / twice_max, &r.input1_multiplier, &sh1) != KDRT_STATUS_OK ||
        kdrt_quantize_multiplier(s2 / twice_max, &r.input2_multiplier, &sh2) != KDRT_STATUS_OK ||
        kdrt_quantize_multiplier(twice_max / ((double)(1L << left_shift) * so), &r.output_multiplier, &sho) !=
            KDRT_STATUS_OK)
        return KDRT_STATUS_BAD_QUANT;
    /* The input ratios are <= 1/2, so their shifts are <= -1 (the kernel requires <= 0). */
    r.input1_shift = sh1;
    r.input2_shift = sh2;
    r.output_shift = sho;
    r.input1_zero_point = in1.zero_point;
    r.input2_zero_point = in2.zero_point;
    r.output_zero_point = out.zero_point;
    r.left_shift = left_shift;
    r.activation = activation;
    *p = r;
    return KDRT_STATUS_OK;
}
