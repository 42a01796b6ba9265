/* The scalar quantization rule (include/distill/quant.h, docs/QUANTIZATION.md): a float range ->
 * scale and zero point, a value -> int8, per-channel int8 and per-group int4 weights. Shared by
 * fake quantization in training (src/nn), the int8 model builder (src/compress) and anyone
 * preparing the runtime's inputs; the requantization multiplier + shift is the runtime's own. */
#include <math.h>

#include "distill/quant.h"

float kd_half_to_float(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(m | 1024), e - 25);
    return h >> 15 ? -v : v;
}

/* Rounding everywhere below is C's round(): to nearest, ties away from zero. */

kdrt_quant kd_quant_from_range(float lo, float hi) {
    double l = lo < 0.f ? lo : 0.0, h = hi > 0.f ? hi : 0.0;
    kdrt_quant q;
    q.scale = (float)((h - l) / 255.0);
    if (!(q.scale > 0.f) || !isfinite(q.scale)) q.scale = 1.f / 255.f;
    double zp = round(-128.0 - l / (double)q.scale);
    q.zero_point = zp < -128 ? -128 : zp > 127 ? 127 : (int32_t)zp;
    return q;
}

int8_t kd_quantize_value(float x, kdrt_quant q) {
    double v = round((double)x / (double)q.scale) + q.zero_point;
    if (!(v >= -128.0)) return -128; /* also NaN */
    return v > 127.0 ? 127 : (int8_t)v;
}

void kd_quantize_weights(int8_t *q, float *scale, const float *w, int channels, size_t k) {
    for (int c = 0; c < channels; c++) {
        const float *r = w + (size_t)c * k;
        float mx = 0.f;
        for (size_t i = 0; i < k; i++) mx = fabsf(r[i]) > mx ? fabsf(r[i]) : mx;
        float s = mx / 127.f;
        if (!(s > 0.f) || !isfinite(s)) s = 1.f;
        scale[c] = s;
        for (size_t i = 0; i < k; i++) {
            double v = round((double)r[i] / (double)s);
            q[(size_t)c * k + i] = (int8_t)(v < -127 ? -127 : v > 127 ? 127 : v);
        }
    }
}

void kd_quantize_weights_bits(int8_t *q, float *scale, const float *w, int channels, size_t k, int bits, int group) {
    if (bits != 4) {
        kd_quantize_weights(q, scale, w, channels, k);
        return;
    }
    size_t G = group > 0 ? (size_t)group : k;
    for (int c = 0; c < channels; c++) {
        const float *r = w + (size_t)c * k;
        int8_t *qr = q + (size_t)c * k;
        float mx = 0.f;
        for (size_t i = 0; i < k; i++) mx = fabsf(r[i]) > mx ? fabsf(r[i]) : mx;
        float s = mx / 112.f;
        if (!(s > 0.f) || !isfinite(s)) s = 1.f;
        scale[c] = s;
        for (size_t g0 = 0; g0 < k; g0 += G) {
            size_t g1 = g0 + G < k ? g0 + G : k;
            float gm = 0.f;
            for (size_t i = g0; i < g1; i++) gm = fabsf(r[i]) > gm ? fabsf(r[i]) : gm;
            double mg = ceil((double)gm / (7.0 * (double)s));
            int m_g = !(mg >= 1.0) ? 1 : mg > 16.0 ? 16 : (int)mg;
            double step = (double)m_g * (double)s;
            for (size_t i = g0; i < g1; i++) {
                double v = round((double)r[i] / step);
                v = v < -7 ? -7 : v > 7 ? 7 : v;
                qr[i] = (int8_t)(m_g * (int)v);
            }
        }
    }
}
