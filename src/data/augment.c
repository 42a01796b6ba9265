/* Augmentations that make new inputs out of two samples: mixup (Zhang et al. 2018) and CutMix
 * (Yun et al. 2019). They work on the batch's stored samples (uint8 pixels or float values), after
 * the shift and flip of kd_batch_pixels, so every model of a training step (the student and an
 * online teacher, each with its own normalisation) sees exactly the same mixed view: what Beyer et
 * al. 2022 ("a good teacher is patient and consistent") call function matching.
 *
 * Partners come from the same batch, shifted by one random offset, as the reference
 * implementations pair a batch with its own permutation; lam is drawn per sample (timm's "elem"
 * mode), so one unlucky draw does not decide a whole batch. */
#include <math.h>
#include <string.h>

#include "distill/data.h"

/* A CutMix box keeping a share lam of the image: sides sqrt(1 - lam) of the image's, centred at a
 * uniform point and clipped to the image; returns the share really kept after clipping. */
static float cut_box(kd_rng *rng, int H, int W, float lam, int *y0, int *y1, int *x0, int *x1) {
    float cut = sqrtf(1.f - lam);
    int ch = (int)(H * cut), cw = (int)(W * cut);
    int cy = (int)kd_rng_below(rng, (uint32_t)H), cx = (int)kd_rng_below(rng, (uint32_t)W);
    *y0 = cy - ch / 2 < 0 ? 0 : cy - ch / 2;
    *y1 = cy + ch / 2 > H ? H : cy + ch / 2;
    *x0 = cx - cw / 2 < 0 ? 0 : cx - cw / 2;
    *x1 = cx + cw / 2 > W ? W : cx + cw / 2;
    return 1.f - (float)((*y1 - *y0) * (*x1 - *x0)) / (float)(H * W);
}

void kd_batch_mix(uint8_t *px, int32_t *y2, float *lam, uint8_t *scratch, const int32_t *y, const kd_dataset *ds,
                  int B, const kd_augment *aug, kd_rng *rng) {
    for (int b = 0; b < B; b++) {
        y2[b] = y[b];
        lam[b] = 1.f;
    }
    if (!kd_augment_mixes(aug) || !rng || B < 2) return;
    size_t sb = kd_dataset_sample_bytes(ds), hw = (size_t)ds->h * ds->w, n = hw * (size_t)ds->c;
    int f32 = ds->type == KD_DATA_F32, images = ds->h * ds->w > 1;
    float prob = aug->mix_prob > 0.f ? aug->mix_prob : 1.f;
    memcpy(scratch, px, sb * (size_t)B); /* partners are mixed from their unmixed samples */
    int r = 1 + (int)kd_rng_below(rng, (uint32_t)(B - 1));
    for (int b = 0; b < B; b++) {
        int p = (b + r) % B;
        if (prob < 1.f && kd_rng_uniform(rng) >= prob) continue;
        int cutmix = aug->cutmix > 0.f && images;
        if (cutmix && aug->mixup > 0.f) cutmix = (int)(kd_rng_u32(rng) >> 31);
        float a = cutmix ? aug->cutmix : aug->mixup;
        if (!(a > 0.f)) continue; /* CutMix alone on a table (kd_train refuses it; keep it harmless) */
        float l = kd_rng_beta(rng, a, a);
        uint8_t *o = px + sb * (size_t)b;
        const uint8_t *q = scratch + sb * (size_t)p;
        y2[b] = y[p];
        if (cutmix) {
            int y0, y1, x0, x1;
            l = cut_box(rng, ds->h, ds->w, l, &y0, &y1, &x0, &x1);
            size_t es = f32 ? 4 : 1;
            for (int c = 0; c < ds->c; c++)
                for (int yy = y0; yy < y1; yy++) {
                    size_t off = es * (((size_t)c * ds->h + yy) * ds->w + x0);
                    memcpy(o + off, q + off, es * (size_t)(x1 - x0));
                }
        } else if (f32) {
            for (size_t i = 0; i < n; i++) { /* memcpy: the bytes hold floats, as kd_batch_pixels copies them */
                float u, v;
                memcpy(&u, o + 4 * i, 4);
                memcpy(&v, q + 4 * i, 4);
                u = l * u + (1.f - l) * v;
                memcpy(o + 4 * i, &u, 4);
            }
        } else {
            for (size_t i = 0; i < n; i++) o[i] = (uint8_t)lrintf(l * (float)o[i] + (1.f - l) * (float)q[i]);
        }
        lam[b] = l;
    }
}
