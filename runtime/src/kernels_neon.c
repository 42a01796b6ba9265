/* The aarch64 NEON kernels of kdrt (`_neon`): conv2d, depthwise conv2d and fully connected.
 * Compiled for the dot-product extension (__ARM_FEATURE_DOTPROD, e.g. -march=armv8.2-a+dotprod),
 * conv and fully connected use SDOT on int8 with a bias - zp_in * sum(weights) correction; otherwise
 * int16 multiply-accumulate of (x - zp_in) * w. Requantization is gemmlowp's NEON sequence
 * (SQSHL, SQRDMULH, rounding shift with the ties-away fixup), bit-exact with kernels_ref.c. */
#if defined(__aarch64__)
#include <arm_neon.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kdrt_kernels.h"
#include "kernels_internal.h"

#define PB KDRT_CONV_PIXEL_BLOCK

/* clamp(requant(acc, mult, shift)) + zp on 4 lanes. SQRDMULH is SRDHM exactly (its one saturating
 * case is INT32_MIN^2); the AND/shift/SQADD fixup turns RSHL's ties-up rounding into ties away
 * from zero, as RDBP. */
static inline int32x4_t rq_neon(int32x4_t acc, int32x4_t mult, int32x4_t shift, int32x4_t lo, int32x4_t hi,
                                int32x4_t zp) {
    const int32x4_t zero = vdupq_n_s32(0);
    int32x4_t lsh = vmaxq_s32(shift, zero), rsh = vminq_s32(shift, zero); /* rsh <= 0: a right shift */
    int32x4_t x = vqrdmulhq_s32(vqshlq_s32(acc, lsh), mult);
    int32x4_t fixup = vshrq_n_s32(vandq_s32(x, rsh), 31);
    x = vrshlq_s32(vqaddq_s32(x, fixup), rsh);
    x = vminq_s32(vmaxq_s32(x, lo), hi);
    return vaddq_s32(x, zp);
}

/* n (<= 4) lanes of v, already in [-128, 127], to bytes */
static inline void store4(int8_t *dst, int32x4_t v, int32_t n) {
    int32_t t[4];
    vst1q_s32(t, v);
    for (int32_t i = 0; i < n && i < 4; i++) dst[i] = (int8_t)t[i];
}

static int32x4_t load4_s32(const int32_t *p, int32_t n) {
    int32_t t[4] = {0, 0, 0, 0};
    for (int32_t i = 0; i < n && i < 4; i++) t[i] = p[i];
    return vld1q_s32(t);
}

typedef kdrt_conv_geom conv_geom;

#if defined(__ARM_FEATURE_DOTPROD)
typedef int8_t col_t; /* patches: raw int8, padded taps hold zp_in (the correction takes zp * w back) */
#define KGROUP 4
#else
typedef int16_t col_t; /* patches: x - zp_in as int16, padded taps 0 */
#define KGROUP 1
#endif

/* Scratch: packed weights (int8 [OC/4][Kp/4][4][4] with SDOT, int16 [OC/4][K][4] without), the
 * correction (or bias) of OC rounded up to 4, one im2col block of PB patches of Kp elements. */
static size_t neon_conv_size(int32_t OC, int32_t K, size_t *off_q, size_t *off_col) {
    size_t ocp = kdrt_round_up((size_t)OC, 4), kp = kdrt_round_up((size_t)K, KGROUP);
    size_t w = kdrt_round_up(ocp * kp * sizeof(col_t), 64), q = kdrt_round_up(ocp * sizeof(int32_t), 64);
    if (off_q) *off_q = w;
    if (off_col) *off_col = w + q;
    return KDRT_SCRATCH_ALIGN + w + q + (size_t)PB * kp * sizeof(col_t);
}

size_t kdrt_conv2d_s8_neon_scratch_size(const kdrt_dims *out_dims, const kdrt_dims *in_dims,
                                        const kdrt_dims *filter_dims) {
    (void)in_dims;
    if (!kdrt_scratch_dims_ok(out_dims) || !kdrt_scratch_dims_ok(filter_dims)) return 0;
    return neon_conv_size(out_dims->c, filter_dims->h * filter_dims->w * filter_dims->c, NULL, NULL);
}

/* n elements of patch data from the input */
static void put_run(col_t *dst, const int8_t *src, int32_t n, int32_t zp) {
#if defined(__ARM_FEATURE_DOTPROD)
    (void)zp;
    memcpy(dst, src, (size_t)n);
#else
    int32_t i = 0;
    const int16x8_t z = vdupq_n_s16((int16_t)zp);
    for (; i + 8 <= n; i += 8) vst1q_s16(dst + i, vsubq_s16(vmovl_s8(vld1_s8(src + i)), z));
    for (; i < n; i++) dst[i] = (int16_t)(src[i] - zp);
#endif
}

/* n elements of padding */
static void put_pad(col_t *dst, int32_t n, int32_t zp) {
#if defined(__ARM_FEATURE_DOTPROD)
    memset(dst, zp, (size_t)n);
#else
    (void)zp;
    memset(dst, 0, (size_t)n * sizeof(col_t));
#endif
}

static void neon_im2col(col_t *col, int32_t Kp, const int8_t *in, const conv_geom *g, int32_t p0, int32_t npix) {
    const int32_t C = g->C, KW = g->KW, KWC = g->KW * g->C, K = g->K, zp = g->zp_in;
    const int32_t plane = g->OH * g->OW;
    int32_t b = p0 / plane, oy = (p0 % plane) / g->OW, ox = p0 % g->OW;
    for (int32_t i = 0; i < npix; i++) {
        col_t *row = col + (size_t)i * Kp;
        const int32_t ix0 = ox * g->sw - g->pw;
        for (int32_t ky = 0; ky < g->KH; ky++) {
            const int32_t iy = oy * g->sh - g->ph + ky;
            col_t *seg = row + (size_t)ky * KWC;
            if (iy < 0 || iy >= g->H) {
                put_pad(seg, KWC, zp);
                continue;
            }
            const int8_t *src = in + ((size_t)(b * g->H + iy) * g->W) * C;
            if (ix0 >= 0 && ix0 + KW <= g->W) {
                put_run(seg, src + (size_t)ix0 * C, KWC, zp);
                continue;
            }
            for (int32_t kx = 0; kx < KW; kx++) {
                const int32_t ix = ix0 + kx;
                if (ix < 0 || ix >= g->W) put_pad(seg + (size_t)kx * C, C, zp);
                else put_run(seg + (size_t)kx * C, src + (size_t)ix * C, C, zp);
            }
        }
        if (Kp > K) memset(row + K, 0, (size_t)(Kp - K) * sizeof(col_t));
        if (++ox == g->OW) {
            ox = 0;
            if (++oy == g->OH) oy = 0, b++;
        }
    }
}

/* 4 pixels x 8 output channels (two blocks of 4; the second may be absent) per register tile. */
static void neon_tiles(const col_t *col, int32_t Kp, const col_t *wp, size_t wstride, const int32_t *corr,
                       const kdrt_channel_quant *quant, const conv_geom *g, int8_t *out, int32_t oc0, int32_t npix,
                       int nr) {
    const int32x4_t lo = vdupq_n_s32(g->lo), hi = vdupq_n_s32(g->hi), zp = vdupq_n_s32(g->zp_out);
    for (int32_t m0 = 0; m0 < npix; m0 += 4) {
        const col_t *c = col + (size_t)m0 * Kp;
        int32x4_t a00 = vdupq_n_s32(0), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
        const col_t *w0 = wp, *w1 = nr > 1 ? wp + wstride : wp;
#if defined(__ARM_FEATURE_DOTPROD)
        for (int32_t k = 0; k < Kp; k += 4) {
            int8x16_t v0 = vld1q_s8(w0 + (size_t)k * 4), v1 = vld1q_s8(w1 + (size_t)k * 4);
            int32_t x0, x1, x2, x3;
            memcpy(&x0, c + k, 4), memcpy(&x1, c + Kp + k, 4), memcpy(&x2, c + 2 * Kp + k, 4),
                memcpy(&x3, c + 3 * Kp + k, 4);
            int8x16_t b0 = vreinterpretq_s8_s32(vdupq_n_s32(x0)), b1 = vreinterpretq_s8_s32(vdupq_n_s32(x1));
            int8x16_t b2 = vreinterpretq_s8_s32(vdupq_n_s32(x2)), b3 = vreinterpretq_s8_s32(vdupq_n_s32(x3));
            a00 = vdotq_s32(a00, v0, b0), a01 = vdotq_s32(a01, v1, b0);
            a10 = vdotq_s32(a10, v0, b1), a11 = vdotq_s32(a11, v1, b1);
            a20 = vdotq_s32(a20, v0, b2), a21 = vdotq_s32(a21, v1, b2);
            a30 = vdotq_s32(a30, v0, b3), a31 = vdotq_s32(a31, v1, b3);
        }
#else
        for (int32_t k = 0; k < Kp; k++) {
            int16x4_t v0 = vld1_s16(w0 + (size_t)k * 4), v1 = vld1_s16(w1 + (size_t)k * 4);
            int16_t x0 = c[k], x1 = c[Kp + k], x2 = c[2 * Kp + k], x3 = c[3 * Kp + k];
            a00 = vmlal_n_s16(a00, v0, x0), a01 = vmlal_n_s16(a01, v1, x0);
            a10 = vmlal_n_s16(a10, v0, x1), a11 = vmlal_n_s16(a11, v1, x1);
            a20 = vmlal_n_s16(a20, v0, x2), a21 = vmlal_n_s16(a21, v1, x2);
            a30 = vmlal_n_s16(a30, v0, x3), a31 = vmlal_n_s16(a31, v1, x3);
        }
#endif
        int32x4_t acc[4][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
        for (int n = 0; n < nr; n++) {
            const int32_t c0 = oc0 + 4 * n, cnt = g->OC - c0 < 4 ? g->OC - c0 : 4;
            const int32x4_t cv = vld1q_s32(corr + c0);
            const int32x4_t mult = load4_s32(quant->multiplier + c0, cnt), sh = load4_s32(quant->shift + c0, cnt);
            for (int32_t m = 0; m < 4 && m0 + m < npix; m++)
                store4(out + (size_t)(m0 + m) * g->OC + c0, rq_neon(vaddq_s32(acc[m][n], cv), mult, sh, lo, hi, zp), cnt);
        }
    }
}

kdrt_status kdrt_conv2d_s8_neon(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims, const int8_t *in,
                                const kdrt_dims *in_dims, const int8_t *filter, const kdrt_dims *filter_dims,
                                const int32_t *bias, const kdrt_conv_params *params, const kdrt_channel_quant *quant) {
    kdrt_status st = kdrt_check_conv2d_s8(out, out_dims, in, in_dims, filter, filter_dims, params, quant);
    if (st != KDRT_STATUS_OK) return st;
    conv_geom g;
    kdrt_geom_init(&g, out_dims, in_dims, filter_dims, params);
    size_t off_q, off_col, need = neon_conv_size(g.OC, g.K, &off_q, &off_col);
    if (!ctx || !ctx->buf || ctx->size < need) return KDRT_STATUS_NO_SCRATCH;
    uint8_t *base = kdrt_align_scratch(ctx->buf);
    col_t *wp = (col_t *)(void *)base, *col = (col_t *)(void *)(base + off_col);
    int32_t *corr = (int32_t *)(void *)(base + off_q);
    const int32_t Kp = (g.K + KGROUP - 1) / KGROUP * KGROUP, NB = (g.OC + 3) / 4;
    const size_t wstride = (size_t)4 * Kp;
    for (int32_t ob = 0; ob < NB; ob++)
        for (int32_t l = 0; l < 4; l++) {
            const int32_t oc = ob * 4 + l;
            const int8_t *s = oc < g.OC ? filter + (size_t)oc * g.K : NULL;
            col_t *d = wp + (size_t)ob * wstride;
            uint32_t sum = 0;
            for (int32_t k = 0; k < Kp; k++) {
                int8_t v = s && k < g.K ? s[k] : 0;
                sum += (uint32_t)(int32_t)v;
#if defined(__ARM_FEATURE_DOTPROD)
                d[(size_t)(k / 4) * 16 + (size_t)l * 4 + k % 4] = v; /* [k/4][lane][k%4] */
#else
                d[(size_t)k * 4 + l] = v; /* [k][lane] */
#endif
            }
            uint32_t c = oc < g.OC && bias ? (uint32_t)bias[oc] : 0u;
#if defined(__ARM_FEATURE_DOTPROD)
            c -= (uint32_t)g.zp_in * sum;
#endif
            memcpy(&corr[oc], &c, sizeof c);
        }
    const int32_t P = g.N * g.OH * g.OW;
    for (int32_t p0 = 0; p0 < P; p0 += PB) {
        const int32_t npix = P - p0 < PB ? P - p0 : PB;
        neon_im2col(col, Kp, in, &g, p0, npix);
        if (npix < PB) memset(col + (size_t)npix * Kp, 0, (size_t)(PB - npix) * Kp * sizeof(col_t));
        for (int32_t ob = 0; ob < NB; ob += 2)
            neon_tiles(col, Kp, wp + (size_t)ob * wstride, wstride, corr, quant, &g, out + (size_t)p0 * g.OC, ob * 4,
                       npix, NB - ob >= 2 ? 2 : 1);
    }
    return KDRT_STATUS_OK;
}

/* Depthwise: 8 channels per step, (x - zp) * w in int16 (exact: |product| <= 32640), widened. */
kdrt_status kdrt_depthwise_conv2d_s8_neon(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims,
                                          const int8_t *in, const kdrt_dims *in_dims, const int8_t *filter,
                                          const kdrt_dims *filter_dims, const int32_t *bias,
                                          const kdrt_conv_params *params, const kdrt_channel_quant *quant) {
    (void)ctx;
    kdrt_status st = kdrt_check_depthwise_conv2d_s8(out, out_dims, in, in_dims, filter, filter_dims, params, quant);
    if (st != KDRT_STATUS_OK) return st;
    conv_geom g;
    kdrt_geom_init(&g, out_dims, in_dims, filter_dims, params);
    const int32_t C = g.C;
    const int16x8_t z = vdupq_n_s16((int16_t)g.zp_in);
    const int32x4_t lo = vdupq_n_s32(g.lo), hi = vdupq_n_s32(g.hi), zp = vdupq_n_s32(g.zp_out);
    for (int32_t b = 0; b < g.N; b++)
        for (int32_t oy = 0; oy < g.OH; oy++) {
            const int32_t iy0 = oy * g.sh - g.ph;
            const int32_t ky0 = iy0 < 0 ? -iy0 : 0, ky1 = g.H - iy0 < g.KH ? g.H - iy0 : g.KH;
            for (int32_t ox = 0; ox < g.OW; ox++) {
                const int32_t ix0 = ox * g.sw - g.pw;
                const int32_t kx0 = ix0 < 0 ? -ix0 : 0, kx1 = g.W - ix0 < g.KW ? g.W - ix0 : g.KW;
                int8_t *o = out + ((size_t)(b * g.OH + oy) * g.OW + ox) * C;
                for (int32_t c0 = 0; c0 < C; c0 += 8) {
                    const int32_t n = C - c0 < 8 ? C - c0 : 8;
                    int32x4_t acc0 = bias ? load4_s32(bias + c0, n) : vdupq_n_s32(0);
                    int32x4_t acc1 = bias && n > 4 ? load4_s32(bias + c0 + 4, n - 4) : vdupq_n_s32(0);
                    for (int32_t ky = ky0; ky < ky1; ky++) {
                        const int8_t *x = in + (size_t)(b * g.H + iy0 + ky) * g.W * C + c0;
                        const int8_t *f = filter + (size_t)ky * g.KW * C + c0;
                        for (int32_t kx = kx0; kx < kx1; kx++) {
                            int8x8_t xv, wv;
                            if (n == 8) {
                                xv = vld1_s8(x + (size_t)(ix0 + kx) * C), wv = vld1_s8(f + (size_t)kx * C);
                            } else {
                                int8_t tx[8] = {0}, tw[8] = {0};
                                memcpy(tx, x + (size_t)(ix0 + kx) * C, (size_t)n);
                                memcpy(tw, f + (size_t)kx * C, (size_t)n);
                                xv = vld1_s8(tx), wv = vld1_s8(tw);
                            }
                            int16x8_t xs = vsubq_s16(vmovl_s8(xv), z), ws = vmovl_s8(wv);
                            acc0 = vmlal_s16(acc0, vget_low_s16(xs), vget_low_s16(ws));
                            acc1 = vmlal_s16(acc1, vget_high_s16(xs), vget_high_s16(ws));
                        }
                    }
                    const int32_t n0 = n < 4 ? n : 4;
                    store4(o + c0, rq_neon(acc0, load4_s32(quant->multiplier + c0, n0), load4_s32(quant->shift + c0, n0), lo, hi, zp), n0);
                    if (n > 4)
                        store4(o + c0 + 4,
                               rq_neon(acc1, load4_s32(quant->multiplier + c0 + 4, n - 4),
                                       load4_s32(quant->shift + c0 + 4, n - 4), lo, hi, zp),
                               n - 4);
                }
            }
        }
    return KDRT_STATUS_OK;
}

/* (x - zp) . w over F features, 16 per step; scalar wrapping tail */
static int32_t fc_dot(const int8_t *x, const int8_t *w, int32_t F, int32_t zp) {
    int32_t i = 0;
    uint32_t t;
#if defined(__ARM_FEATURE_DOTPROD)
    /* sum x * w - zp * sum w, both with SDOT (sum w against ones) */
    int32x4_t a = vdupq_n_s32(0), s = a;
    const int8x16_t ones = vdupq_n_s8(1);
    for (; i + 16 <= F; i += 16) {
        int8x16_t wv = vld1q_s8(w + i);
        a = vdotq_s32(a, vld1q_s8(x + i), wv);
        s = vdotq_s32(s, ones, wv);
    }
    t = (uint32_t)vaddvq_s32(a) - (uint32_t)zp * (uint32_t)vaddvq_s32(s);
#else
    int32x4_t a = vdupq_n_s32(0);
    const int16x8_t z = vdupq_n_s16((int16_t)zp);
    for (; i + 16 <= F; i += 16) {
        int8x16_t xv = vld1q_s8(x + i), wv = vld1q_s8(w + i);
        int16x8_t xl = vsubq_s16(vmovl_s8(vget_low_s8(xv)), z), xh = vsubq_s16(vmovl_high_s8(xv), z);
        int16x8_t wl = vmovl_s8(vget_low_s8(wv)), wh = vmovl_high_s8(wv);
        a = vmlal_s16(a, vget_low_s16(xl), vget_low_s16(wl));
        a = vmlal_high_s16(a, xl, wl);
        a = vmlal_s16(a, vget_low_s16(xh), vget_low_s16(wh));
        a = vmlal_high_s16(a, xh, wh);
    }
    t = (uint32_t)vaddvq_s32(a);
#endif
    for (; i < F; i++) t += (uint32_t)(((int32_t)x[i] - zp) * (int32_t)w[i]);
    int32_t r;
    memcpy(&r, &t, sizeof r);
    return r;
}

kdrt_status kdrt_fully_connected_s8_neon(const kdrt_ctx *ctx, int8_t *out, const kdrt_dims *out_dims,
                                         const int8_t *in, const kdrt_dims *in_dims, const int8_t *weight,
                                         const int32_t *bias, const kdrt_fc_params *params,
                                         const kdrt_channel_quant *quant) {
    (void)ctx;
    kdrt_status st = kdrt_check_fully_connected_s8(out, out_dims, in, in_dims, weight, params, quant);
    if (st != KDRT_STATUS_OK) return st;
    const int32_t N = in_dims->n, F = in_dims->h * in_dims->w * in_dims->c, O = out_dims->c;
    const int32x4_t lo = vdupq_n_s32(params->activation.min - params->output_zero_point);
    const int32x4_t hi = vdupq_n_s32(params->activation.max - params->output_zero_point);
    const int32x4_t zp = vdupq_n_s32(params->output_zero_point);
    for (int32_t b = 0; b < N; b++)
        for (int32_t o0 = 0; o0 < O; o0 += 4) {
            const int32_t n = O - o0 < 4 ? O - o0 : 4;
            uint32_t acc[4] = {0, 0, 0, 0};
            for (int32_t j = 0; j < n; j++)
                acc[j] = (bias ? (uint32_t)bias[o0 + j] : 0u) +
                         (uint32_t)fc_dot(in + (size_t)b * F, weight + (size_t)(o0 + j) * F, F, params->input_zero_point);
            int32_t a[4];
            memcpy(a, acc, sizeof a);
            store4(out + (size_t)b * O + o0,
                   rq_neon(vld1q_s32(a), load4_s32(quant->multiplier + o0, n), load4_s32(quant->shift + o0, n), lo, hi, zp),
                   n);
        }
    return KDRT_STATUS_OK;
}

#else
/* ISO C forbids an empty translation unit: this file compiles to nothing off aarch64. */
typedef int kdrt_kernels_neon_unused;
#endif
