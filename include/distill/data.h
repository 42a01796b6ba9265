/* Datasets: the readers of every source a user brings (IDX, image folders, CIFAR, NumPy, CSV/TSV),
 * validation and train/test splits, batching, augmentation. Images are kept as uint8 pixels (4x
 * less memory than float), arrays and tables as float32 values, and normalised when a batch is built. */
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

/* What one element of a sample is. */
typedef enum kd_data_type {
    KD_DATA_U8 = 0,     /* 8-bit pixels p; a model sees the value p / 255 (images: IDX, folders, CIFAR, uint8 arrays) */
    KD_DATA_F32         /* float32 values v, seen as they are (float arrays, tables: CSV/TSV) */
} kd_data_type;

/* Class names are at most this long (bytes, with the NUL); longer ones are an error naming them. */
#define KD_CLASS_NAME_MAX 64

typedef struct kd_dataset {
    int n;              /* number of samples */
    int c, h, w;        /* sample shape (IDX 3-d files give c = 1; a table of F features is F x 1 x 1) */
    int n_classes;      /* 1 + max label, or the number of classes the source names (folders, string labels) */
    kd_data_type type;  /* of pixels[]: KD_DATA_U8 unless a reader says otherwise */
    uint8_t *pixels;    /* (n, c, h, w) samples: uint8 pixels, or float32 values stored in these bytes
                           (4 per element, malloc-aligned) when type is KD_DATA_F32.
                           kd_dataset_sample_bytes(ds) bytes per sample either way. */
    char **class_names; /* n_classes names (folder names, CSV string labels, CIFAR's), or NULL; one
                           malloc'd block of pointers then strings, freed by kd_dataset_free */
    int32_t *labels;    /* (n) */
    float mean, std;    /* statistics of the values (p/255, or v) over all elements: a model without its own normalisation is fed
                           (p/255 - mean) / std (kd_batch_fill) */
    int32_t *orig;      /* after kd_dataset_split: each sample's index in the file it was read
                           from (NULL = identity). Tables per sample (teacher logits) use it. */
    char labels_path[256]; /* the label file, for messages ("" when the set was made in memory) */
    int n_skipped;      /* image folders with skip_bad: unreadable images left out (never silently: */
    char skip_note[320]; /* the first one's error is kept here, "" when none was) */
    int n_ignored;      /* image folders: files that are not images by their extension, or hidden */
} kd_dataset;

/* Index of sample i in the original file. */
static inline int32_t kd_dataset_orig_index(const kd_dataset *ds, int i) { return ds->orig ? ds->orig[i] : i; }
/* Bytes of one sample in pixels[] (c*h*w elements of 1 or 4 bytes). */
static inline size_t kd_dataset_sample_bytes(const kd_dataset *ds) {
    return (size_t)ds->c * ds->h * ds->w * (ds->type == KD_DATA_F32 ? 4u : 1u);
}

/* ---- Sources ------------------------------------------------------------------------------------ */

typedef enum kd_data_format {
    KD_DATA_FORMAT_AUTO = 0,  /* detected from the spec (kd_data_format_detect) */
    KD_DATA_FORMAT_IDX,       /* "fashion-mnist", a directory of IDX files, or IMAGES,LABELS */
    KD_DATA_FORMAT_IMAGES,    /* DIR/{train,test or val}/CLASS/ images (png, jpg, jpeg, pgm, ppm, bmp), or DIR/CLASS/ split */
    KD_DATA_FORMAT_CIFAR,     /* a directory (or one file) of CIFAR-10/100 binary batches */
    KD_DATA_FORMAT_NUMPY,     /* one .npz (x_train, y_train, x_test, y_test), or X.npy,Y.npy pairs */
    KD_DATA_FORMAT_CSV,       /* .csv / .tsv tables: TRAIN[,TEST], or one file split */
    KD_DATA_FORMAT_COUNT
} kd_data_format;
/* "idx", "images", "cifar", "numpy", "csv" ("auto" for AUTO); NULL past the end. */
const char *kd_data_format_name(kd_data_format f);
/* KD_DATA_FORMAT_COUNT when name is none of them. */
kd_data_format kd_data_format_parse(const char *name);

/* How images of another size are fitted to --size HxW (aspect kept unless STRETCH). */
typedef enum kd_image_fit {
    KD_IMAGE_FIT_CROP = 0,    /* scale so the shorter side fits, centre-crop the longer (default) */
    KD_IMAGE_FIT_PAD,         /* scale so the longer side fits, pad the rest with 0 (centred) */
    KD_IMAGE_FIT_STRETCH      /* scale each side on its own */
} kd_image_fit;

/* Options of the readers (CLI: --data-format, --channels, --size, --fit, --test-fraction,
 * --label-column, --skip-bad). Zero-initialised means every default, except test_fraction and
 * max_bytes: start from kd_data_opts_default(). */
typedef struct kd_data_opts {
    kd_data_format format;    /* AUTO: detected */
    int channels;             /* 0: as the source has (an image folder: 1 if every image is grey, else 3);
                                 1 or 3: images converted (grey = ITU-R BT.601 luma, rounded) */
    int size_h, size_w;       /* 0: as the source has (images of mixed sizes are then an error) */
    kd_image_fit fit;
    float test_fraction;      /* a single tree or file with no test part: this share of each class
                                 (stratified, seeded) is the test split; in (0, 1); default 0.2 */
    uint64_t split_seed;      /* seed of that split (default 1) */
    char label_column[128];   /* CSV/TSV: a header name or a 0-based index; "" = the last column */
    int skip_bad;             /* an unreadable image is counted, reported and skipped (0: an error) */
    size_t max_bytes;         /* decoded data larger than this is refused, saying how much it needs
                                 (default: 3/4 of physical memory) */
} kd_data_opts;
kd_data_opts kd_data_opts_default(void);

/* The format of spec when opts->format is AUTO: IMAGES for a directory with class folders of
 * images (or train/ and test/ ones), CIFAR for a directory with data_batch_*.bin / train.bin or a
 * .bin file, NUMPY for .npz or .npy paths, CSV for .csv/.tsv paths, else IDX. */
kd_data_format kd_data_format_detect(const char *spec);

/* Load split "train" or "test" of the source spec ("val" is taken as the test split of a folder
 * that has val/ and no test/). opts NULL = kd_data_opts_default(). Every reader fills n, c, h, w,
 * n_classes, type, pixels, labels and, where the source names them, class_names; this function then
 * computes mean and std. Both splits of one source give the same shape, classes and class names, so
 * a model trained on one is evaluated on the other. Messages name the file and the problem. */
kd_status kd_dataset_load_ex(kd_dataset *ds, const char *spec, const char *split, const kd_data_opts *opts,
                             kd_error *err);

/* The readers, one file each (src/data/). Each one is what kd_dataset_load_ex calls for its format;
 * same arguments, and it leaves ds zeroed on error. */
kd_status kd_dataset_load_idx_spec(kd_dataset *ds, const char *spec, const char *split, kd_error *err); /* idx.c */
kd_status kd_dataset_load_images(kd_dataset *ds, const char *spec, const char *split, const kd_data_opts *opts,
                                 kd_error *err); /* imgdir.c */
kd_status kd_dataset_load_cifar(kd_dataset *ds, const char *spec, const char *split, const kd_data_opts *opts,
                                kd_error *err); /* cifar.c */
kd_status kd_dataset_load_numpy(kd_dataset *ds, const char *spec, const char *split, const kd_data_opts *opts,
                                kd_error *err); /* numpy_data.c */
kd_status kd_dataset_load_csv(kd_dataset *ds, const char *spec, const char *split, const kd_data_opts *opts,
                              kd_error *err); /* csv.c */

/* One image file (PNG, JPEG, PGM/PPM, BMP) decoded and fitted to c x h x w uint8 planes (c 1 or 3,
 * converted as needed; resized bilinearly as opts->fit says when its size differs): what an image
 * folder's reader does per file, and what `distill predict MODEL image.png` feeds a model.
 * out: c*h*w bytes. image.c */
kd_status kd_image_load(const char *path, int c, int h, int w, kd_image_fit fit, uint8_t *out, kd_error *err);

/* The stratified seeded split of single-tree and single-file sources: is_test[i] = 1 for
 * round(test_fraction * count) samples of each class (at least 1 when the class has 2 or more),
 * chosen by a seeded shuffle within the class; the same labels, fraction and seed give the same
 * split on every machine. labels: n values in [0, n_classes). */
kd_status kd_split_stratified(const int32_t *labels, int n, int n_classes, float test_fraction, uint64_t seed,
                              uint8_t *is_test, kd_error *err);
/* A single-file source's share for split "train" or "test": kd_split_stratified with
 * opts->test_fraction and opts->split_seed, then kd_dataset_select (the two splits are complementary). */
kd_status kd_dataset_take_split(kd_dataset *ds, const kd_data_opts *opts, const char *split, kd_error *err);
/* Keep the samples with keep[i] == want (and their class names): ds shrinks in place, orig[] records
 * their indices in the source. */
kd_status kd_dataset_select(kd_dataset *ds, const uint8_t *keep, uint8_t want, kd_error *err);
/* Per-channel statistics of ds's values (p/255 or v): mean[c], std[c] (population; std 1 for a
 * constant channel), the model's normalisation when it brings none (docs/DATA.md). */
void kd_dataset_channel_stats(const kd_dataset *ds, float *mean, float *std);
/* The scalar mean and std of all values, into ds->mean and ds->std (every reader's result gets it). */
void kd_dataset_compute_stats(kd_dataset *ds);
/* Bytes of n samples of shape c x h x w and element size elem, checked against max_bytes: an error
 * saying how much the data needs and how much is allowed, naming spec. */
kd_status kd_dataset_check_size(const char *spec, int64_t n, int c, int h, int w, int elem, size_t max_bytes,
                                kd_error *err);
/* NULL if s can be a class name (non-empty, shorter than KD_CLASS_NAME_MAX bytes, UTF-8 of printable
 * characters), else what is wrong with it ("is empty", ...): the one rule for data sets and models. */
const char *kd_class_name_problem(const char *s);
/* Set ds->class_names from names[0..n) (copied into one block); n must be ds->n_classes and every
 * name pass kd_class_name_problem (else "class name I <problem>"). */
kd_status kd_dataset_set_class_names(kd_dataset *ds, const char *const *names, int n, kd_error *err);

/* Read an IDX image file (ubyte, 3-d or 4-d) and an IDX label file (ubyte, 1-d); either may be
 * gzip-compressed (then read to its end: every member's CRC-32 and length are checked, nothing but
 * another member may follow one). Validates magic, dtype, dimensions, sizes, truncation and that
 * counts match. Anything but a regular file is refused (a FIFO would block). */
kd_status kd_dataset_load_idx(kd_dataset *ds, const char *images_path, const char *labels_path,
                              kd_error *err);
/* kd_dataset_load_ex with the default options. The IDX spec is "fashion-mnist" (Debian's
 * dataset-fashion-mnist), or a directory holding {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz],
 * or "IMAGES,LABELS" file paths. split: "train" or "test". */
kd_status kd_dataset_load(kd_dataset *ds, const char *spec, const char *split, kd_error *err);
void kd_dataset_free(kd_dataset *ds);
/* Moves the last n_val samples of a seeded permutation of ds into val; ds keeps the rest. */
kd_status kd_dataset_split(kd_dataset *ds, kd_dataset *val, int n_val, uint64_t seed, kd_error *err);
/* The default validation hold-out of a training set of n samples: 5000, or n / 12 (rounded down)
 * when that is less (0 for fewer than 12 samples). 60,000 Fashion-MNIST images give 5000. */
int kd_dataset_default_val(int n);
/* Keep only the first n samples (n <= ds->n). */
void kd_dataset_truncate(kd_dataset *ds, int n);
/* KD_STATUS_MISMATCH unless every label of ds is below n_classes, the class count of `model` (a
 * name for the message). The message names the label file, the first bad label's index in that
 * file, its value and the classes the model has. */
kd_status kd_dataset_check_labels(const kd_dataset *ds, int n_classes, const char *model, kd_error *err);

typedef struct kd_augment {
    int translate;      /* random shift of up to this many pixels in x and y, zero fill (0 = off):
                           the same as a random crop with padding of this many pixels (CIFAR's
                           standard "pad 4, crop 32"), which is what it is called in the CLI too */
    int hflip;          /* flip horizontally with probability 1/2 */
    /* Augmentations that make new inputs out of two training samples, after the shift and flip
     * (kd_batch_mix): each sample of a batch is paired with another of the same batch and, with
     * probability mix_prob, mixed with it at a ratio lam ~ Beta(a, a) of its own. Both on: each
     * mixed sample takes one of the two at random. */
    float mixup;        /* mixup (Zhang et al. 2018): lam * this + (1 - lam) * partner, Beta(mixup,
                           mixup); 0 = off */
    float cutmix;       /* CutMix (Yun et al. 2019): a box of (1 - lam) of the area comes from the
                           partner, Beta(cutmix, cutmix); lam is then the exact share kept. Images
                           only; 0 = off */
    float mix_prob;     /* share of the samples mixed when mixup or cutmix is on (0 is read as 1) */
} kd_augment;
/* 1 when aug mixes samples (mixup or cutmix on). */
static inline int kd_augment_mixes(const kd_augment *aug) { return aug && (aug->mixup > 0.f || aug->cutmix > 0.f); }
/* Any augmentation on: the samples a model sees are not the stored ones. */
static inline int kd_augment_any(const kd_augment *aug) {
    return aug && (aug->translate || aug->hflip || kd_augment_mixes(aug));
}

/* Batches. Pixels p become a model's input as (p/255 - mean[c]) / std[c] for channel c (float
 * values v as (v - mean[c]) / std[c]), where mean
 * and std are the model's own normalisation (kd_model.norm_mean / norm_std: c floats each), or,
 * when both are NULL, the data set's scalar ds->mean and ds->std (a model without one). Each model
 * is fed its own; two models of a step (student and teacher) see the same augmented view, kept as
 * uint8 pixels (kd_batch_pixels) and normalised for each (kd_batch_normalize). */

/* Fill x (B, c, h, w) and y (B) from samples idx[0..B) of ds, normalised with mean/std (above),
 * without augmentation (evaluation, calibration, teacher caches). */
void kd_batch_fill(float *x, int32_t *y, const kd_dataset *ds, const float *mean, const float *std,
                   const int32_t *idx, int B);
/* The samples px (B, c, h, w: B * kd_dataset_sample_bytes(ds) bytes, pixels or float32 values as
 * ds->type says) and labels y (B) of samples idx[0..B), augmented. aug may be NULL;
 * rng is used only when augmenting (its draws: per sample, x and y shift if translating, then the
 * flip). */
void kd_batch_pixels(uint8_t *px, int32_t *y, const kd_dataset *ds, const int32_t *idx, int B, const kd_augment *aug,
                     kd_rng *rng);
/* Mix the B samples px (as kd_batch_pixels made them) in place as aug says (nothing when
 * kd_augment_mixes(aug) is 0, and then no draws): sample b is paired with sample (b + r) mod B for
 * one r in [1, B) drawn per batch, and with probability mix_prob mixed with that partner's
 * unmixed pixels; y2[b] gets the partner's label and lam[b] the share of sample b's own label (1
 * when not mixed). Mixed pixels are rounded to the nearest level, so a teacher and a student
 * normalising px differently still see the same view. scratch holds B samples. Draws per batch: r,
 * then per sample: whether to mix, which of mixup and CutMix (when both are on), lam, and CutMix's
 * box centre. */
void kd_batch_mix(uint8_t *px, int32_t *y2, float *lam, uint8_t *scratch, const int32_t *y, const kd_dataset *ds,
                  int B, const kd_augment *aug, kd_rng *rng);
/* x (B, c, h, w) from the samples px of B samples of ds's shape and type, normalised with mean/std (above):
 * the same floats as kd_batch_fill gives for the same pixels. */
void kd_batch_normalize(float *x, const uint8_t *px, int B, const kd_dataset *ds, const float *mean, const float *std);

/* A batch as the models of one training step see it: the pixels after augmentation, and the input
 * of the model being trained made from them, so another model (a teacher normalised differently)
 * can be fed its own normalisation of the same view. */
typedef struct kd_batch {
    const kd_dataset *ds;       /* the samples' data set: shape, and the statistics for NULL mean/std */
    const uint8_t *px;          /* (B, c, h, w) samples after augmentation (bytes as kd_batch_pixels) */
    const float *x;             /* (B, c, h, w) px normalised with mean/std, or NULL (none yet) */
    const float *mean, *std;    /* x's normalisation (above) */
    const int32_t *y2;          /* mixed batches (kd_batch_mix): the partners' labels, else NULL */
    const float *lam;           /* and each sample's share of its own label */
} kd_batch;
/* 1 when in->x is px normalised with mean/std (the same pointers, or the same c values each). */
int kd_batch_same_norm(const kd_batch *in, const float *mean, const float *std);

#ifdef __cplusplus
}
#endif
#endif
