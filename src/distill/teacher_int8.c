/* An online teacher run in int8 by the device runtime's own kernels (kdrt, with its AVX-512 VNNI /
 * AVX2 dispatch), for consistent-view distillation, where the teacher scores every augmented batch
 * and its forward pass dominates the step (cnn-t has ~100x cnn-s's MACs). The teacher is quantized
 * post-training (BN folded, activation ranges from calibration samples, int8 weights per channel),
 * written to .kdm bytes in memory and loaded once per thread; each sample of a batch is one
 * kdrt_invoke, spread over the threads. Its logits are the int8 outputs dequantized, so soft
 * targets carry the int8 model's rounding (docs/DISTILLATION.md measures what that costs). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "distill/distill.h"
#include "distill/export.h"
#include "distill/quantize.h"
#include "kdrt_model.h"

struct kd_teacher_q8 {
    unsigned char *bytes; /* the .kdm image every runner reads */
    size_t len;
    int threads, in_c, in_h, in_w, n_classes, values;
    kdrt_model *runners;  /* one per thread, each bound to its own arena */
    uint8_t **arenas;
    uint8_t *inbuf;       /* per thread: one sample in NHWC (pixels or floats) */
    int8_t *qin, *qout;   /* per thread: the quantized input and the int8 logits */
    size_t in_bytes;      /* bytes of one NHWC sample in inbuf */
};

void kd_teacher_q8_free(kd_teacher_q8 *q) {
    if (!q) return;
    for (int t = 0; q->arenas && t < q->threads; t++) free(q->arenas[t]);
    free(q->arenas);
    free(q->runners);
    free(q->inbuf);
    free(q->qin);
    free(q->qout);
    free(q->bytes);
    free(q);
}

kd_status kd_teacher_q8_create(kd_teacher_q8 **out, const kd_model *teacher, const kd_dataset *calib, int threads,
                               kd_error *err) {
    *out = NULL;
    if (threads < 1) threads = 1;
    kd_calib_config cc;
    kd_calib_config_default(&cc);
    cc.threads = threads;
    kd_int8_model *im = NULL;
    kd_status st = kd_int8_quantize(teacher, calib, &cc, &im, err);
    if (st) return st;
    kd_teacher_q8 *q = calloc(1, sizeof *q);
    if (!q) {
        kd_int8_free(im);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    }
    q->threads = threads;
    q->in_c = im->in_c, q->in_h = im->in_h, q->in_w = im->in_w, q->n_classes = im->n_classes;
    q->values = im->input_values;
    st = kd_kdm_write(im, &q->bytes, &q->len, err);
    kd_int8_free(im);
    if (st) goto fail;
    size_t hwc = (size_t)q->in_c * q->in_h * q->in_w;
    q->in_bytes = hwc * (q->values ? sizeof(float) : 1);
    q->runners = calloc((size_t)threads, sizeof *q->runners);
    q->arenas = calloc((size_t)threads, sizeof *q->arenas);
    q->inbuf = malloc(q->in_bytes * (size_t)threads);
    q->qin = malloc(hwc * (size_t)threads);
    q->qout = malloc((size_t)q->n_classes * (size_t)threads);
    if (!q->runners || !q->arenas || !q->inbuf || !q->qin || !q->qout) {
        st = kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory for the int8 teacher");
        goto fail;
    }
    for (int t = 0; t < threads; t++) {
        kdrt_model *m = &q->runners[t];
        kdrt_status ks = kdrt_model_load(m, q->bytes, q->len);
        size_t need = ks == KDRT_STATUS_OK ? kdrt_arena_size(m) : 0;
        if (ks == KDRT_STATUS_OK && !(q->arenas[t] = aligned_alloc(16, (need + 15) / 16 * 16))) {
            st = kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory for the int8 teacher's arena");
            goto fail;
        }
        if (ks == KDRT_STATUS_OK) ks = kdrt_prepare(m, q->arenas[t], need);
        if (ks != KDRT_STATUS_OK) {
            st = kd_error_set(err, KD_STATUS_BAD_MODEL, "teacher %s in int8: the runtime refuses it (%s)",
                              teacher->name, kdrt_status_string(ks));
            goto fail;
        }
    }
    *out = q;
    return KD_STATUS_OK;
fail:
    kd_teacher_q8_free(q);
    return st;
}

/* Sample b of px (NCHW, pixels or float values) to NHWC in o. */
static void to_nhwc(uint8_t *o, const uint8_t *px, int C, int H, int W, size_t es) {
    size_t hw = (size_t)H * W;
    if (C == 1) {
        memcpy(o, px, hw * es);
        return;
    }
    for (size_t i = 0; i < hw; i++)
        for (int c = 0; c < C; c++) memcpy(o + es * (i * C + c), px + es * ((size_t)c * hw + i), es);
}

kd_status kd_teacher_q8_forward(kd_teacher_q8 *q, const kd_batch *in, int B, float *logits, kd_error *err) {
    const kd_dataset *ds = in ? in->ds : NULL;
    if (!ds || !in->px) return kd_error_set(err, KD_STATUS_BAD_ARG, "int8 teacher: no input batch to run on");
    if (ds->c != q->in_c || ds->h != q->in_h || ds->w != q->in_w || (ds->type == KD_DATA_F32) != q->values)
        return kd_error_set(err, KD_STATUS_MISMATCH, "int8 teacher takes %dx%dx%d %s, the data has %dx%dx%d", q->in_c,
                            q->in_h, q->in_w, q->values ? "values" : "pixels", ds->c, ds->h, ds->w);
    size_t sb = kd_dataset_sample_bytes(ds), es = q->values ? sizeof(float) : 1, hwc = sb / es;
    int C = q->n_classes, bad = 0;
    kdrt_status first_bad = KDRT_STATUS_OK;
#pragma omp parallel num_threads(q->threads)
    {
        int t = omp_get_thread_num();
        kdrt_model *m = &q->runners[t];
        uint8_t *ib = q->inbuf + q->in_bytes * (size_t)t;
        int8_t *qi = q->qin + hwc * (size_t)t, *qo = q->qout + (size_t)C * t;
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            to_nhwc(ib, in->px + sb * (size_t)b, ds->c, ds->h, ds->w, es);
            kdrt_status ks = q->values ? kdrt_quantize_input_f32(m, qi, (const float *)(const void *)ib)
                                       : kdrt_quantize_input_u8(m, qi, ib);
            if (ks == KDRT_STATUS_OK) ks = kdrt_invoke(m, qi, qo);
            if (ks == KDRT_STATUS_OK) ks = kdrt_output_dequantize(m, logits + (size_t)b * C, qo);
            if (ks != KDRT_STATUS_OK) {
#pragma omp critical(kd_teacher_q8_err)
                if (!bad++) first_bad = ks;
            }
        }
    }
    if (bad)
        return kd_error_set(err, KD_STATUS_BAD_MODEL, "int8 teacher: the runtime failed on %d of %d samples (%s)", bad,
                            B, kdrt_status_string(first_bad));
    return KD_STATUS_OK;
}
