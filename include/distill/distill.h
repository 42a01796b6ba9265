/* Knowledge distillation. The loss of a run is a list of weighted terms (kd_loss_term): response
 * terms on the logits (Hinton et al. 2015: alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) +
 * (1 - alpha) * CE; decoupled KD; CE), feature terms (FitNets, attention transfer, DistilBERT's
 * cosine) and relation terms (RKD, SP) on named layers, evaluated by a kd_distiller that kd_train
 * calls each step (the feature/relation losses themselves are in kd_losses.h).
 * Teachers: online (our checkpoints, run forward in eval mode on the student's augmented batch;
 * several = an ensemble whose soft targets are averaged), or tables of logits (and features) per
 * training sample, cached from an online teacher when augmentation is off, or (logits only)
 * produced by another framework. docs/DISTILLATION.md is the user's guide. */
#ifndef DISTILL_DISTILL_H
#define DISTILL_DISTILL_H
#include <stdint.h>
#include "distill/data.h"
#include "distill/model.h"
#include "distill/npy.h" /* teacher logits from other frameworks */
#include "distill/status.h"
#include "distill/train.h"

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
#define KD_MAX_FEATS 8
/* A teacher run in int8 by the runtime's kernels (src/distill/teacher_int8.c). */
typedef struct kd_teacher_q8 kd_teacher_q8;
/* Quantize teacher post-training (int8 per channel, activation ranges from the first min(1000, n)
 * samples of calib, minmax) and load it into the runtime once per thread. */
kd_status kd_teacher_q8_create(kd_teacher_q8 **out, const kd_model *teacher, const kd_dataset *calib, int threads,
                               kd_error *err);
/* Dequantized int8 logits (B, classes) of the B samples in->px (the augmented view). */
kd_status kd_teacher_q8_forward(kd_teacher_q8 *q, const kd_batch *in, int B, float *logits, kd_error *err);
void kd_teacher_q8_free(kd_teacher_q8 *q);
typedef struct kd_teacher {
    int n_models;
    kd_model **models;      /* online teachers (not owned), run in eval mode; NULL if none */
    /* No temperature here: an ensemble averages its members' probabilities at the temperature of
     * the loss term that consumes them (kd_teacher_forward's T, which the distiller takes from its
     * response terms), so the temperature has one owner, the loss term. */
    const float *logits;    /* or: logits per training sample (n_samples, n_classes); not owned */
    int n_samples, n_classes;
    /* Intermediate outputs of models[0] that feature and relation losses need (set up by
     * kd_distiller_create), each online or from a per-sample table like the logits. */
    int n_feats;
    int feat_layer[KD_MAX_FEATS];
    size_t feat_size[KD_MAX_FEATS];          /* floats per sample */
    const float *feat_table[KD_MAX_FEATS];   /* (n_samples, feat_size) or NULL */
    /* models[0] in int8 (not owned), or NULL: when set, the logits come from it (a single teacher,
     * no features), the fp32 model is not run */
    kd_teacher_q8 *q8;
} kd_teacher;

/* An online teacher of n models (an ensemble when n > 1), no tables. */
static inline kd_teacher kd_teacher_online(kd_model **models, int n) {
    kd_teacher t = {0};
    t.n_models = n;
    t.models = models;
    t.n_classes = n > 0 ? models[0]->n_classes : 0;
    return t;
}

/* The teacher's logits (B, n_classes) for batch `in` whose samples have dataset indices idx: rows
 * of the tables if there are tables, else the online teacher run forward on the batch, each model
 * fed its own normalisation of the batch's pixels (in->x when it is normalised as the model asks,
 * else in->px normalised for it). An ensemble's logits
 * are T * log(mean_k softmax(t_k / T)), whose softmax at T is exactly the averaged soft targets;
 * T (> 0) is the temperature of the term that consumes them (kd_distiller_teacher_T) and is
 * ignored for a single model or tables. feats (may be NULL) receives the n_feats feature maps,
 * (B, feat_size[k]) each. in may be NULL when the tables answer everything. KD_STATUS_DIVERGED
 * (kd_error_nonfinite) when an online model outputs NaN or inf. */
kd_status kd_teacher_forward(const kd_teacher *t, float T, float *logits, float *const *feats, const kd_batch *in,
                             const int32_t *idx, int B, kd_error *err);
/* Run the online teacher(s) over the whole data set once and keep its logits and features per
 * sample (row = original sample index), so later epochs cost nothing (valid when augmentation is
 * off), each model fed its own normalisation. An ensemble's rows are averaged at temperature T,
 * as kd_teacher_forward. *logits_tab and,
 * for k < n_feats, feat_tabs[k] are malloc'd; the caller points t's tables at them. A model that
 * outputs NaN or inf fails it with KD_STATUS_DIVERGED, counting the images over the whole set. */
kd_status kd_teacher_cache(const kd_teacher *t, float T, const kd_dataset *ds, int batch, int threads,
                           float **logits_tab, float **feat_tabs, int *n_rows, kd_error *err);

/* ---- the loss of a run: a list of weighted terms (src/distill/loss_terms.c) ---- */
#define KD_MAX_LOSS_TERMS 16 /* terms in one run's list */
typedef enum kd_loss_kind {
    KD_LOSS_CE = 0,   /* cross-entropy on the labels */
    KD_LOSS_HINTON,   /* alpha * T^2 * KL(teacher || student at T) + (1 - alpha) * CE */
    KD_LOSS_DKD,      /* decoupled KD: T^2 * (dkd_alpha * TCKD + dkd_beta * NCKD) */
    KD_LOSS_FITNET,   /* FitNets hint: MSE(regressor(student layer), teacher layer) */
    KD_LOSS_AT,       /* attention transfer between spatial feature maps */
    KD_LOSS_COSINE,   /* DistilBERT: 1 - cos(student hidden, teacher hidden) */
    KD_LOSS_RKD,      /* relational KD: pairwise distances and angles of a batch's embeddings */
    KD_LOSS_SP,       /* similarity-preserving: the batch's Gram matrices */
    KD_LOSS_KIND_COUNT
} kd_loss_kind;

typedef struct kd_loss_term {
    kd_loss_kind kind;
    float weight;             /* multiplies the whole term (default 1) */
    float T;                  /* hinton, dkd: temperature; 0 = the run's (--temperature) */
    float alpha;              /* hinton: share of the KL part; < 0 = the run's (--alpha) */
    float dkd_alpha, dkd_beta;/* dkd: weights of the target and non-target parts (1, 8) */
    int standardize;          /* hinton, dkd: z-score each logit vector before /T (Sun et al. 2024) */
    float rkd_dist, rkd_angle;/* rkd: weights of the distance and angle parts (1, 2) */
    /* feature terms: the layers compared; empty = the input of each model's last layer */
    char student[KD_NAME_MAX], teacher[KD_NAME_MAX];
    int project;              /* cosine: map the student feature to the teacher's size with a
                                 learned linear / 1x1 conv (fitnet always has one); -1 = when sizes differ */
} kd_loss_term;

const char *kd_loss_kind_name(kd_loss_kind k);
void kd_loss_term_default(kd_loss_term *t, kd_loss_kind kind);
/* Parse "KIND[:key=value,...]", e.g. "hinton:T=4,alpha=0.9" or "fitnet:student=relu2,teacher=relu3,
 * weight=0.5"; the CLI's --loss and the YAML's loss list both come here. */
kd_status kd_loss_term_parse(kd_loss_term *t, const char *spec, kd_error *err);
/* The inverse, for reports and checkpoints metadata. */
void kd_loss_term_format(const kd_loss_term *t, char *buf, size_t n);

/* ---- the defaults of a run (src/distill/recipe.c) ---- */
/* kd_recipe.user_set bits: fields of the kd_train_config the user gave, which keep their values. */
enum { KD_RECIPE_SET_EPOCHS = 1, KD_RECIPE_SET_LR = 2, KD_RECIPE_SET_WD = 4, KD_RECIPE_SET_CLIP = 8 };
typedef struct kd_recipe {
    int distill;        /* a distillation run: default loss terms and clipped gradients */
    int qat_bits;       /* 8 or 4: quantization-aware fine-tune of a trained model; 0 = none */
    float T;            /* the run's temperature (default 2): terms with T <= 0 take it */
    float alpha;        /* the run's Hinton share in [0, 1] (default 0.95): terms with alpha < 0 take it */
    float dkd_beta;     /* > 0 and no terms given: DKD (weight alpha, this beta) + CE (weight 1 - alpha)
                           instead of Hinton (default 0) */
    int standardize;    /* the default term z-scores the logits (default 0) */
    unsigned user_set;  /* KD_RECIPE_SET_* bits (default 0) */
} kd_recipe;
void kd_recipe_default(kd_recipe *r);
/* Complete a run's config (kd_train_config_default plus the user's values) and loss list with the
 * recipe: AdamW lr 1e-3 and weight decay 0.01; QAT 3 epochs at a tenth of the lr; distillation:
 * without terms Hinton (or DKD + CE) from T, alpha, standardize, every term's T and alpha from the
 * run's, the gradient norm clipped at 2; each unless the user set it. terms has room for
 * KD_MAX_LOSS_TERMS (at least 2); *n_terms is the number given (0 = the default terms). */
void kd_recipe_apply(const kd_recipe *r, kd_train_config *cfg, kd_loss_term *terms, int *n_terms);

/* The measured accuracy of plain training (cross-entropy, `distill train` with its defaults: SGD
 * lr 0.05 cosine, batch 128, no augmentation) for a built-in student on a data set, so `distill kd`
 * can say what distillation gained; only configurations measured here (bench/kd_recipes.sh,
 * docs/BENCHMARKS.md), never an estimate. */
typedef struct kd_ce_baseline {
    const char *student, *data; /* a built-in model's name, the --data spec ("fashion-mnist") */
    int n_train, epochs;        /* training samples (after the validation split), epochs */
    int seeds;                  /* runs measured */
    float mean, se;             /* test accuracy in percent: mean and its standard error */
    const char *source;         /* where it was measured */
} kd_ce_baseline;
/* The entry for exactly this student, data, training-set size and epochs, or NULL. */
const kd_ce_baseline *kd_ce_baseline_find(const char *student, const char *data, int n_train, int epochs);

/* ---- budgeted recipe search by successive halving (src/distill/search.c) ---- */
/* The searched dimensions (kd_search_plan.dims). */
enum { KD_SEARCH_T = 1, KD_SEARCH_ALPHA = 2, KD_SEARCH_FSCALE = 4, KD_SEARCH_MIXUP = 8, KD_SEARCH_TRANSLATE = 16 };
#define KD_SEARCH_MAX_RUNGS 40
typedef struct kd_search_plan {
    int n_rungs;
    int candidates[KD_SEARCH_MAX_RUNGS]; /* per rung: candidates trained (the first = the budget) */
    int epochs[KD_SEARCH_MAX_RUNGS];     /* per rung: epochs each of them trains */
    int final_run;          /* 1: the last rung is the winner alone, which kd_search does not train (the
                               caller's final run does: the same training); 0: it ended at max_epochs */
    long long search_epochs;/* candidate-epochs kd_search trains at most (early stops spend less) */
    int space;              /* size of the candidate space (the product of the searched values) */
    unsigned dims;          /* KD_SEARCH_* bits of the searched dimensions */
    int aug_fixed;          /* 1: augmentation is not searched because the teacher answers from tables only
                               (logits from a file: no model to score an augmented view) */
} kd_search_plan;
typedef struct kd_search_candidate {
    int id;                 /* its place in the seeded draw order, 0 .. budget-1 */
    int rung;               /* the rung it ran in, 0 = the first */
    float T, alpha, fscale; /* T of the hinton/dkd terms (the first one's when T is not searched; 0 when
                               there is none); alpha: the searched Hinton share, or terms[0]'s when it is
                               not searched; fscale multiplies the feature and relation terms' weights */
    float mixup;            /* kd_augment.mixup it trained with (base's when not searched) */
    int translate;          /* kd_augment.translate it trained with (base's when not searched) */
    int diverged;           /* its training diverged (NaN/inf): scored 0 */
    float val_acc;          /* validation accuracy in [0, 1] after its last epoch; -1 = never trained */
    int epochs;             /* epochs it ran; fewer than its rung's = stopped early */
} kd_search_candidate;
typedef struct kd_search_config {
    int budget;             /* candidates of the first rung, >= 1 (default 9; at most the space's size) */
    int epochs;             /* epochs of the first rung, >= 1 (default 1) */
    int eta;                /* >= 2 (default 3): a rung keeps its best ceil(n / eta), which then train eta
                               times as many epochs */
    int max_epochs;         /* no rung trains longer, >= 0 (default 0 = base->epochs, the run's) */
    /* Progress, each may be NULL: on_plan once before the first candidate, on_candidate after each
     * candidate's training. */
    void (*on_plan)(void *ctx, const kd_search_plan *p);
    void (*on_candidate)(void *ctx, const kd_search_candidate *c);
    void *ctx;
} kd_search_config;
void kd_search_config_default(kd_search_config *c);
/* The rungs of successive halving (Jamieson & Talwalkar 2016) for n (>= 1) first-rung candidates:
 * rung r has ceil(n_{r-1} / eta) candidates (eta >= 2) training min(e0 * eta^r, max_epochs) epochs
 * (e0, max_epochs >= 1), until one is left (that rung, the winner alone, is the final run) or a
 * rung trained max_epochs. Fills p's rung fields (n_rungs .. search_epochs); n = 9, eta = 3: 9, 3
 * and 1 candidates with e0, 3 e0 and 9 e0 epochs, 9 e0 + 9 e0 search epochs. */
void kd_search_schedule(int n, int e0, int eta, int max_epochs, kd_search_plan *p);
/* The winner of a search. */
typedef struct kd_search_result {
    kd_loss_term terms[KD_MAX_LOSS_TERMS]; /* its loss list (n_terms of them: terms with its T, alpha
                                              and feature weights) */
    kd_augment aug;         /* base's augmentation with its mixup and translate */
    int epochs;             /* the epochs to train it: its last rung's (the plan's last) */
    kd_search_candidate best; /* its values and its report in the last rung it ran (val_acc -1 and
                                 rung 0 when it never ran: a budget of 1) */
} kd_search_result;
/* Successive halving over the recipes: T (1, 2, 4, 8; with a hinton or dkd term) x alpha (0.5,
 * 0.9, 1; with a hinton term) x a common scale of the feature and relation terms' weights (1, 0.1,
 * 10; when there are any) x mixup (0, 0.2, 1) x translate (0, 2 pixels; images only). The
 * augmentation is searched unless the teacher answers from tables only (teacher->n_models == 0:
 * logits from a file); a teacher with models and cached tables keeps the tables for the
 * candidates that do not augment and runs online for those that do. The searched values replace
 * terms' and base->aug's; the others stay. sc->budget candidates (at most the space) are drawn in
 * a seed-shuffled order of the product; rung by rung (kd_search_schedule) each trains its epochs
 * of base (no checkpoint, log or progress) from init's weights (same YAML, seed) on train, scored
 * on val (needed, n > 0), and the best ceil(n / eta) by validation accuracy (ties: the earlier
 * drawn) go on to the next rung, trained from scratch (the schedule depends on the epochs), best
 * first. Inside a rung a candidate more than 2 points behind the rung's best at the same epoch
 * stops there and is ranked by its accuracy then; a diverged one scores 0. Writes the winner to
 * *best. KD_STATUS_DIVERGED if every candidate of a rung diverged; KD_STATUS_INTERRUPTED if base's
 * stop flag was set; a candidate's other training error (e.g. augmentation on tables) is returned. */
kd_status kd_search(const kd_model *init, uint64_t seed, const kd_loss_term *terms, int n_terms,
                    const kd_teacher *teacher, const kd_dataset *train, const kd_dataset *val,
                    const kd_train_config *base, const kd_search_config *sc, kd_search_result *best,
                    kd_error *err);

/* ---- the distiller: evaluates a loss list for a student (src/distill/distiller.c) ---- */
typedef struct kd_distiller kd_distiller;
/* Resolve the terms' layers on student and teacher, check shapes (errors name the term and the
 * layer), build the regressors (seeded), and register the teacher features the terms need in
 * *teacher (so kd_teacher_cache caches them). teacher may be NULL only if every term is ce.
 * n_terms in [1, KD_MAX_LOSS_TERMS]. An ensemble teacher's soft targets are averaged at the
 * response terms' temperature, so with an ensemble those terms must share one T (else
 * KD_STATUS_BAD_ARG naming both). */
kd_status kd_distiller_create(kd_distiller **out, const kd_loss_term *terms, int n_terms, kd_model *student,
                              kd_teacher *teacher, uint64_t seed, kd_error *err);
/* The temperature the distiller runs its teacher at: that of its hinton/dkd terms (1 if none).
 * Pass it to kd_teacher_cache so cached ensemble rows are averaged as the terms consume them. */
float kd_distiller_teacher_T(const kd_distiller *d);
/* 1 when the teacher answers from tables (cached, or logits from a file): one row per original
 * image, so they belong to the unchanged images only (kd_train refuses augmentation with them). */
int kd_distiller_fixed_teacher(const kd_distiller *d);
void kd_distiller_free(kd_distiller *d);
/* Buffers for batch B and the regressors' optimizer. */
kd_status kd_distiller_prepare(kd_distiller *d, int batch, int threads, const struct kd_optim_config *optim,
                               kd_error *err);
/* After the student's training forward on in->x (its logits given): run the teacher on the same
 * batch (its own normalisation of in->px), evaluate every term, write d(loss)/d(logits) to dlogits
 * (B, C) and keep the features' gradients; returns the total loss in *loss. idx: original sample
 * indices (for teacher tables). */
kd_status kd_distiller_loss(kd_distiller *d, const float *logits, const kd_batch *in, const int32_t *idx,
                            const int32_t *y, int B, float label_smoothing, float *dlogits, float *loss,
                            kd_error *err);
/* Student backward from dlogits plus the features' gradients (student grads must be zeroed);
 * regressors' gradients were computed in kd_distiller_loss. */
void kd_distiller_backward(kd_distiller *d, const float *dlogits);
/* Regressors' optimizer step. */
void kd_distiller_step(kd_distiller *d, float lr);
/* Loss of term k in the last kd_distiller_loss (weighted). */
float kd_distiller_term_loss(const kd_distiller *d, int k);
int kd_distiller_n_terms(const kd_distiller *d);
const kd_loss_term *kd_distiller_term(const kd_distiller *d, int k);
/* Term k's learned regressor (FitNets, projected cosine), or NULL: its gradients are summed over
 * the ranks like the student's under mpirun. */
struct kd_model *kd_distiller_regressor(const kd_distiller *d, int k);
/* Regressors (learned parts of the loss) and their optimizer state, saved beside a training
 * checkpoint as PATH.kd<term> so --resume continues them too; nothing is written if there are none. */
kd_status kd_distiller_save(const kd_distiller *d, const char *ckpt_path, long long step, kd_error *err);
/* Where kd_distiller_save keeps the regressor of loss term k (0-based) beside ckpt_path. */
void kd_distiller_reg_path(char *buf, size_t n, const char *ckpt_path, int k);
kd_status kd_distiller_load(kd_distiller *d, const char *ckpt_path, long long step, kd_error *err);

/* ---- student initialised from the teacher (src/distill/init.c) ---- */
/* Copy the parameters (and batch-norm statistics) of teacher layers into student layers, as
 * DistilBERT takes every other teacher layer. map: "student_layer=teacher_layer,..." or NULL /
 * "auto" for every pair of layers with the same name, type and shapes. A named pair whose types
 * or shapes differ is an error naming both. Writes "conv1<-conv1 fc<-fc2" to report. */
kd_status kd_init_from_teacher(kd_model *student, const kd_model *teacher, const char *map, char *report,
                               size_t report_len, kd_error *err);


#ifdef __cplusplus
}
#endif
#endif
