/* Shared by the quantization tests (test_quantize.c, test_kdm.c): a synthetic image set and
 * batch-norm statistics far from the identity, so that folding and calibration have work to do. */
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
static void make_dataset(kd_dataset *ds, int n, int c, int h, int w, int classes, uint64_t seed) {
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

static void perturb_bn(kd_model *m, uint64_t seed) {
    kd_rng r;
    kd_rng_seed(&r, seed, 5);
    for (int i = 0; i < m->n_layers; i++) {
        const kd_layer *L = &m->layers[i];
        if (L->type != KD_LAYER_BATCHNORM) continue;
        for (int c = 0; c < L->c; c++) {
            m->params[L->w_off + c] = 0.5f + kd_rng_uniform(&r);
            m->params[L->b_off + c] = 0.4f * (kd_rng_uniform(&r) - 0.3f);
            m->buffers[L->buf_off + c] = 0.2f * (kd_rng_uniform(&r) - 0.5f);
            m->buffers[L->buf_off + L->c + c] = 0.2f + kd_rng_uniform(&r);
        }
    }
}

#endif
