/* Private to runtime/src/kernels_avx512.c and kernels_avx2.c (x86-64 only): what the two instruction
 * sets' kernels share: target attributes, CPU feature tests (also used by kernels_dispatch.c), the
 * conv scratch layout and set-up, per-channel requantization parameters, and im2col helpers. */
#ifndef KDRT_KERNELS_X86_H
#define KDRT_KERNELS_X86_H
#if defined(__x86_64__)
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kdrt_kernels.h"
#include "kernels_internal.h"

#define T_AVX2 __attribute__((target("avx2")))
#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define INLINE __attribute__((always_inline)) static inline
#define PB KDRT_CONV_PIXEL_BLOCK

/* __builtin_cpu_supports reads libgcc's CPU model (filled by its constructor, OS support of the
 * AVX-512 register state included): no libc, no mutable state of ours. */
static inline int kdrt_cpu_avx512vnni(void) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}
static inline int kdrt_cpu_avx2(void) { return __builtin_cpu_supports("avx2"); }

static inline int32_t load_s32(const void *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

typedef kdrt_conv_geom conv_geom; /* kernels_internal.h's, shared with NEON; the short name reads better here */

/* Per-channel requantization parameters, padded to whole vectors: the multiplier, the left shift
 * max(shift, 0) and the right shift max(-shift, 0) (one of the two is 0). */
static inline void quant_pad(int32_t *mult, int32_t *lsh, int32_t *rsh, const kdrt_channel_quant *q, int32_t ch,
                             int32_t padded) {
    for (int32_t c = 0; c < padded; c++) {
        int32_t s = c < ch ? q->shift[c] : 0;
        mult[c] = c < ch ? q->multiplier[c] : 0;
        lsh[c] = s > 0 ? s : 0;
        rsh[c] = s < 0 ? -s : 0;
    }
}

/* The pixel (b, oy, ox) that follows in NHWC order. */
static inline void next_pixel(const conv_geom *g, int32_t *b, int32_t *oy, int32_t *ox) {
    if (++*ox == g->OW) {
        *ox = 0;
        if (++*oy == g->OH) {
            *oy = 0;
            ++*b;
        }
    }
}

/* 1x1 convs whose output pixel p reads input pixel p (stride 1, or a single row/column): their
 * patches are the input rows themselves, no padded copy needed. */
static inline int conv_is_pointwise(const kdrt_dims *od, const kdrt_dims *id, const kdrt_dims *fd) {
    return fd->h == 1 && fd->w == 1 && od->h == id->h && od->w == id->w;
}

/* Scratch layout of the optimised convs (elements of `es` bytes: 1 for VNNI, 2 for AVX2):
 *   packed weights  [OC / lanes][Kp / kgroup][lanes][kgroup], Kp = KH * KWCp: each filter row's
 *                   KW * C taps padded to KWCp, a multiple of kgroup, with zero weights (so that
 *                   every group of a patch is written by one store: no store-forwarding stalls)
 *   q               five int32 arrays of OC rounded up to lanes: correction (or bias),
 *                   multiplier, left shift, right shift, spare
 *   col             one block of PB patches of Kp elements (+ 64 bytes of overrun slack)
 *   pad             the input with its padding as one image per batch element, ready-converted
 *                   ((H + 2 (KH - 1)) x (W + 2 (KW - 1)) x C covers every legal padding and
 *                   stride), + 64 bytes of slack; none for pointwise convs
 * Every part starts on a 64-byte boundary of the aligned base. */
typedef struct conv_layout {
    size_t q, col, pad, total;
} conv_layout;

static inline conv_layout conv_layout_of(const kdrt_dims *od, const kdrt_dims *id, const kdrt_dims *fd, size_t lanes,
                                         size_t kgroup, size_t es) {
    conv_layout L;
    size_t ocp = kdrt_round_up((size_t)od->c, lanes), kp = (size_t)fd->h * kdrt_round_up((size_t)fd->w * fd->c, kgroup);
    size_t w = kdrt_round_up(ocp * kp * es, 64), q = kdrt_round_up(5 * ocp * sizeof(int32_t), 64);
    size_t col = kdrt_round_up((size_t)PB * kp * es + 64, 64);
    size_t pad = conv_is_pointwise(od, id, fd)
                     ? 0
                     : (size_t)id->n * ((size_t)id->h + 2 * ((size_t)fd->h - 1)) *
                               ((size_t)id->w + 2 * ((size_t)fd->w - 1)) * (size_t)id->c * es + 64;
    L.q = w;
    L.col = w + q;
    L.pad = w + q + col;
    L.total = KDRT_SCRATCH_ALIGN + w + q + col + pad;
    return L;
}

/* n > 0 bytes from src to dst in 8/16/32/64-byte moves that may read and write up to 63 bytes past
 * the end (the scratch layouts leave that slack; later writes overwrite the excess). */
T_AVX2 INLINE void copy_over(uint8_t *dst, const uint8_t *src, int32_t n) {
    if (n <= 8) {
        uint64_t v;
        memcpy(&v, src, 8);
        memcpy(dst, &v, 8);
    } else if (n <= 16) {
        _mm_storeu_si128((__m128i *)(void *)dst, _mm_loadu_si128((const __m128i *)(const void *)src));
    } else {
        for (int32_t i = 0; i < n; i += 32)
            _mm256_storeu_si256((__m256i *)(void *)(dst + i), _mm256_loadu_si256((const __m256i *)(const void *)(src + i)));
    }
}

/* The set-up every optimised conv2d does after its argument and CPU checks: the geometry, the
 * scratch layout for (lanes, kgroup, element size es) and the padded input's size Hp x Wp (pointwise
 * convs read the input itself). 0 when the scratch is missing or short; else the parts of the layout
 * are offsets from kdrt_align_scratch(ctx->buf), which the caller takes itself (so that the compiler
 * sees the alignment of the packed weights in the tile loops: aligned loads, as before the split). */
typedef struct conv_plan {
    conv_geom g;
    conv_layout lay;
    int pointwise;
    int32_t Hp, Wp;
} conv_plan;

static inline int conv_plan_init(conv_plan *cp, const kdrt_ctx *ctx, const kdrt_dims *od, const kdrt_dims *id,
                                 const kdrt_dims *fd, const kdrt_conv_params *p, size_t lanes, size_t kgroup,
                                 size_t es) {
    kdrt_geom_init(&cp->g, od, id, fd, p);
    cp->lay = conv_layout_of(od, id, fd, lanes, kgroup, es);
    if (!ctx || !ctx->buf || ctx->size < cp->lay.total) return 0;
    cp->pointwise = conv_is_pointwise(od, id, fd);
    cp->Hp = (cp->g.OH - 1) * cp->g.sh + cp->g.KH, cp->Wp = (cp->g.OW - 1) * cp->g.sw + cp->g.KW;
    return 1;
}

/* The conv scratch size for (lanes, kgroup, es); 0 for NULL or non-positive dims. */
static inline size_t conv_scratch_size(const kdrt_dims *od, const kdrt_dims *id, const kdrt_dims *fd, size_t lanes,
                                       size_t kgroup, size_t es) {
    if (!kdrt_scratch_dims_ok(od) || !kdrt_scratch_dims_ok(id) || !kdrt_scratch_dims_ok(fd)) return 0;
    return conv_layout_of(od, id, fd, lanes, kgroup, es).total;
}

#endif
#endif
