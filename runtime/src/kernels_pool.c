/* Max and average pooling behind kdrt_max_pool2d_s8 / kdrt_avg_pool2d_s8: each window's bounds are
 * clipped once per output pixel and the innermost loop runs over the contiguous channels of NHWC,
 * instead of the `_ref` kernels' per-element bounds tests; AVX-512BW when the CPU has it (checked
 * at run time, as kernels_dispatch.c), else portable C (which compilers vectorise for long channel
 * runs). Same results bit for bit (kdrt_kernels.h); no scratch: the average keeps its int32 sums
 * for up to POOL_CHUNK channels on the stack. */
#include <stddef.h>
#include <stdint.h>

#include "kdrt_kernels.h"
#include "kernels_internal.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define POOL_CHUNK 64

static int32_t clip(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The input rows (or columns) [*a, *b) of output position o's window, clipped to [0, n). */
static void window(int32_t o, int32_t stride, int32_t pad, int32_t k, int32_t n, int32_t *a, int32_t *b) {
    *a = clip(o * stride - pad, 0, n);
    *b = clip(o * stride - pad + k, 0, n);
}

static kdrt_status pool(int8_t *out, const kdrt_dims *out_dims, const int8_t *in, const kdrt_dims *in_dims,
                        const kdrt_pool_params *p, int average) {
    kdrt_status st = kdrt_check_pool2d_s8(out, out_dims, in, in_dims, p);
    if (st != KDRT_STATUS_OK) return st;
    const int32_t H = in_dims->h, W = in_dims->w, C = in_dims->c, OH = out_dims->h, OW = out_dims->w;
    const int32_t lo = p->activation.min, hi = p->activation.max;
    for (int32_t b = 0; b < in_dims->n; b++)
        for (int32_t oy = 0; oy < OH; oy++) {
            int32_t y0, y1, x0, x1;
            window(oy, p->stride.h, p->padding.h, p->filter.h, H, &y0, &y1);
            for (int32_t ox = 0; ox < OW; ox++) {
                window(ox, p->stride.w, p->padding.w, p->filter.w, W, &x0, &x1);
                int8_t *o = out + (((size_t)b * OH + oy) * OW + ox) * C;
                if (!average) {
                    int8_t m[POOL_CHUNK];
                    for (int32_t c0 = 0; c0 < C; c0 += POOL_CHUNK) {
                        const int32_t nc = C - c0 < POOL_CHUNK ? C - c0 : POOL_CHUNK;
                        for (int32_t c = 0; c < nc; c++) m[c] = INT8_MIN;
                        for (int32_t iy = y0; iy < y1; iy++)
                            for (int32_t ix = x0; ix < x1; ix++) {
                                const int8_t *q = in + (((size_t)b * H + iy) * W + ix) * C + c0;
                                for (int32_t c = 0; c < nc; c++) m[c] = q[c] > m[c] ? q[c] : m[c];
                            }
                        for (int32_t c = 0; c < nc; c++) o[c0 + c] = (int8_t)clip(m[c], lo, hi);
                    }
                } else {
                    const int32_t count = (y1 - y0) * (x1 - x0); /* >= 1: windows overlap the input */
                    int32_t s[POOL_CHUNK];
                    for (int32_t c0 = 0; c0 < C; c0 += POOL_CHUNK) {
                        const int32_t nc = C - c0 < POOL_CHUNK ? C - c0 : POOL_CHUNK;
                        for (int32_t c = 0; c < nc; c++) s[c] = 0;
                        for (int32_t iy = y0; iy < y1; iy++)
                            for (int32_t ix = x0; ix < x1; ix++) {
                                const int8_t *q = in + (((size_t)b * H + iy) * W + ix) * C + c0;
                                for (int32_t c = 0; c < nc; c++) s[c] += q[c];
                            }
                        for (int32_t c = 0; c < nc; c++) {
                            o[c0 + c] = (int8_t)clip(kdrt_rounded_mean(s[c], count), lo, hi);
                        }
                    }
                }
            }
        }
    return KDRT_STATUS_OK;
}

#if defined(__x86_64__)
/* AVX-512BW+VL: one output pixel's channels 64 (max) or 16 (average) at a time with masked loads, so
 * small channel counts (8, 16) cost one vector per window tap. */
__attribute__((target("avx512f,avx512bw,avx512vl"))) static void pool_avx512(int8_t *out, const kdrt_dims *out_dims,
                                                                    const int8_t *in, const kdrt_dims *in_dims,
                                                                    const kdrt_pool_params *p, int average) {
    const int32_t H = in_dims->h, W = in_dims->w, C = in_dims->c, OH = out_dims->h, OW = out_dims->w;
    const __m512i lo = _mm512_set1_epi8((char)p->activation.min), hi = _mm512_set1_epi8((char)p->activation.max);
    for (int32_t b = 0; b < in_dims->n; b++)
        for (int32_t oy = 0; oy < OH; oy++) {
            int32_t y0, y1, x0, x1;
            window(oy, p->stride.h, p->padding.h, p->filter.h, H, &y0, &y1);
            for (int32_t ox = 0; ox < OW; ox++) {
                window(ox, p->stride.w, p->padding.w, p->filter.w, W, &x0, &x1);
                int8_t *o = out + (((size_t)b * OH + oy) * OW + ox) * C;
                const int8_t *row = in + ((size_t)b * H * W) * C;
                if (!average) {
                    for (int32_t c0 = 0; c0 < C; c0 += 64) {
                        const int32_t nc = C - c0 < 64 ? C - c0 : 64;
                        const __mmask64 k = nc == 64 ? ~(__mmask64)0 : (((__mmask64)1 << nc) - 1);
                        __m512i m = _mm512_set1_epi8((char)INT8_MIN);
                        for (int32_t iy = y0; iy < y1; iy++)
                            for (int32_t ix = x0; ix < x1; ix++)
                                m = _mm512_max_epi8(m, _mm512_maskz_loadu_epi8(k, row + ((size_t)iy * W + ix) * C + c0));
                        m = _mm512_min_epi8(_mm512_max_epi8(m, lo), hi);
                        _mm512_mask_storeu_epi8(o + c0, k, m);
                    }
                } else {
                    const int32_t count = (y1 - y0) * (x1 - x0);
                    for (int32_t c0 = 0; c0 < C; c0 += 16) {
                        const int32_t nc = C - c0 < 16 ? C - c0 : 16;
                        const __mmask16 k = (__mmask16)(nc == 16 ? 0xFFFF : ((1u << nc) - 1));
                        __m512i acc = _mm512_setzero_si512();
                        for (int32_t iy = y0; iy < y1; iy++)
                            for (int32_t ix = x0; ix < x1; ix++)
                                acc = _mm512_add_epi32(acc, _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(
                                                                k, row + ((size_t)iy * W + ix) * C + c0)));
                        int32_t s[16];
                        _mm512_storeu_si512(s, acc);
                        for (int32_t c = 0; c < nc; c++) {
                            o[c0 + c] = (int8_t)clip(kdrt_rounded_mean(s[c], count), p->activation.min, p->activation.max);
                        }
                    }
                }
            }
        }
}
#endif

static kdrt_status pool_dispatch(int8_t *out, const kdrt_dims *out_dims, const int8_t *in, const kdrt_dims *in_dims,
                                 const kdrt_pool_params *p, int average) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
        kdrt_status st = kdrt_check_pool2d_s8(out, out_dims, in, in_dims, p);
        if (st == KDRT_STATUS_OK) pool_avx512(out, out_dims, in, in_dims, p, average);
        return st;
    }
#endif
    return pool(out, out_dims, in, in_dims, p, average);
}

kdrt_status kdrt_max_pool2d_s8(int8_t *out, const kdrt_dims *out_dims, const int8_t *in, const kdrt_dims *in_dims,
                               const kdrt_pool_params *params) {
    return pool_dispatch(out, out_dims, in, in_dims, params, 0);
}

kdrt_status kdrt_avg_pool2d_s8(int8_t *out, const kdrt_dims *out_dims, const int8_t *in, const kdrt_dims *in_dims,
                               const kdrt_pool_params *params) {
    return pool_dispatch(out, out_dims, in, in_dims, params, 1);
}
