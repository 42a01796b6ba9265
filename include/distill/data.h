/* Datasets: IDX (MNIST format, raw or gzip) readers, validation split, batching, augmentation.
 * Pixels are kept as uint8 (4x less memory than float) and normalised when a batch is built. */
#ifndef DISTILL_DATA_H
#define DISTILL_DATA_H
#include <stddef.h>
#include <stdint.h>
#include "distill/rng.h"
#include "distill/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KD_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

typedef struct kd_dataset {
    int n;              /* number of samples */
    int c, h, w;        /* image shape (IDX 3-d files give c = 1) */
    int n_classes;      /* 1 + max label */
    uint8_t *pixels;    /* (n, c, h, w) */
    int32_t *labels;    /* (n) */
    float mean, std;    /* pixel statistics (of p/255): a model without its own normalisation is fed
                           (p/255 - mean) / std (kd_batch_fill) */
    int32_t *orig;      /* after kd_dataset_split: each sample's index in the file it was read
                           from (NULL = identity). Tables per sample (teacher logits) use it. */
    char labels_path[256]; /* the label file, for messages ("" when the set was made in memory) */
} kd_dataset;

/* Index of sample i in the original file. */
static inline int32_t kd_dataset_orig_index(const kd_dataset *ds, int i) { return ds->orig ? ds->orig[i] : i; }

/* Read an IDX image file (ubyte, 3-d or 4-d) and an IDX label file (ubyte, 1-d); either may be
 * gzip-compressed (then read to its end: every member's CRC-32 and length are checked, nothing but
 * another member may follow one). Validates magic, dtype, dimensions, sizes, truncation and that
 * counts match. Anything but a regular file is refused (a FIFO would block). */
kd_status kd_dataset_load_idx(kd_dataset *ds, const char *images_path, const char *labels_path,
                              kd_error *err);
/* `spec` is "fashion-mnist" (Debian's dataset-fashion-mnist), or a directory holding
 * {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz], or "IMAGES,LABELS" file paths.
 * split: "train" or "test". */
kd_status kd_dataset_load(kd_dataset *ds, const char *spec, const char *split, kd_error *err);
void kd_dataset_free(kd_dataset *ds);
/* Moves the last n_val samples of a seeded permutation of ds into val; ds keeps the rest. */
kd_status kd_dataset_split(kd_dataset *ds, kd_dataset *val, int n_val, uint64_t seed, kd_error *err);
/* Keep only the first n samples (n <= ds->n). */
void kd_dataset_truncate(kd_dataset *ds, int n);
/* KD_STATUS_MISMATCH unless every label of ds is below n_classes, the class count of `model` (a
 * name for the message). The message names the label file, the first bad label's index in that
 * file, its value and the classes the model has. */
kd_status kd_dataset_check_labels(const kd_dataset *ds, int n_classes, const char *model, kd_error *err);

typedef struct kd_augment {
    int translate;      /* random shift of up to this many pixels in x and y, zero fill (0 = off) */
    int hflip;          /* flip horizontally with probability 1/2 */
} kd_augment;

/* Batches. Pixels p become a model's input as (p/255 - mean[c]) / std[c] for channel c, where mean
 * and std are the model's own normalisation (kd_model.norm_mean / norm_std: c floats each), or,
 * when both are NULL, the data set's scalar ds->mean and ds->std (a model without one). Each model
 * is fed its own; two models of a step (student and teacher) see the same augmented view, kept as
 * uint8 pixels (kd_batch_pixels) and normalised for each (kd_batch_normalize). */

/* Fill x (B, c, h, w) and y (B) from samples idx[0..B) of ds, normalised with mean/std (above),
 * without augmentation (evaluation, calibration, teacher caches). */
void kd_batch_fill(float *x, int32_t *y, const kd_dataset *ds, const float *mean, const float *std,
                   const int32_t *idx, int B);
/* The pixels px (B, c, h, w) and labels y (B) of samples idx[0..B), augmented. aug may be NULL;
 * rng is used only when augmenting (its draws: per sample, x and y shift if translating, then the
 * flip). */
void kd_batch_pixels(uint8_t *px, int32_t *y, const kd_dataset *ds, const int32_t *idx, int B, const kd_augment *aug,
                     kd_rng *rng);
/* x (B, c, h, w) from the pixels px of B images of ds's shape, normalised with mean/std (above):
 * the same floats as kd_batch_fill gives for the same pixels. */
void kd_batch_normalize(float *x, const uint8_t *px, int B, const kd_dataset *ds, const float *mean, const float *std);

/* A batch as the models of one training step see it: the pixels after augmentation, and the input
 * of the model being trained made from them, so another model (a teacher normalised differently)
 * can be fed its own normalisation of the same view. */
typedef struct kd_batch {
    const kd_dataset *ds;       /* the samples' data set: shape, and the statistics for NULL mean/std */
    const uint8_t *px;          /* (B, c, h, w) pixels after augmentation */
    const float *x;             /* (B, c, h, w) px normalised with mean/std, or NULL (none yet) */
    const float *mean, *std;    /* x's normalisation (above) */
} kd_batch;
/* 1 when in->x is px normalised with mean/std (the same pointers, or the same c values each). */
int kd_batch_same_norm(const kd_batch *in, const float *mean, const float *std);

#ifdef __cplusplus
}
#endif
#endif
