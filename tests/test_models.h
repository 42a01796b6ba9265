/* Shared by the quantization and model-surgery tests (test_quantize.c, test_kdm.c, test_compress.c):
 * a synthetic image set and batch-norm statistics far from the identity, so that folding and
 * calibration have work to do. */
#ifndef KD_TEST_MODELS_H
#define KD_TEST_MODELS_H
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "distill/data.h"
#include "distill/model.h"
#include "distill/rng.h"

/* A synthetic data set: n images of c x h x w with smooth blobs (so activations are not white
 * noise), labels in [0, classes). */
static inline void make_dataset(kd_dataset *ds, int n, int c, int h, int w, int classes, uint64_t seed) {
    memset(ds, 0, sizeof *ds);
    ds->n = n; ds->c = c; ds->h = h; ds->w = w; ds->n_classes = classes;
    ds->pixels = malloc((size_t)n * c * h * w);
    ds->labels = malloc((size_t)n * sizeof(int32_t));
    kd_rng r;
    kd_rng_seed(&r, seed, 3);
    for (int i = 0; i < n; i++) {
        float cx = kd_rng_uniform(&r) * w, cy = kd_rng_uniform(&r) * h, rad = 2.f + kd_rng_uniform(&r) * h / 3.f;
        for (int k = 0; k < c * h * w; k++) {
            int x = k % w, y = (k / w) % h;
            float d = sqrtf((x - cx) * (x - cx) + (y - cy) * (y - cy));
            float v = d < rad ? 200.f : 20.f;
            v += 40.f * kd_rng_uniform(&r);
            ds->pixels[(size_t)i * c * h * w + k] = (uint8_t)(v > 255.f ? 255.f : v);
        }
        ds->labels[i] = (int32_t)kd_rng_below(&r, (uint32_t)classes);
    }
    ds->mean = 0.3f;
    ds->std = 0.35f;
}

/* How perturb_bn_with spreads each channel's batch-norm state, u uniform in [0, 1) drawn in this
 * order: gamma = (flip_gamma && c % 5 == 3 ? -1 : 1) * (gamma_lo + gamma_span u),
 * beta = beta_scale (u - beta_center), running mean = mean_scale (u - 0.5), running variance =
 * var_lo + var_span u. */
typedef struct bn_spread {
    float gamma_lo, gamma_span, beta_scale, beta_center, mean_scale, var_lo, var_span;
    int flip_gamma;
} bn_spread;

static inline void perturb_bn_with(kd_model *m, uint64_t seed, const bn_spread *s) {
    kd_rng r;
    kd_rng_seed(&r, seed, 5);
    for (int i = 0; i < m->n_layers; i++) {
        const kd_layer *L = &m->layers[i];
        if (L->type != KD_LAYER_BATCHNORM) continue;
        for (int c = 0; c < L->c; c++) {
            float u = kd_rng_uniform(&r);
            m->params[L->w_off + c] = (s->flip_gamma && c % 5 == 3 ? -1.f : 1.f) * (s->gamma_lo + s->gamma_span * u);
            m->params[L->b_off + c] = s->beta_scale * (kd_rng_uniform(&r) - s->beta_center);
            m->buffers[L->buf_off + c] = s->mean_scale * (kd_rng_uniform(&r) - 0.5f);
            m->buffers[L->buf_off + L->c + c] = s->var_lo + s->var_span * kd_rng_uniform(&r);
        }
    }
}

/* The quantization tests' statistics: positive gamma in [0.5, 1.5), moderate shifts. */
static inline void perturb_bn(kd_model *m, uint64_t seed) {
    const bn_spread s = {0.5f, 1.f, 0.4f, 0.3f, 0.2f, 0.2f, 1.f, 0};
    perturb_bn_with(m, seed, &s);
}

#endif
