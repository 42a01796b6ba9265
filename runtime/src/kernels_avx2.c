/* The AVX2 kernels of kdrt (`_avx2`, x86-64): int8 conv2d (1x1 with a copy-only fast path),
 * depthwise conv2d and fully connected, for x86-64 CPUs without AVX-512 VNNI. Every function carries
 * its own target attribute, so this file builds without -march flags; kernels_dispatch.c chooses at
 * run time. Results are bit-identical to kernels_ref.c (docs/QUANTIZATION.md; tests/unit/test_kernels_opt.c). */
#if defined(__x86_64__)
#include <immintrin.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kdrt_kernels.h"
#include "kernels_internal.h"
#include "kernels_x86.h"

/* rq512 for 8 lanes: the same steps with vector compares instead of mask registers. */
T_AVX2 INLINE __m256i rq256(__m256i acc, __m256i mult, __m256i lsh, __m256i rsh, __m256i lo, __m256i hi,
                            __m256i zp) {
    __m256i t = _mm256_sllv_epi32(acc, lsh);
    __m256i same = _mm256_cmpeq_epi32(_mm256_srav_epi32(t, lsh), acc);
    __m256i sat = _mm256_xor_si256(_mm256_srai_epi32(acc, 31), _mm256_set1_epi32(INT32_MAX));
    t = _mm256_blendv_epi8(sat, t, same);
    const __m256i nudge = _mm256_set1_epi64x((int64_t)1 << 30);
    __m256i even = _mm256_add_epi64(_mm256_mul_epi32(t, mult), nudge);
    __m256i odd = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(t, 32), _mm256_srli_epi64(mult, 32)), nudge);
    __m256i h = _mm256_blend_epi32(_mm256_srli_epi64(even, 31), _mm256_slli_epi64(odd, 1), 0xAA);
    const __m256i one = _mm256_set1_epi32(1);
    __m256i mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, rsh), one);
    __m256i rem = _mm256_and_si256(h, mask);
    __m256i thr = _mm256_add_epi32(_mm256_srli_epi32(mask, 1), _mm256_srli_epi32(h, 31));
    __m256i r = _mm256_sub_epi32(_mm256_srav_epi32(h, rsh), _mm256_cmpgt_epi32(rem, thr));
    r = _mm256_min_epi32(_mm256_max_epi32(r, lo), hi);
    return _mm256_add_epi32(r, zp);
}

/* the low n (<= 8) int32 lanes of v, already in [-128, 127], as bytes */
T_AVX2 INLINE void store8(int8_t *dst, __m256i v, int32_t n) {
    __m128i p = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    p = _mm_packs_epi16(p, p);
    if (n >= 8) {
        _mm_storel_epi64((__m128i *)(void *)dst, p);
    } else {
        int8_t tmp[16];
        _mm_storeu_si128((__m128i *)(void *)tmp, p);
        memcpy(dst, tmp, (size_t)n);
    }
}

/* dst[i] = src[i] - zp as int16, n >= 0 */
T_AVX2 INLINE void copy_sub16(int16_t *dst, const int8_t *src, int32_t n, int32_t zp) {
    const __m256i z = _mm256_set1_epi16((short)zp);
    int32_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(void *)(dst + i),
                            _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(src + i))), z));
    for (; i < n; i++) dst[i] = (int16_t)(src[i] - zp);
}

size_t kdrt_conv2d_s8_avx2_scratch_size(const kdrt_dims *out_dims, const kdrt_dims *in_dims,
                                        const kdrt_dims *filter_dims) {
    return conv_scratch_size(out_dims, in_dims, filter_dims, 8, 2, 2);
}

/* The padded input as int16 x - zp_in, 0 on the padding. */
T_AVX2 static void avx2_pad(int16_t *pad, const int8_t *in, const conv_geom *g, int32_t Hp, int32_t Wp) {
    const int32_t C = g->C;
    const int32_t ncopy = g->W < Wp - g->pw ? g->W : Wp - g->pw;
    for (int32_t b = 0; b < g->N; b++)
        for (int32_t py = 0; py < Hp; py++) {
            int16_t *row = pad + ((size_t)b * Hp + py) * Wp * C;
            const int32_t iy = py - g->ph;
            if (iy < 0 || iy >= g->H) {
                memset(row, 0, (size_t)Wp * C * 2);
                continue;
            }
            memset(row, 0, (size_t)g->pw * C * 2);
            copy_sub16(row + (size_t)g->pw * C, in + ((size_t)b * g->H + iy) * g->W * C, ncopy * C, g->zp_in);
            memset(row + (size_t)(g->pw + ncopy) * C, 0, (size_t)(Wp - g->pw - ncopy) * C * 2);
        }
}

T_AVX2 static void avx2_im2col(int16_t *col, int32_t Kp, const int8_t *in, const int16_t *pad, int32_t Hp,
                               int32_t Wp, const conv_geom *g, int32_t p0, int32_t npix) {
    const int32_t C = g->C, KWC = g->KW * g->C, KWCp = Kp / g->KH, zp = g->zp_in;
    if (!pad) {
        if (C == Kp) {
            copy_sub16(col, in + (size_t)p0 * C, npix * C, zp);
            return;
        }
        for (int32_t i = 0; i < npix; i++) {
            copy_sub16(col + (size_t)i * Kp, in + (size_t)(p0 + i) * C, C, zp);
            col[(size_t)i * Kp + C] = 0;
        }
        return;
    }
    const int32_t plane = g->OH * g->OW;
    const size_t row_elems = (size_t)Wp * C;
    int32_t b = p0 / plane, oy = (p0 % plane) / g->OW, ox = p0 % g->OW;
    for (int32_t i = 0; i < npix; i++, next_pixel(g, &b, &oy, &ox)) {
        int16_t *row = col + (size_t)i * Kp;
        const int16_t *src = pad + ((size_t)b * Hp + (size_t)oy * g->sh) * row_elems + (size_t)ox * g->sw * C;
        for (int32_t ky = 0; ky < g->KH; ky++)
            copy_over((uint8_t *)(void *)(row + (size_t)ky * KWCp), (const uint8_t *)(const void *)(src + ky * row_elems),
                      KWC * 2);
    }
}

/* MR pixels x NR blocks of 8 output channels; one vpmaddwd per pair of taps (as VNNI_TILES). */
#define AVX2_TILES(NAME, MR, NR)                                                                            \
    T_AVX2 __attribute__((noinline)) static void NAME(const int16_t *col, int32_t K2, const int16_t *wp,    \
                                                      size_t wstride, const int32_t *q, size_t qstride,     \
                                                      const conv_geom *g, int8_t *out, int32_t oc0,         \
                                                      int32_t npix) {                                       \
        const size_t Kp = (size_t)K2 * 2;                                                                   \
        const __m256i lo = _mm256_set1_epi32(g->lo), hi = _mm256_set1_epi32(g->hi);                         \
        const __m256i zp = _mm256_set1_epi32(g->zp_out);                                                    \
        for (int32_t m0 = 0; m0 < npix; m0 += MR, col += MR * Kp, out += (size_t)MR * g->OC) {              \
            __m256i acc[MR][NR];                                                                            \
            _Pragma("GCC unroll 16") for (int m = 0; m < MR; m++)                                           \
                _Pragma("GCC unroll 4") for (int n = 0; n < NR; n++)                                        \
                    acc[m][n] = _mm256_setzero_si256();                                                     \
            const int16_t *c = col, *w = wp;                                                                \
            for (int32_t k2 = 0; k2 < K2; k2++, c += 2, w += 16) {                                          \
                __m256i wv[NR];                                                                             \
                _Pragma("GCC unroll 4") for (int n = 0; n < NR; n++)                                        \
                    wv[n] = _mm256_loadu_si256((const __m256i *)(const void *)(w + (size_t)n * wstride));   \
                _Pragma("GCC unroll 16") for (int m = 0; m < MR; m++) {                                     \
                    __m256i a = _mm256_set1_epi32(load_s32(c + (size_t)m * Kp));                            \
                    _Pragma("GCC unroll 4") for (int n = 0; n < NR; n++)                                    \
                        acc[m][n] = _mm256_add_epi32(acc[m][n], _mm256_madd_epi16(a, wv[n]));               \
                }                                                                                           \
            }                                                                                               \
            _Pragma("GCC unroll 4") for (int n = 0; n < NR; n++) {                                          \
                const int32_t c0 = oc0 + 8 * n;                                                             \
                const __m256i mult = _mm256_loadu_si256((const __m256i *)(const void *)(q + qstride + c0));\
                const __m256i lsh = _mm256_loadu_si256((const __m256i *)(const void *)(q + 2 * qstride + c0)); \
                const __m256i rsh = _mm256_loadu_si256((const __m256i *)(const void *)(q + 3 * qstride + c0)); \
                const int32_t cnt = g->OC - c0 < 8 ? g->OC - c0 : 8;                                        \
                const __m256i bias8 = _mm256_loadu_si256((const __m256i *)(const void *)(q + c0));         \
                _Pragma("GCC unroll 16") for (int m = 0; m < MR; m++) if (m0 + m < npix)                    \
                    store8(out + (size_t)m * g->OC + c0, rq256(_mm256_add_epi32(acc[m][n], bias8), mult, lsh, rsh, lo, hi, zp), cnt); \
            }                                                                                               \
        }                                                                                                   \
    }
AVX2_TILES(avx2_tiles1, 8, 1)
AVX2_TILES(avx2_tiles2, 6, 2)

T_AVX2 kdrt_status kdrt_conv2d_s8_avx2(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims,
                                       const int8_t *in, const kdrt_dims *in_dims, const int8_t *filter,
                                       const kdrt_dims *filter_dims, const int32_t *bias,
                                       const kdrt_conv_params *params, const kdrt_channel_quant *quant) {
    kdrt_status st = kdrt_check_conv2d_s8(out, out_dims, in, in_dims, filter, filter_dims, params, quant);
    if (st != KDRT_STATUS_OK) return st;
    if (!kdrt_cpu_avx2()) return KDRT_STATUS_UNSUPPORTED;
    conv_plan cp;
    if (!conv_plan_init(&cp, ctx, out_dims, in_dims, filter_dims, params, 8, 2, 2)) return KDRT_STATUS_NO_SCRATCH;
    const conv_geom g = cp.g;
    uint8_t *base = kdrt_align_scratch(ctx->buf);
    int16_t *wp = (int16_t *)(void *)base, *col = (int16_t *)(void *)(base + cp.lay.col);
    int32_t *q = (int32_t *)(void *)(base + cp.lay.q);
    int16_t *pad = cp.pointwise ? NULL : (int16_t *)(void *)(base + cp.lay.pad);
    const int32_t Hp = cp.Hp, Wp = cp.Wp;
    if (pad) avx2_pad(pad, in, &g, Hp, Wp);
    const int32_t KWC = g.KW * g.C, KWCp = (KWC + 1) / 2 * 2, Kp = g.KH * KWCp, K2 = Kp / 2, NB = (g.OC + 7) / 8;
    const size_t qstride = (size_t)NB * 8, wstride = (size_t)8 * Kp;
    /* weights: lane l of block ob holds channel 8 ob + l, two taps per 32-bit lane, each filter row
     * padded to KWCp taps with zeros */
    for (int32_t ob = 0; ob < NB; ob++)
        for (int32_t l = 0; l < 8; l++) {
            const int32_t oc = ob * 8 + l;
            int16_t *d = wp + (size_t)ob * wstride + (size_t)l * 2;
            const int8_t *s = oc < g.OC ? filter + (size_t)oc * g.K : NULL;
            for (int32_t ky = 0; ky < g.KH; ky++)
                for (int32_t j = 0; j < KWCp; j++) {
                    const int32_t kk = ky * KWCp + j;
                    d[(size_t)(kk / 2) * 16 + kk % 2] = (int16_t)(s && j < KWC ? s[ky * KWC + j] : 0);
                }
            q[oc] = oc < g.OC && bias ? bias[oc] : 0;
        }
    quant_pad(q + qstride, q + 2 * qstride, q + 3 * qstride, quant, g.OC, NB * 8);

    const int32_t P = g.N * g.OH * g.OW;
    for (int32_t p0 = 0; p0 < P; p0 += PB) {
        const int32_t npix = P - p0 < PB ? P - p0 : PB;
        avx2_im2col(col, Kp, in, pad, Hp, Wp, &g, p0, npix);
        if (npix < PB) memset(col + (size_t)npix * Kp, 0, (size_t)(PB - npix) * Kp * 2);
        int8_t *o = out + (size_t)p0 * g.OC;
        int32_t ob = 0;
        for (; ob + 2 <= NB; ob += 2) avx2_tiles2(col, K2, wp + ob * wstride, wstride, q, qstride, &g, o, ob * 8, npix);
        if (ob < NB) avx2_tiles1(col, K2, wp + ob * wstride, wstride, q, qstride, &g, o, ob * 8, npix);
    }
    return KDRT_STATUS_OK;
}

/* 16 bytes from p, or the first n of them with zeros after (n < 16), without reading past p + n */
T_AVX2 INLINE __m128i load16(const int8_t *p, int32_t n) {
    if (n >= 16) return _mm_loadu_si128((const __m128i *)(const void *)p);
    int8_t tmp[16] = {0};
    memcpy(tmp, p, (size_t)n);
    return _mm_loadu_si128((const __m128i *)(const void *)tmp);
}

T_AVX2 INLINE __m256i load8_s32(const int32_t *p, int32_t n) {
    if (n >= 8) return _mm256_loadu_si256((const __m256i *)(const void *)p);
    int32_t tmp[8] = {0};
    if (n > 0) memcpy(tmp, p, (size_t)n * sizeof(int32_t));
    return _mm256_loadu_si256((const __m256i *)(const void *)tmp);
}

/* acc (8 lanes) through requantization; multipliers and shifts of n (<= 8) channels from q */
T_AVX2 INLINE void rq_store8(int8_t *dst, __m256i acc, const kdrt_channel_quant *q, int32_t c0, int32_t n,
                             __m256i lo, __m256i hi, __m256i zp) {
    const __m256i zero = _mm256_setzero_si256();
    __m256i s = load8_s32(q->shift + c0, n), mult = load8_s32(q->multiplier + c0, n);
    __m256i lsh = _mm256_max_epi32(s, zero), rsh = _mm256_max_epi32(_mm256_sub_epi32(zero, s), zero);
    store8(dst, rq256(acc, mult, lsh, rsh, lo, hi, zp), n);
}

T_AVX2 kdrt_status kdrt_depthwise_conv2d_s8_avx2(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims,
                                                 const int8_t *in, const kdrt_dims *in_dims, const int8_t *filter,
                                                 const kdrt_dims *filter_dims, const int32_t *bias,
                                                 const kdrt_conv_params *params, const kdrt_channel_quant *quant) {
    (void)ctx;
    kdrt_status st = kdrt_check_depthwise_conv2d_s8(out, out_dims, in, in_dims, filter, filter_dims, params, quant);
    if (st != KDRT_STATUS_OK) return st;
    if (!kdrt_cpu_avx2()) return KDRT_STATUS_UNSUPPORTED;
    conv_geom g;
    kdrt_geom_init(&g, out_dims, in_dims, filter_dims, params);
    const int32_t C = g.C;
    const __m256i zp16 = _mm256_set1_epi16((short)g.zp_in);
    const __m256i lo = _mm256_set1_epi32(g.lo), hi = _mm256_set1_epi32(g.hi), zp = _mm256_set1_epi32(g.zp_out);
    for (int32_t b = 0; b < g.N; b++)
        for (int32_t oy = 0; oy < g.OH; oy++) {
            const int32_t iy0 = oy * g.sh - g.ph;
            const int32_t ky0 = iy0 < 0 ? -iy0 : 0, ky1 = g.H - iy0 < g.KH ? g.H - iy0 : g.KH;
            for (int32_t ox = 0; ox < g.OW; ox++) {
                const int32_t ix0 = ox * g.sw - g.pw;
                const int32_t kx0 = ix0 < 0 ? -ix0 : 0, kx1 = g.W - ix0 < g.KW ? g.W - ix0 : g.KW;
                int8_t *o = out + ((size_t)(b * g.OH + oy) * g.OW + ox) * C;
                for (int32_t c0 = 0; c0 < C; c0 += 16) {
                    const int32_t n = C - c0 < 16 ? C - c0 : 16;
                    __m256i acc0 = bias ? load8_s32(bias + c0, n) : _mm256_setzero_si256();
                    __m256i acc1 = bias && n > 8 ? load8_s32(bias + c0 + 8, n - 8) : _mm256_setzero_si256();
                    for (int32_t ky = ky0; ky < ky1; ky++) {
                        const int8_t *x = in + (size_t)(b * g.H + iy0 + ky) * g.W * C + c0;
                        const int8_t *f = filter + (size_t)ky * g.KW * C + c0;
                        for (int32_t kx = kx0; kx < kx1; kx++) {
                            __m256i xv = _mm256_sub_epi16(_mm256_cvtepi8_epi16(load16(x + (size_t)(ix0 + kx) * C, n)), zp16);
                            __m256i wv = _mm256_cvtepi8_epi16(load16(f + (size_t)kx * C, n));
                            __m256i p = _mm256_mullo_epi16(xv, wv);
                            acc0 = _mm256_add_epi32(acc0, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(p)));
                            acc1 = _mm256_add_epi32(acc1, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(p, 1)));
                        }
                    }
                    rq_store8(o + c0, acc0, quant, c0, n < 8 ? n : 8, lo, hi, zp);
                    if (n > 8) rq_store8(o + c0 + 8, acc1, quant, c0 + 8, n - 8, lo, hi, zp);
                }
            }
        }
    return KDRT_STATUS_OK;
}

T_AVX2 INLINE int32_t hsum256(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* four rows of (x - zp) . w, 16 features per vpmaddwd; the last F % 16 in scalar (wrapping) */
T_AVX2 INLINE void fc_dot4_avx2(const int8_t *x, const int8_t *const *w, int32_t F, int32_t zp, int32_t *dot) {
    const __m256i z = _mm256_set1_epi16((short)zp);
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    int32_t i = 0;
    for (; i + 16 <= F; i += 16) {
        __m256i xv = _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(x + i))), z);
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(xv, _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(w[0] + i)))));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(xv, _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(w[1] + i)))));
        a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(xv, _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(w[2] + i)))));
        a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(xv, _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(w[3] + i)))));
    }
    uint32_t t[4] = {(uint32_t)hsum256(a0), (uint32_t)hsum256(a1), (uint32_t)hsum256(a2), (uint32_t)hsum256(a3)};
    for (; i < F; i++)
        for (int r = 0; r < 4; r++) t[r] += (uint32_t)(((int32_t)x[i] - zp) * (int32_t)w[r][i]);
    memcpy(dot, t, sizeof t);
}

T_AVX2 kdrt_status kdrt_fully_connected_s8_avx2(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims,
                                                const int8_t *in, const kdrt_dims *in_dims, const int8_t *weight,
                                                const int32_t *bias, const kdrt_fc_params *params,
                                                const kdrt_channel_quant *quant) {
    (void)ctx;
    kdrt_status st = kdrt_check_fully_connected_s8(out, out_dims, in, in_dims, weight, params, quant);
    if (st != KDRT_STATUS_OK) return st;
    if (!kdrt_cpu_avx2()) return KDRT_STATUS_UNSUPPORTED;
    const int32_t N = in_dims->n, F = in_dims->h * in_dims->w * in_dims->c, O = out_dims->c;
    const __m256i lo = _mm256_set1_epi32(params->activation.min - params->output_zero_point);
    const __m256i hi = _mm256_set1_epi32(params->activation.max - params->output_zero_point);
    const __m256i zp = _mm256_set1_epi32(params->output_zero_point);
    for (int32_t o0 = 0; o0 < O; o0 += 8) {
        const int32_t no = O - o0 < 8 ? O - o0 : 8;
        __m256i b8 = bias ? load8_s32(bias + o0, no) : _mm256_setzero_si256();
        for (int32_t b = 0; b < N; b++) {
            const int8_t *x = in + (size_t)b * F;
            int32_t dot[8] = {0};
            for (int32_t j = 0; j < no; j += 4) {
                const int8_t *w[4];
                for (int32_t t = 0; t < 4; t++) w[t] = weight + (size_t)(o0 + (j + t < no ? j + t : no - 1)) * F;
                fc_dot4_avx2(x, w, F, params->input_zero_point, dot + j);
            }
            __m256i acc = _mm256_add_epi32(b8, _mm256_loadu_si256((const __m256i *)(const void *)dot));
            rq_store8(out + (size_t)b * O + o0, acc, quant, o0, no, lo, hi, zp);
        }
    }
    return KDRT_STATUS_OK;
}

#else
/* ISO C forbids an empty translation unit: this file compiles to nothing off x86-64. */
typedef int kdrt_kernels_avx2_unused;
#endif
