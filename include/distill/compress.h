/* Model surgery for compression: batch-norm folding, unstructured magnitude pruning with masks
 * (and the AGP sparsity schedule), and structured channel pruning that physically removes
 * channels. Surgery that changes the architecture produces a NEW model: new YAML text built from
 * the layer table (layer names kept) plus weights copied across, so the result saves, loads and
 * trains like any other model. Every function returns a kd_status and fills kd_error. */
#ifndef DISTILL_COMPRESS_H
#define DISTILL_COMPRESS_H
#include <stddef.h>
#include "distill/model.h"
#include "distill/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Batch-norm folding ------------------------------------------------------------------ */

/* Build *out: `in` without the batch norms that directly follow a conv2d (any groups, depthwise
 * included) or linear layer whose output feeds nothing else. Each such BN's eval-mode affine map
 * y = gamma (x - mean) / sqrt(var + eps) + beta is folded into the producer's weight and bias (the
 * producer gains a bias if it had none); layers that read the BN read its producer instead. Other
 * batch norms are kept as they are. Eval-mode outputs of *out equal those of `in` up to float
 * rounding (the fold is computed in double). *n_folded (may be NULL) gets the number folded.
 * `in` is not modified; *out has no batch memory yet (kd_model_set_batch). */
kd_status kd_fold_batchnorm(const kd_model *in, kd_model **out, int *n_folded, kd_error *err);

/* ---- Unstructured magnitude pruning ------------------------------------------------------ */

/* A mask over a model's parameter block: keep[k] says whether params[k] may be non-zero (1) or is
 * pruned (0). Only conv2d and linear weights are ever pruned; biases and batch-norm parameters
 * stay 1. One byte per parameter keeps indexing trivial (keep[k] goes with params[k]). */
typedef struct kd_prune_mask {
    size_t n;               /* == the model's n_params */
    unsigned char *keep;    /* (n) */
} kd_prune_mask;

typedef enum kd_prune_scope {
    KD_PRUNE_PER_LAYER = 0, /* every conv2d/linear weight tensor reaches the sparsity on its own */
    KD_PRUNE_GLOBAL         /* one magnitude threshold across all conv2d/linear weights */
} kd_prune_scope;

/* Allocate a mask for m with nothing pruned. Free with kd_prune_mask_free. */
kd_status kd_prune_mask_init(kd_prune_mask *mask, const kd_model *m, kd_error *err);
void kd_prune_mask_free(kd_prune_mask *mask);

/* Prune conv2d/linear weights by magnitude to `sparsity` in [0, 1): exactly round(sparsity * n)
 * weights are masked and set to 0, n being each layer's weight count (per layer) or all of them
 * (global). Weights already masked count as the smallest (so a growing schedule only adds to the
 * mask); ties are broken by position, so the result is deterministic. The mask is recomputed
 * to the exact target: a lower sparsity than the mask already has unmasks (zero) weights.
 * Non-finite weights are an error (KD_STATUS_BAD_ARG) and leave model and mask unchanged. */
kd_status kd_prune_magnitude(kd_model *m, kd_prune_mask *mask, float sparsity, kd_prune_scope scope,
                             kd_error *err);
/* Re-zero the masked parameters: call after every kd_optimizer_step so the masks hold through
 * fine-tuning. */
kd_status kd_prune_apply(kd_model *m, const kd_prune_mask *mask, kd_error *err);
/* Fraction of conv2d/linear weights that are exactly zero, in [0, 1] (0 if there are none). */
double kd_model_weight_sparsity(const kd_model *m);

/* The gradual pruning schedule of Zhu & Gupta (2017), "To prune, or not to prune":
 *   s_t = s_final + (s_init - s_final) * (1 - (t - t0) / (n dt))^3     for t0 <= t <= t0 + n dt,
 * with t0 = start and t0 + n dt = end (in steps); s_init before start, s_final from end on (and if
 * end <= start). Call it each time the mask is updated (every dt steps). Gradual pruning while
 * fine-tuning is then:
 *   every step:     kd_optimizer_step(&opt, m, lr); kd_prune_apply(m, &mask, &err);
 *   every dt steps: kd_prune_magnitude(m, &mask, kd_agp_sparsity(0, s_f, t, t0, t1), scope, &err); */
float kd_agp_sparsity(float s_init, float s_final, long long step, long long start, long long end);

/* Gradual pruning while training (kd_train_config.prune): the mask follows the AGP schedule from
 * s_init at step `start` to s_final at step `end`, recomputed every `every` steps (and at `end`),
 * and is re-applied after every optimizer step. */
typedef struct kd_prune_schedule {
    kd_prune_mask mask;     /* initialised by the caller (kd_prune_mask_init) */
    float s_init, s_final;
    long long start, end;   /* optimizer steps */
    int every;
    kd_prune_scope scope;
} kd_prune_schedule;
/* The mask a resumed run continues with: conv2d/linear weights that are exactly zero. */
kd_status kd_prune_mask_from_zeros(kd_prune_mask *mask, const kd_model *m, kd_error *err);
/* After the optimizer step that made `step` steps: update the mask if due, then apply it. */
kd_status kd_prune_schedule_step(kd_prune_schedule *p, kd_model *m, long long step, kd_error *err);

/* ---- Reports ----------------------------------------------------------------------------- */

typedef struct kd_prune_layer_report {
    char name[KD_NAME_MAX];
    kd_layer_type type;
    size_t params_before, params_after;     /* weight + bias (BN: gamma + beta) */
    size_t nonzero_before, nonzero_after;   /* of those, how many are non-zero */
    long long macs_before, macs_after;      /* per sample */
    int channels_before, channels_after;    /* output channels (conv, BN) or features (linear), else 0 */
    int *kept;              /* channel pruning: indices (into `before`) of the channels_after output
                               channels kept, ascending; NULL when the layer has no channels or was
                               not rewired */
    const char *note;       /* static text: why a layer was not pruned, or NULL */
} kd_prune_layer_report;

typedef struct kd_prune_report {
    int n_layers;           /* layers of the `before` model, same order */
    kd_prune_layer_report *layers;
    size_t params_before, params_after, nonzero_before, nonzero_after;
    long long macs_before, macs_after;
} kd_prune_report;

/* Compare two models layer by layer, matching layers by name (a layer missing from `after` reports
 * 0 after). Used for unstructured pruning (pass a copy taken before pruning) and filled by
 * kd_prune_channels. Free with kd_prune_report_free. */
kd_status kd_prune_report_compare(const kd_model *before, const kd_model *after, kd_prune_report *rep,
                                  kd_error *err);
void kd_prune_report_free(kd_prune_report *rep);

/* ---- Structured channel pruning ---------------------------------------------------------- */

typedef enum kd_channel_criterion {
    KD_CHANNEL_L1 = 0,      /* L1 norm of each output filter (conv) or weight row (linear) */
    KD_CHANNEL_BN_GAMMA     /* |gamma| of the batch norms on the channel (Liu et al. 2017, network
                               slimming); channels with no batch norm fall back to L1 */
} kd_channel_criterion;

typedef struct kd_channel_prune_config {
    float keep_ratio;           /* in (0, 1]: fraction of output channels kept in every prunable
                                   conv2d/linear (rounded, at least 1) */
    const float *layer_keep;    /* NULL, or one ratio per layer of the model (indexed like
                                   m->layers): overrides keep_ratio for that conv2d/linear;
                                   entries of other layers are ignored; 1 = leave unpruned */
    kd_channel_criterion criterion;
} kd_channel_prune_config;

/* Build *out: `in` with the least important output channels of its conv2d layers (groups 1) and
 * hidden linear layers removed, and every layer that reads them rewired: the batch norms on those
 * channels, depthwise convolutions (their channels follow their producer's) and their batch norms,
 * the input channels of the next conv2d and the input features of the next linear, also across a
 * flatten (a channel there is H*W consecutive features, NCHW). Channels joined by a residual add
 * are chosen jointly (one set for all the layers feeding it, by summed score, with the ratio of
 * the first of them). Not pruned: the last layer's outputs, channels that reach a grouped
 * (non-depthwise) conv, and the model input. Channel removal is exact: *out computes what `in`
 * computes with the removed channels' filters, biases and BN gamma/beta set to zero.
 * rep (may be NULL) gets the per-layer report including the kept channel indices. */
kd_status kd_prune_channels(const kd_model *in, const kd_channel_prune_config *cfg, kd_model **out,
                            kd_prune_report *rep, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
