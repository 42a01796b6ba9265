/* The AVX-512 VNNI kernels of kdrt (`_avx512`, x86-64): int8 conv2d (1x1 with a copy-only fast
 * path), depthwise conv2d, fully connected and elementwise add. Every function carries its own target
 * attribute, so this file builds without -march flags; kernels_dispatch.c chooses at run time.
 * Results are bit-identical to kernels_ref.c (docs/QUANTIZATION.md; tests/unit/test_kernels_opt.c). */
#if defined(__x86_64__)
#include <immintrin.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kdrt_kernels.h"
#include "kernels_internal.h"
#include "kernels_x86.h"

/* clamp(requant(acc, mult, shift)) + zp for 16 lanes, bit-exact with kernels_ref.c:
 * saturating acc * 2^lsh, then SRDHM as two 32x32->64 multiplies (even and odd lanes) whose bits
 * 31..62 are the result, then RDBP by rsh with gemmlowp's mask and threshold. */
T_AVX512 INLINE __m512i rq512(__m512i acc, __m512i mult, __m512i lsh, __m512i rsh, __m512i lo, __m512i hi,
                              __m512i zp) {
    __m512i t = _mm512_sllv_epi32(acc, lsh);
    __mmask16 ovf = _mm512_cmpneq_epi32_mask(_mm512_srav_epi32(t, lsh), acc);
    t = _mm512_mask_mov_epi32(t, ovf, _mm512_xor_si512(_mm512_srai_epi32(acc, 31), _mm512_set1_epi32(INT32_MAX)));
    const __m512i nudge = _mm512_set1_epi64((int64_t)1 << 30);
    __m512i even = _mm512_add_epi64(_mm512_mul_epi32(t, mult), nudge);
    __m512i odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(t, 32), _mm512_srli_epi64(mult, 32)), nudge);
    __m512i h = _mm512_mask_blend_epi32((__mmask16)0xAAAA, _mm512_srli_epi64(even, 31), _mm512_slli_epi64(odd, 1));
    const __m512i one = _mm512_set1_epi32(1);
    __m512i mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, rsh), one);
    __m512i rem = _mm512_and_si512(h, mask);
    __m512i thr = _mm512_add_epi32(_mm512_srli_epi32(mask, 1), _mm512_srli_epi32(h, 31));
    __m512i r = _mm512_mask_add_epi32(_mm512_srav_epi32(h, rsh), _mm512_cmpgt_epi32_mask(rem, thr),
                                      _mm512_srav_epi32(h, rsh), one);
    r = _mm512_min_epi32(_mm512_max_epi32(r, lo), hi);
    return _mm512_add_epi32(r, zp);
}

static __mmask16 mask16(int32_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }
static __mmask64 mask64(int32_t n) { return n >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << n) - 1); }

T_AVX512 INLINE void store16(int8_t *dst, __m512i v, __mmask16 m) {
    _mm_mask_storeu_epi8(dst, m, _mm512_cvtsepi32_epi8(v));
}

/* dst[i] = src[i] + 128 as unsigned bytes (x ^ 0x80), n >= 0 */
T_AVX512 INLINE void copy_flip(uint8_t *dst, const int8_t *src, int32_t n) {
    const __m512i k80 = _mm512_set1_epi8((char)0x80);
    for (; n >= 64; n -= 64, src += 64, dst += 64)
        _mm512_storeu_si512(dst, _mm512_xor_si512(_mm512_loadu_si512(src), k80));
    if (n > 0) {
        __mmask64 m = mask64(n);
        _mm512_mask_storeu_epi8(dst, m, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, src), k80));
    }
}

size_t kdrt_conv2d_s8_avx512_scratch_size(const kdrt_dims *out_dims, const kdrt_dims *in_dims,
                                          const kdrt_dims *filter_dims) {
    return conv_scratch_size(out_dims, in_dims, filter_dims, 16, 4, 1);
}

/* Weights to the VNNI layout with 16-lane gathers of 4 bytes (one output channel per lane), their
 * per-channel sums with vpdpbusd against ones, and corr = bias - (zp_in + 128) * sum (mod 2^32). */
T_AVX512 static void vnni_pack(uint8_t *wp, int32_t *corr, const int8_t *filter, const int32_t *bias,
                               const conv_geom *g, int32_t KWCp) {
    const int32_t K = g->K, OC = g->OC, KWC = g->KW * g->C, G = KWCp / 4, NB = (OC + 15) / 16;
    const __m512i lane = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32(K));
    const __m512i ones = _mm512_set1_epi8(1);
    for (int32_t ob = 0; ob < NB; ob++) {
        const int32_t oc0 = ob * 16, nl = OC - oc0 < 16 ? OC - oc0 : 16;
        const __mmask16 m = mask16(nl);
        const int8_t *base = filter + (size_t)oc0 * K;
        uint8_t *dst = wp + (size_t)ob * 16 * g->KH * KWCp;
        __m512i sum = _mm512_setzero_si512();
        for (int32_t ky = 0; ky < g->KH; ky++)
            for (int32_t t = 0; t < G; t++, dst += 64) {
                const int32_t off = ky * KWC + 4 * t;
                __m512i v;
                if (4 * t + 4 <= KWC) {
                    v = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m,
                                                    _mm512_add_epi32(lane, _mm512_set1_epi32(off)), base, 1);
                } else { /* the segment's last 1-3 taps, zero-padded */
                    int8_t tmp[64];
                    memset(tmp, 0, sizeof tmp);
                    for (int32_t l = 0; l < nl; l++)
                        for (int32_t j = 0; j < KWC - 4 * t; j++) tmp[l * 4 + j] = base[(size_t)l * K + off + j];
                    v = _mm512_loadu_si512(tmp);
                }
                _mm512_storeu_si512(dst, v);
                sum = _mm512_dpbusd_epi32(sum, ones, v);
            }
        uint32_t s[16]; /* modulo 2^32, like the accumulator */
        _mm512_storeu_si512(s, sum);
        const uint32_t zpu = (uint32_t)(g->zp_in + 128);
        for (int32_t l = 0; l < 16; l++) {
            int32_t oc = oc0 + l;
            uint32_t b = oc < OC && bias ? (uint32_t)bias[oc] : 0u;
            uint32_t c = b - zpu * s[l];
            memcpy(&corr[oc], &c, sizeof c);
        }
    }
}

/* The padded input as unsigned bytes: x + 128 inside, zp_in + 128 on the padding (so padded taps
 * add (zp + 128) * w, which the correction takes back). Hp x Wp per image. */
T_AVX512 static void vnni_pad(uint8_t *pad, const int8_t *in, const conv_geom *g, int32_t Hp, int32_t Wp) {
    const int32_t C = g->C;
    const uint8_t zpu = (uint8_t)(g->zp_in + 128);
    const int32_t ncopy = g->W < Wp - g->pw ? g->W : Wp - g->pw; /* input columns any window reads */
    for (int32_t b = 0; b < g->N; b++)
        for (int32_t py = 0; py < Hp; py++) {
            uint8_t *row = pad + ((size_t)b * Hp + py) * Wp * C;
            const int32_t iy = py - g->ph;
            if (iy < 0 || iy >= g->H) {
                memset(row, zpu, (size_t)Wp * C);
                continue;
            }
            memset(row, zpu, (size_t)g->pw * C);
            copy_flip(row + (size_t)g->pw * C, in + ((size_t)b * g->H + iy) * g->W * C, ncopy * C);
            memset(row + (size_t)(g->pw + ncopy) * C, zpu, (size_t)(Wp - g->pw - ncopy) * C);
        }
}

/* Patches of `npix` output pixels from pixel p0 (NHWC order) as rows of Kp unsigned bytes: KH runs
 * of KW * C bytes from the padded input, each at a multiple of KWCp. Pointwise convs read the input. */
T_AVX512 static void vnni_im2col(uint8_t *col, int32_t Kp, const int8_t *in, const uint8_t *pad, int32_t Hp,
                                 int32_t Wp, const conv_geom *g, int32_t p0, int32_t npix) {
    const int32_t C = g->C, KWC = g->KW * g->C, KWCp = Kp / g->KH;
    if (!pad) {
        if (C == Kp) {
            copy_flip(col, in + (size_t)p0 * C, npix * C);
            return;
        }
        for (int32_t i = 0; i < npix; i++) {
            copy_flip(col + (size_t)i * Kp, in + (size_t)(p0 + i) * C, C);
            memset(col + (size_t)i * Kp + C, 0, (size_t)(Kp - C));
        }
        return;
    }
    const int32_t plane = g->OH * g->OW;
    const size_t row_bytes = (size_t)Wp * C;
    int32_t b = p0 / plane, oy = (p0 % plane) / g->OW, ox = p0 % g->OW;
    for (int32_t i = 0; i < npix; i++, next_pixel(g, &b, &oy, &ox)) {
        uint8_t *row = col + (size_t)i * Kp;
        const uint8_t *src = pad + ((size_t)b * Hp + (size_t)oy * g->sh) * row_bytes + (size_t)ox * g->sw * C;
        /* the bytes after each KW * C run meet zero weights: whatever copy_over leaves there is fine */
        for (int32_t ky = 0; ky < g->KH; ky++) copy_over(row + (size_t)ky * KWCp, src + ky * row_bytes, KWC);
    }
}

/* With at most 8 output channels a 16-lane requantization runs half empty: pixels m and m+1 share
 * one vector instead (lanes [0, OC) from m, [OC, 2 OC) from m+1, which is also their NHWC output
 * order), with the per-channel parameters permuted the same way once per call (pair_quant_init). */
typedef struct pair_quant {
    __m512i idx, corr, mult, lsh, rsh, lo, hi, zp;
} pair_quant;

T_AVX512 static void pair_quant_init(pair_quant *pq, const int32_t *q, size_t qstride, const conv_geom *g) {
    int32_t idx[16];
    for (int32_t l = 0; l < 16; l++) idx[l] = l < g->OC ? l : l < 2 * g->OC ? 16 + (l - g->OC) : 0;
    pq->idx = _mm512_loadu_si512(idx);
    const __m512i c = _mm512_loadu_si512(q), m = _mm512_loadu_si512(q + qstride);
    const __m512i l = _mm512_loadu_si512(q + 2 * qstride), r = _mm512_loadu_si512(q + 3 * qstride);
    pq->corr = _mm512_permutex2var_epi32(c, pq->idx, c);
    pq->mult = _mm512_permutex2var_epi32(m, pq->idx, m);
    pq->lsh = _mm512_permutex2var_epi32(l, pq->idx, l);
    pq->rsh = _mm512_permutex2var_epi32(r, pq->idx, r);
    pq->lo = _mm512_set1_epi32(g->lo);
    pq->hi = _mm512_set1_epi32(g->hi);
    pq->zp = _mm512_set1_epi32(g->zp_out);
}

/* Pixels a and b (b only if `two`) requantized in one vector and stored at out. */
T_AVX512 INLINE void store_pair(int8_t *out, __m512i a, __m512i b, int two, const pair_quant *pq, int32_t OC) {
    const __m512i v = _mm512_add_epi32(_mm512_permutex2var_epi32(a, pq->idx, b), pq->corr);
    store16(out, rq512(v, pq->mult, pq->lsh, pq->rsh, pq->lo, pq->hi, pq->zp), mask16((two ? 2 : 1) * OC));
}

/* The register tile: MR pixels x NR blocks of 16 output channels, accumulated over Kp/4 groups of
 * 4 bytes (one vpdpbusd each), then requantized and stored; NAME runs it over npix pixels. MR and
 * NR are literals in each instance, so the loops unroll and the MR * NR accumulators (arrays of
 * exactly that size) live in zmm registers. */
#define VNNI_TILES(NAME, MR, NR)                                                                             \
    T_AVX512 __attribute__((noinline)) static void NAME(const uint8_t *col, int32_t K4, const uint8_t *wp,  \
                                                        size_t wstride, const int32_t *q, size_t qstride,   \
                                                        const conv_geom *g, int8_t *out, int32_t oc0,       \
                                                        int32_t npix, const pair_quant *pq) {               \
        const size_t Kp = (size_t)K4 * 4;                                                                   \
        for (int32_t m0 = 0; m0 < npix; m0 += MR, col += MR * Kp, out += (size_t)MR * g->OC) {              \
            __m512i acc[MR][NR];                                                                            \
            _Pragma("GCC unroll 16") for (int m = 0; m < MR; m++)                                           \
                _Pragma("GCC unroll 4") for (int n = 0; n < NR; n++)                                        \
                    acc[m][n] = _mm512_setzero_si512();                                                     \
            const uint8_t *c = col, *w = wp;                                                                \
            for (int32_t k4 = 0; k4 < K4; k4++, c += 4, w += 64) {                                          \
                __m512i wv[NR];                                                                             \
                _Pragma("GCC unroll 4") for (int n = 0; n < NR; n++)                                        \
                    wv[n] = _mm512_loadu_si512(w + (size_t)n * wstride);                                    \
                _Pragma("GCC unroll 16") for (int m = 0; m < MR; m++) {                                     \
                    __m512i a = _mm512_set1_epi32(load_s32(c + (size_t)m * Kp));                            \
                    _Pragma("GCC unroll 4") for (int n = 0; n < NR; n++)                                    \
                        acc[m][n] = _mm512_dpbusd_epi32(acc[m][n], a, wv[n]);                               \
                }                                                                                           \
            }                                                                                               \
            if (NR == 1 && pq) { /* at most 8 channels: two pixels per requantization */                \
                _Pragma("GCC unroll 8") for (int m = 0; m < MR; m += 2) if (m0 + m < npix)                  \
                    store_pair(out + (size_t)m * g->OC, acc[m][0], acc[m + 1 < MR ? m + 1 : m][0],          \
                               m + 1 < MR && m0 + m + 1 < npix, pq, g->OC);                                 \
                continue;                                                                                   \
            }                                                                                               \
            _Pragma("GCC unroll 4") for (int n = 0; n < NR; n++) {                                          \
                const int32_t c0 = oc0 + 16 * n;                                                            \
                const __m512i mult = _mm512_loadu_si512(q + qstride + c0);                                  \
                const __m512i lsh = _mm512_loadu_si512(q + 2 * qstride + c0);                               \
                const __m512i rsh = _mm512_loadu_si512(q + 3 * qstride + c0);                               \
                const __mmask16 mk = mask16(g->OC - c0);                                                    \
                const __m512i lo = _mm512_set1_epi32(g->lo), hi = _mm512_set1_epi32(g->hi);                 \
                const __m512i zp = _mm512_set1_epi32(g->zp_out);                                            \
                const __m512i corr = _mm512_loadu_si512(q + c0);                                            \
                _Pragma("GCC unroll 16") for (int m = 0; m < MR; m++) if (m0 + m < npix)                    \
                    store16(out + (size_t)m * g->OC + c0, rq512(_mm512_add_epi32(acc[m][n], corr), mult, lsh, rsh, lo, hi, zp), mk); \
            }                                                                                               \
        }                                                                                                   \
    }
VNNI_TILES(vnni_tiles1, 8, 1)
VNNI_TILES(vnni_tiles2, 8, 2)
VNNI_TILES(vnni_tiles3, 8, 3)
VNNI_TILES(vnni_tiles4, 6, 4)

T_AVX512 kdrt_status kdrt_conv2d_s8_avx512(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims,
                                           const int8_t *in, const kdrt_dims *in_dims, const int8_t *filter,
                                           const kdrt_dims *filter_dims, const int32_t *bias,
                                           const kdrt_conv_params *params, const kdrt_channel_quant *quant) {
    kdrt_status st = kdrt_check_conv2d_s8(out, out_dims, in, in_dims, filter, filter_dims, params, quant);
    if (st != KDRT_STATUS_OK) return st;
    if (!kdrt_cpu_avx512vnni()) return KDRT_STATUS_UNSUPPORTED;
    conv_plan cp;
    if (!conv_plan_init(&cp, ctx, out_dims, in_dims, filter_dims, params, 16, 4, 1)) return KDRT_STATUS_NO_SCRATCH;
    const conv_geom g = cp.g;
    uint8_t *base = kdrt_align_scratch(ctx->buf);
    uint8_t *wp = base, *col = base + cp.lay.col;
    int32_t *q = (int32_t *)(void *)(base + cp.lay.q);
    uint8_t *pad = cp.pointwise ? NULL : base + cp.lay.pad;
    const int32_t Hp = cp.Hp, Wp = cp.Wp;
    if (pad) vnni_pad(pad, in, &g, Hp, Wp);
    const int32_t KWCp = (g.KW * g.C + 3) / 4 * 4, Kp = g.KH * KWCp, K4 = Kp / 4, NB = (g.OC + 15) / 16;
    const size_t qstride = (size_t)NB * 16, wstride = (size_t)16 * Kp;
    vnni_pack(wp, q, filter, bias, &g, KWCp);
    quant_pad(q + qstride, q + 2 * qstride, q + 3 * qstride, quant, g.OC, NB * 16);

    pair_quant pq;
    const pair_quant *pairs = NULL;
    if (g.OC <= 8) {
        pair_quant_init(&pq, q, qstride, &g);
        pairs = &pq;
    }
    const int32_t P = g.N * g.OH * g.OW;
    for (int32_t p0 = 0; p0 < P; p0 += PB) {
        const int32_t npix = P - p0 < PB ? P - p0 : PB;
        vnni_im2col(col, Kp, in, pad, Hp, Wp, &g, p0, npix);
        if (npix < PB) memset(col + (size_t)npix * Kp, 0, (size_t)(PB - npix) * Kp); /* rows of partial tiles */
        int8_t *o = out + (size_t)p0 * g.OC;
        int32_t ob = 0;
        for (; ob + 4 <= NB; ob += 4) vnni_tiles4(col, K4, wp + ob * wstride, wstride, q, qstride, &g, o, ob * 16, npix, pairs);
        switch (NB - ob) {
        case 3: vnni_tiles3(col, K4, wp + ob * wstride, wstride, q, qstride, &g, o, ob * 16, npix, pairs); break;
        case 2: vnni_tiles2(col, K4, wp + ob * wstride, wstride, q, qstride, &g, o, ob * 16, npix, pairs); break;
        case 1: vnni_tiles1(col, K4, wp + ob * wstride, wstride, q, qstride, &g, o, ob * 16, npix, pairs); break;
        default: break;
        }
    }
    return KDRT_STATUS_OK;
}

/* Depthwise: 16 channels per step, (x - zp) * w exactly in int16 (|x - zp| <= 255, |w| <= 128, so
 * |product| <= 32640), widened to int32 and summed over the window's taps inside the input. */
T_AVX512 kdrt_status kdrt_depthwise_conv2d_s8_avx512(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims,
                                                     const int8_t *in, const kdrt_dims *in_dims,
                                                     const int8_t *filter, const kdrt_dims *filter_dims,
                                                     const int32_t *bias, const kdrt_conv_params *params,
                                                     const kdrt_channel_quant *quant) {
    (void)ctx;
    kdrt_status st = kdrt_check_depthwise_conv2d_s8(out, out_dims, in, in_dims, filter, filter_dims, params, quant);
    if (st != KDRT_STATUS_OK) return st;
    if (!kdrt_cpu_avx512vnni()) return KDRT_STATUS_UNSUPPORTED;
    conv_geom g;
    kdrt_geom_init(&g, out_dims, in_dims, filter_dims, params);
    const int32_t C = g.C;
    const __m256i zp16 = _mm256_set1_epi16((short)g.zp_in);
    const __m512i lo = _mm512_set1_epi32(g.lo), hi = _mm512_set1_epi32(g.hi), zp = _mm512_set1_epi32(g.zp_out);
    const __m512i zero = _mm512_setzero_si512();
    for (int32_t b = 0; b < g.N; b++)
        for (int32_t oy = 0; oy < g.OH; oy++) {
            const int32_t iy0 = oy * g.sh - g.ph;
            const int32_t ky0 = iy0 < 0 ? -iy0 : 0, ky1 = g.H - iy0 < g.KH ? g.H - iy0 : g.KH;
            for (int32_t ox = 0; ox < g.OW; ox++) {
                const int32_t ix0 = ox * g.sw - g.pw;
                const int32_t kx0 = ix0 < 0 ? -ix0 : 0, kx1 = g.W - ix0 < g.KW ? g.W - ix0 : g.KW;
                int8_t *o = out + ((size_t)(b * g.OH + oy) * g.OW + ox) * C;
                for (int32_t c0 = 0; c0 < C; c0 += 16) {
                    const __mmask16 m = mask16(C - c0);
                    __m512i acc = bias ? _mm512_maskz_loadu_epi32(m, bias + c0) : zero;
                    for (int32_t ky = ky0; ky < ky1; ky++) {
                        const int8_t *x = in + (size_t)(b * g.H + iy0 + ky) * g.W * C + c0;
                        const int8_t *f = filter + (size_t)ky * g.KW * C + c0;
                        for (int32_t kx = kx0; kx < kx1; kx++) {
                            __m256i xv = _mm256_sub_epi16(
                                _mm256_cvtepi8_epi16(_mm_maskz_loadu_epi8(m, x + (size_t)(ix0 + kx) * C)), zp16);
                            __m256i wv = _mm256_cvtepi8_epi16(_mm_maskz_loadu_epi8(m, f + (size_t)kx * C));
                            acc = _mm512_add_epi32(acc, _mm512_cvtepi16_epi32(_mm256_mullo_epi16(xv, wv)));
                        }
                    }
                    __m512i s = _mm512_maskz_loadu_epi32(m, quant->shift + c0);
                    __m512i mult = _mm512_maskz_loadu_epi32(m, quant->multiplier + c0);
                    __m512i lsh = _mm512_max_epi32(s, zero), rsh = _mm512_max_epi32(_mm512_sub_epi32(zero, s), zero);
                    store16(o + c0, rq512(acc, mult, lsh, rsh, lo, hi, zp), m);
                }
            }
        }
    return KDRT_STATUS_OK;
}

/* Fully connected: four weight rows at a time against one input row, 64 features per vpdpbusd,
 * the input flipped to unsigned on the fly. The per-row weight sums (for the correction) come from
 * a second vpdpbusd against ones on the first input row only, while the rows are in registers. */
T_AVX512 INLINE void fc_dot4_vnni(const int WITH_SUM, const int8_t *x, const int8_t *const *w, int32_t F,
                                  int32_t *dot, int32_t *sum) {
    const __m512i k80 = _mm512_set1_epi8((char)0x80), ones = _mm512_set1_epi8(1);
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, s0 = a0, s1 = a0, s2 = a0, s3 = a0;
    int32_t i = 0;
    for (; i + 64 <= F; i += 64) {
        __m512i xv = _mm512_xor_si512(_mm512_loadu_si512(x + i), k80);
        __m512i w0 = _mm512_loadu_si512(w[0] + i), w1 = _mm512_loadu_si512(w[1] + i);
        __m512i w2 = _mm512_loadu_si512(w[2] + i), w3 = _mm512_loadu_si512(w[3] + i);
        a0 = _mm512_dpbusd_epi32(a0, xv, w0), a1 = _mm512_dpbusd_epi32(a1, xv, w1);
        a2 = _mm512_dpbusd_epi32(a2, xv, w2), a3 = _mm512_dpbusd_epi32(a3, xv, w3);
        if (WITH_SUM) {
            s0 = _mm512_dpbusd_epi32(s0, ones, w0), s1 = _mm512_dpbusd_epi32(s1, ones, w1);
            s2 = _mm512_dpbusd_epi32(s2, ones, w2), s3 = _mm512_dpbusd_epi32(s3, ones, w3);
        }
    }
    if (i < F) { /* masked tail: x lanes become 0x80 and w lanes 0, adding nothing */
        const __mmask64 m = mask64(F - i);
        __m512i xv = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, x + i), k80);
        __m512i w0 = _mm512_maskz_loadu_epi8(m, w[0] + i), w1 = _mm512_maskz_loadu_epi8(m, w[1] + i);
        __m512i w2 = _mm512_maskz_loadu_epi8(m, w[2] + i), w3 = _mm512_maskz_loadu_epi8(m, w[3] + i);
        a0 = _mm512_dpbusd_epi32(a0, xv, w0), a1 = _mm512_dpbusd_epi32(a1, xv, w1);
        a2 = _mm512_dpbusd_epi32(a2, xv, w2), a3 = _mm512_dpbusd_epi32(a3, xv, w3);
        if (WITH_SUM) {
            s0 = _mm512_dpbusd_epi32(s0, ones, w0), s1 = _mm512_dpbusd_epi32(s1, ones, w1);
            s2 = _mm512_dpbusd_epi32(s2, ones, w2), s3 = _mm512_dpbusd_epi32(s3, ones, w3);
        }
    }
    dot[0] = _mm512_reduce_add_epi32(a0), dot[1] = _mm512_reduce_add_epi32(a1);
    dot[2] = _mm512_reduce_add_epi32(a2), dot[3] = _mm512_reduce_add_epi32(a3);
    if (WITH_SUM) {
        sum[0] = _mm512_reduce_add_epi32(s0), sum[1] = _mm512_reduce_add_epi32(s1);
        sum[2] = _mm512_reduce_add_epi32(s2), sum[3] = _mm512_reduce_add_epi32(s3);
    }
}

T_AVX512 kdrt_status kdrt_fully_connected_s8_avx512(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims,
                                                    const int8_t *in, const kdrt_dims *in_dims,
                                                    const int8_t *weight, const int32_t *bias,
                                                    const kdrt_fc_params *params, const kdrt_channel_quant *quant) {
    (void)ctx;
    kdrt_status st = kdrt_check_fully_connected_s8(out, out_dims, in, in_dims, weight, params, quant);
    if (st != KDRT_STATUS_OK) return st;
    if (!kdrt_cpu_avx512vnni()) return KDRT_STATUS_UNSUPPORTED;
    const int32_t N = in_dims->n, F = in_dims->h * in_dims->w * in_dims->c, O = out_dims->c;
    const uint32_t zpu = (uint32_t)(params->input_zero_point + 128);
    const __m512i lo = _mm512_set1_epi32(params->activation.min - params->output_zero_point);
    const __m512i hi = _mm512_set1_epi32(params->activation.max - params->output_zero_point);
    const __m512i zp = _mm512_set1_epi32(params->output_zero_point), zero = _mm512_setzero_si512();
    for (int32_t o0 = 0; o0 < O; o0 += 16) {
        const int32_t no = O - o0 < 16 ? O - o0 : 16;
        const __mmask16 m = mask16(no);
        int32_t corr[16], dot[16], sum[16];
        for (int32_t b = 0; b < N; b++) {
            const int8_t *x = in + (size_t)b * F;
            for (int32_t j = 0; j < no; j += 4) {
                const int8_t *w[4];
                for (int32_t t = 0; t < 4; t++) /* rows past O repeat the last one, unused */
                    w[t] = weight + (size_t)(o0 + (j + t < no ? j + t : no - 1)) * F;
                if (b == 0) fc_dot4_vnni(1, x, w, F, dot + j, sum + j);
                else fc_dot4_vnni(0, x, w, F, dot + j, sum + j);
            }
            if (b == 0)
                for (int32_t j = 0; j < 16; j++) {
                    uint32_t c = j < no && bias ? (uint32_t)bias[o0 + j] : 0u;
                    if (j < no) c -= zpu * (uint32_t)sum[j];
                    memcpy(&corr[j], &c, sizeof c);
                }
            __m512i acc = _mm512_add_epi32(_mm512_loadu_si512(corr), _mm512_maskz_loadu_epi32(m, dot));
            __m512i s = _mm512_maskz_loadu_epi32(m, quant->shift + o0);
            __m512i mult = _mm512_maskz_loadu_epi32(m, quant->multiplier + o0);
            __m512i lsh = _mm512_max_epi32(s, zero), rsh = _mm512_max_epi32(_mm512_sub_epi32(zero, s), zero);
            store16(out + (size_t)b * O + o0, rq512(acc, mult, lsh, rsh, lo, hi, zp), m);
        }
    }
    return KDRT_STATUS_OK;
}

/* Elementwise add (kernels_ref.c's arithmetic, 16 lanes): each input rescaled to the common fixed
 * point, (x - zp) * 2^left_shift requantized by its multiplier and (non-positive) shift, the sum
 * requantized to the output with its clamp. rq512 does each requantization. */
T_AVX512 kdrt_status kdrt_add_s8_avx512(int8_t *out, const int8_t *in1, const int8_t *in2, const kdrt_dims *dims,
                                        const kdrt_add_params *p) {
    kdrt_status st = kdrt_check_add_s8(out, in1, in2, dims, p);
    if (st != KDRT_STATUS_OK) return st;
    if (!kdrt_cpu_avx512vnni()) return KDRT_STATUS_UNSUPPORTED;
    const int32_t n = kdrt_dims_count(dims);
    const __m512i zero = _mm512_setzero_si512(), nolo = _mm512_set1_epi32(INT32_MIN), nohi = _mm512_set1_epi32(INT32_MAX);
    const __m512i zp1 = _mm512_set1_epi32(p->input1_zero_point), zp2 = _mm512_set1_epi32(p->input2_zero_point);
    const __m512i ls = _mm512_set1_epi32(p->left_shift);
    const __m512i m1 = _mm512_set1_epi32(p->input1_multiplier), r1 = _mm512_set1_epi32(-p->input1_shift);
    const __m512i m2 = _mm512_set1_epi32(p->input2_multiplier), r2 = _mm512_set1_epi32(-p->input2_shift);
    const int32_t so = p->output_shift;
    const __m512i mo = _mm512_set1_epi32(p->output_multiplier);
    const __m512i lo_sh = _mm512_set1_epi32(so > 0 ? so : 0), ro_sh = _mm512_set1_epi32(so < 0 ? -so : 0);
    const __m512i zpo = _mm512_set1_epi32(p->output_zero_point);
    const __m512i lo = _mm512_set1_epi32(p->activation.min - p->output_zero_point);
    const __m512i hi = _mm512_set1_epi32(p->activation.max - p->output_zero_point);
    for (int32_t i = 0; i < n; i += 16) {
        const __mmask16 m = mask16(n - i);
        __m512i x1 = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, in1 + i));
        __m512i x2 = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, in2 + i));
        x1 = _mm512_sllv_epi32(_mm512_sub_epi32(x1, zp1), ls);
        x2 = _mm512_sllv_epi32(_mm512_sub_epi32(x2, zp2), ls);
        __m512i a = rq512(x1, m1, zero, r1, nolo, nohi, zero), b = rq512(x2, m2, zero, r2, nolo, nohi, zero);
        store16(out + i, rq512(_mm512_add_epi32(a, b), mo, lo_sh, ro_sh, lo, hi, zpo), m);
    }
    return KDRT_STATUS_OK;
}

#else
/* ISO C forbids an empty translation unit: this file compiles to nothing off x86-64. */
typedef int kdrt_kernels_avx512_unused;
#endif
