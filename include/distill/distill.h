/* Knowledge distillation (Hinton et al. 2015): the student learns from the teacher's soft targets
 * softmax(t / T), by minimising T^2 * KL(p_teacher || p_student) mixed with cross-entropy on the
 * labels: loss = alpha * T^2 * KL + (1 - alpha) * CE.
 * Teachers: online (our checkpoints, run forward in eval mode on the student's augmented batch;
 * several = an ensemble whose soft targets are averaged), or a table of logits per training sample
 * (cached from an online teacher when augmentation is off, or produced by another framework). */
#ifndef DISTILL_DISTILL_H
#define DISTILL_DISTILL_H
#include <stdint.h>
#include "distill/data.h"
#include "distill/model.h"
#include "distill/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- response-based loss (src/distill/loss_response.c) ---- (B, C) row-major */
/* Soft targets at temperature T: pt = softmax(logits / T). */
void kd_soft_targets(float *pt, const float *t_logits, int B, int C, float T);
/* Returns T^2 * mean over the batch of KL(pt || softmax(s/T)); writes ps = softmax(s/T). */
float kd_kl_div_forward(float *ps, const float *s_logits, const float *pt, int B, int C, float T);
/* dlogits += scale * d(T^2 * mean KL)/ds = scale * T * (ps - pt) / B */
void kd_kl_div_backward(float *dlogits, const float *ps, const float *pt, int B, int C, float T, float scale);

/* Decoupled KD (Zhao et al. 2022): returns T^2 * mean(alpha * TCKD + beta * NCKD) for student
 * logits, teacher soft targets pt at T and labels; if dlogits is non-NULL adds scale * gradient. */
float kd_dkd_forward_backward(float *dlogits, const float *s_logits, const float *pt, const int32_t *labels, int B,
                              int C, float T, float alpha, float beta, float scale);

/* ---- teachers (src/distill/teacher.c) ---- */
typedef struct kd_teacher {
    int n_models;
    kd_model **models;      /* online teachers (not owned), run in eval mode; NULL if none */
    const float *logits;    /* or: logits per training sample (n_samples, n_classes); not owned */
    int n_samples, n_classes;
} kd_teacher;

/* Soft targets pt (B, n_classes) at temperature T for the batch x whose samples have dataset
 * indices idx: from the logits table if there is one, else the mean of the online teachers'
 * softmax(t/T). Also returns, if t_top1 is non-NULL, the teachers' top-1 class per sample. */
kd_status kd_teacher_targets(const kd_teacher *t, float *pt, int32_t *t_top1, const float *x, const int32_t *idx,
                             int B, float T, kd_error *err);
/* Run the online teacher(s) over the whole data set once and keep logits that reproduce their
 * (ensemble-averaged) soft targets at temperature T exactly, so later epochs cost nothing (valid
 * when augmentation is off). *out is malloc'd (*n_rows, C), row = original sample index. */
kd_status kd_teacher_cache_logits(const kd_teacher *t, const kd_dataset *ds, int batch, int threads, float T,
                                  float **out, int *n_rows, kd_error *err);

/* NumPy .npy reader for teacher logits: float32 or float16, C order, shape [N, C]. */
kd_status kd_npy_load_logits(const char *path, float **data, int *n, int *c, kd_error *err);
/* Write a float32 [n, c] .npy (version 1.0), atomically. */
kd_status kd_npy_save(const char *path, const float *data, int n, int c, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
