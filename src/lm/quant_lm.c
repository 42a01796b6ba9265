/* Quantized weights of the language models for inference: blocks of 32 along the input dimension
 * with one fp32 scale each, int8 (q8, as ggml's Q8_0) or 4-bit (q4). A type-traits table holds the
 * conversions and the dot kernel of each type, so nothing else switches on the type. */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "distill/lm.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define KD_LM_AVX2 1
#endif

#define QK 32

typedef struct block_q8 {
    float d;           /* scale: x ~ d * q */
    int8_t q[QK];
} block_q8;
static_assert(sizeof(block_q8) == 4 + QK, "block_q8 must be packed: 36 bytes");

typedef struct block_q4 {
    float d;
    uint8_t q[QK / 2]; /* element i in the low nibble of q[i], element i + 16 in the high one, stored + 8 */
} block_q4;
static_assert(sizeof(block_q4) == 4 + QK / 2, "block_q4 must be packed: 20 bytes");

static void q8_from_float(void *dst, const float *x, size_t n) {
    block_q8 *b = dst;
    for (size_t i = 0; i < n / QK; i++, x += QK) {
        float amax = 0.f;
        for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.f, id = d > 0 ? 1.f / d : 0.f;
        b[i].d = d;
        for (int j = 0; j < QK; j++) b[i].q[j] = (int8_t)lrintf(x[j] * id);
    }
}

static void q8_to_float(float *y, const void *src, size_t n) {
    const block_q8 *b = src;
    for (size_t i = 0; i < n / QK; i++, y += QK)
        for (int j = 0; j < QK; j++) y[j] = b[i].d * b[i].q[j];
}

/* The dot kernels keep 8 partial sums (one per lane of a 256-bit vector) so the compiler can
 * vectorize without reassociating floats itself; the final sum runs in a fixed order. */
#ifdef KD_LM_AVX2
static float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 8 int8 (or 8 codes already widened) times 8 floats, accumulated */
static inline __m256 fma_i8(__m128i q8x8, const float *x, __m256 acc) {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8x8)), _mm256_loadu_ps(x), acc);
}
#endif

static float q8_dot_ref(const void *w, const float *x, int n);
static float q8_dot(const void *w, const float *x, int n) {
#ifdef KD_LM_AVX2 /* ~10x the scalar loop: generation is bound by these dots */
    const block_q8 *b = w;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / QK; i++, x += QK) {
        __m256 t = _mm256_setzero_ps();
        for (int j = 0; j < QK; j += 8) t = fma_i8(_mm_loadl_epi64((const __m128i *)(b[i].q + j)), x + j, t);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(b[i].d), t, acc);
    }
    return hsum8(acc);
#else
    return q8_dot_ref(w, x, n);
#endif
}

static float q8_dot_ref(const void *w, const float *x, int n) {
    const block_q8 *b = w;
    float acc[8] = {0};
    for (int i = 0; i < n / QK; i++, x += QK) {
        float t[8] = {0};
        for (int j = 0; j < QK; j += 8)
            for (int k = 0; k < 8; k++) t[k] += (float)b[i].q[j + k] * x[j + k];
        for (int k = 0; k < 8; k++) acc[k] += b[i].d * t[k];
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static int q4_code(float x, float id) {
    int q = (int)lrintf(x * id);
    return q < -8 ? -8 : q > 7 ? 7 : q;
}

/* The scale: of a few candidates between amax/8 and amax/7, the one with the least squared error
 * (amax/7 never clips but wastes the -8 code; smaller scales clip the largest value a little). */
static void q4_from_float(void *dst, const float *x, size_t n) {
    block_q4 *b = dst;
    for (size_t i = 0; i < n / QK; i++, x += QK) {
        float amax = 0.f;
        for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        float best_d = amax / 7.f, best_e = INFINITY;
        for (int k = 0; k <= 8 && amax > 0; k++) {
            float d = amax / (7.f + k / 8.f), id = 1.f / d, e = 0.f;
            for (int j = 0; j < QK; j++) {
                float r = x[j] - d * q4_code(x[j], id);
                e += r * r;
            }
            if (e < best_e) {
                best_e = e;
                best_d = d;
            }
        }
        float id = best_d > 0 ? 1.f / best_d : 0.f;
        b[i].d = best_d;
        for (int j = 0; j < QK / 2; j++)
            b[i].q[j] = (uint8_t)((q4_code(x[j], id) + 8) | (q4_code(x[j + QK / 2], id) + 8) << 4);
    }
}

static void q4_to_float(float *y, const void *src, size_t n) {
    const block_q4 *b = src;
    for (size_t i = 0; i < n / QK; i++, y += QK)
        for (int j = 0; j < QK / 2; j++) {
            y[j] = b[i].d * ((b[i].q[j] & 15) - 8);
            y[j + QK / 2] = b[i].d * ((b[i].q[j] >> 4) - 8);
        }
}

static float q4_dot_ref(const void *w, const float *x, int n);
static float q4_dot(const void *w, const float *x, int n) {
#ifdef KD_LM_AVX2
    const block_q4 *b = w;
    const __m128i m4 = _mm_set1_epi8(15), k8 = _mm_set1_epi8(8);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / QK; i++, x += QK) {
        __m128i v = _mm_loadu_si128((const __m128i *)b[i].q);
        __m128i lo = _mm_sub_epi8(_mm_and_si128(v, m4), k8);                    /* elements 0..15 */
        __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(v, 4), m4), k8); /* elements 16..31 */
        __m256 t = fma_i8(lo, x, _mm256_setzero_ps());
        t = fma_i8(_mm_srli_si128(lo, 8), x + 8, t);
        t = fma_i8(hi, x + 16, t);
        t = fma_i8(_mm_srli_si128(hi, 8), x + 24, t);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(b[i].d), t, acc);
    }
    return hsum8(acc);
#else
    return q4_dot_ref(w, x, n);
#endif
}

static float q4_dot_ref(const void *w, const float *x, int n) {
    const block_q4 *b = w;
    float acc[8] = {0};
    for (int i = 0; i < n / QK; i++, x += QK) {
        float t[8] = {0};
        for (int j = 0; j < QK / 2; j += 8)
            for (int k = 0; k < 8; k++)
                t[k] += (float)((b[i].q[j + k] & 15) - 8) * x[j + k] + (float)((b[i].q[j + k] >> 4) - 8) * x[j + k + QK / 2];
        for (int k = 0; k < 8; k++) acc[k] += b[i].d * t[k];
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static void f32_from_float(void *dst, const float *x, size_t n) { memcpy(dst, x, n * sizeof(float)); }
static void f32_to_float(float *y, const void *src, size_t n) { memcpy(y, src, n * sizeof(float)); }
static float f32_dot(const void *w, const float *x, int n) {
    const float *a = w;
    float s = 0.f;
    for (int i = 0; i < n; i++) s += a[i] * x[i];
    return s;
}

static const kd_lm_qtraits traits[] = {
    [KD_LM_F32] = {"f32", 1, sizeof(float), f32_from_float, f32_to_float, f32_dot, f32_dot},
    [KD_LM_Q8] = {"q8", QK, sizeof(block_q8), q8_from_float, q8_to_float, q8_dot, q8_dot_ref},
    [KD_LM_Q4] = {"q4", QK, sizeof(block_q4), q4_from_float, q4_to_float, q4_dot, q4_dot_ref},
};

const kd_lm_qtraits *kd_lm_qtype_traits(kd_lm_qtype t) { return &traits[t]; }

kd_status kd_lm_qtype_parse(kd_lm_qtype *t, const char *s, kd_error *err) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, traits[i].name)) {
            *t = (kd_lm_qtype)i;
            return KD_STATUS_OK;
        }
    return kd_error_set(err, KD_STATUS_BAD_ARG, "quantization '%s': expected f32, q8 or q4", s);
}

kd_status kd_lm_fake_quantize(kd_lm *m, kd_lm_qtype t, kd_error *err) {
    const kd_lm_qtraits *q = &traits[t];
    if (t == KD_LM_F32) return KD_STATUS_OK;
    if (m->cfg.dim % q->block)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "%s weights need dim a multiple of %d (got %d)", q->name, q->block,
                            m->cfg.dim);
    size_t max_n = 0;
    for (int i = 0; i < m->n_tensors; i++) max_n = m->tensors[i].n > max_n ? m->tensors[i].n : max_n;
    void *buf = malloc(max_n / (size_t)q->block * q->bytes);
    if (!buf) return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    for (int i = 0; i < m->n_tensors; i++) {
        const kd_lm_tensor *tn = &m->tensors[i];
        if (tn->ndim != 2 || !strcmp(tn->name, "wpe")) continue; /* matrices that multiply: wte, qkv, proj, fc */
        q->from_float(buf, m->params + tn->off, tn->n);
        q->to_float(m->params + tn->off, buf, tn->n);
    }
    free(buf);
    return KD_STATUS_OK;
}
