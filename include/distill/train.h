/* Optimizers, learning-rate schedules, the training loop and evaluation. */
#ifndef DISTILL_TRAIN_H
#define DISTILL_TRAIN_H
#include <stdint.h>
#include <stdio.h>
#include "distill/data.h"
#include "distill/model.h"
#include "distill/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kd_opt_type { KD_OPT_SGD = 0, KD_OPT_ADAMW } kd_opt_type;
typedef enum kd_sched_type { KD_SCHED_CONST = 0, KD_SCHED_STEP, KD_SCHED_COSINE } kd_sched_type;

typedef struct kd_optim_config {
    kd_opt_type type;
    float lr;               /* peak learning rate */
    float momentum;         /* SGD */
    int nesterov;           /* SGD */
    float beta1, beta2, eps;/* AdamW */
    float weight_decay;     /* SGD: L2 added to the gradient; AdamW: decoupled. Applied to conv and
                               linear weights only (not biases, not batch-norm parameters). */
    kd_sched_type sched;
    float warmup_epochs;    /* linear warmup from 0 over this many epochs (may be fractional) */
    int step_epochs;        /* step schedule: multiply by step_gamma every step_epochs */
    float step_gamma;
    float min_lr;           /* cosine floor */
} kd_optim_config;

void kd_optim_config_default(kd_optim_config *c); /* SGD momentum 0.9, lr 0.05, cosine, wd 5e-4 */
/* Their names, as the command line and checkpoints spell them. */
static inline const char *kd_opt_type_name(kd_opt_type t) { return t == KD_OPT_ADAMW ? "adamw" : "sgd"; }
static inline const char *kd_sched_name(kd_sched_type s) {
    return s == KD_SCHED_STEP ? "step" : s == KD_SCHED_COSINE ? "cosine" : "const";
}

/* The accepted range of a numeric setting of kd_optim_config, one table for the command line's
 * options and for the configuration a checkpoint stores: field as named in kd_optim_config,
 * option the command line's (NULL when it has none). */
typedef struct kd_optim_range {
    const char *field, *option;
    double lo, hi;
} kd_optim_range;
const kd_optim_range *kd_optim_range_find(const char *field); /* NULL for an unknown field */
/* Every setting of c in its range: KD_STATUS_BAD_ARG, "lr is -1, outside [1e-09, 100] (as --lr)". */
kd_status kd_optim_config_check(const kd_optim_config *c, kd_error *err);
/* A resumed run must be the run it continues: KD_STATUS_MISMATCH naming the first setting where run
 * differs from stored, by its option, "--lr 0.5 (the checkpoint's: 0.05)". */
kd_status kd_optim_config_compare(const kd_optim_config *run, const kd_optim_config *stored, kd_error *err);

typedef struct kd_optimizer {
    kd_optim_config cfg;
    size_t n;               /* number of parameters */
    float *m;               /* momentum / first moment (n) */
    float *v;               /* AdamW second moment (n), NULL for SGD */
    long long t;            /* steps taken */
} kd_optimizer;

kd_status kd_optimizer_init(kd_optimizer *o, const kd_optim_config *c, const kd_model *m, kd_error *err);
/* The same for any parameter block of n_params floats (the language models' kd_lm). */
kd_status kd_optimizer_init_n(kd_optimizer *o, const kd_optim_config *c, size_t n_params, kd_error *err);
void kd_optimizer_free(kd_optimizer *o);
/* One update of m->params from m->grads at learning rate lr. */
void kd_optimizer_step(kd_optimizer *o, kd_model *m, float lr);
/* The same step on any parameter block laid out as the optimizer's moments: kd_optimizer_begin_step
 * once (counts the step for AdamW's bias correction), then kd_optimizer_update for each span
 * [off, off + n) of params/grads (block base pointers), with weight decay if decay is non-zero. */
void kd_optimizer_begin_step(kd_optimizer *o);
void kd_optimizer_update(kd_optimizer *o, float *params, const float *grads, size_t off, size_t n, int decay, float lr);
/* Learning rate at a (fractional) epoch, given the total number of epochs. */
float kd_schedule_lr(const kd_optim_config *c, double epoch, int total_epochs);

/* Everything a resumed run needs besides parameters and optimizer moments. */
typedef struct kd_train_state {
    int epoch;              /* epochs completed */
    long long step;         /* optimizer steps taken */
    kd_rng rng;             /* shuffling, augmentation, dropout */
    float best_val_acc;
} kd_train_state;

struct kd_eval_result;

typedef struct kd_train_config {
    int epochs;
    int batch;
    int threads;
    uint64_t seed;
    kd_optim_config optim;
    float label_smoothing;
    float clip_grad_norm;       /* 0 = off */
    kd_augment aug;
    const char *checkpoint_path; /* written atomically after every epoch; NULL = none */
    const char *log_path;        /* JSON lines, one per epoch; NULL = none */
    int resume;                  /* continue from checkpoint_path if it holds a training state */
    int progress;                /* 0 quiet, 1 progress (one updating line on a tty) */
    FILE *out;                   /* where progress goes (stderr if NULL) */
    int max_steps_per_epoch;     /* 0 = whole epoch (tests use small values) */
    int sync_bn;                 /* under mpirun: batch-norm statistics over the global batch
                                    (default: each rank's own share; dist.h) */
    int bucket_kb;               /* under mpirun: start summing each bucket of this many KB of
                                    gradients during the backward pass; 0 = one sum after it */
    /* Distillation: the loss list, teacher and regressors (distill.h); NULL = plain cross-entropy.
     * Its regressors are checkpointed beside checkpoint_path and resumed with it. */
    struct kd_distiller *distiller;
    /* Gradual magnitude pruning (compress.h, AGP); NULL = none. On resume the mask is taken as
     * the weights that are exactly zero. */
    struct kd_prune_schedule *prune;
    /* Called after each epoch with its validation result (zeros without a validation set);
     * returning non-zero ends training there (early stopping, budgeted search). */
    int (*on_epoch)(void *ctx, int epoch, const struct kd_eval_result *val);
    void *on_epoch_ctx;
    const volatile int *stop;    /* if non-NULL and set (e.g. by a SIGINT handler), stop after
                                    the current step with KD_STATUS_INTERRUPTED */
} kd_train_config;

void kd_train_config_default(kd_train_config *c);

typedef struct kd_eval_result {
    double accuracy;    /* fraction in [0, 1] */
    double loss;        /* mean cross-entropy */
    int n;
    double seconds;
} kd_eval_result;

typedef struct kd_train_result {
    int epochs_run;         /* in this call */
    long long resumed_step; /* the checkpoint's step when the run continued one, else -1 */
    double train_seconds;
    double samples_per_sec;
    double comm_seconds;    /* under mpirun: of train_seconds, in the gradient sums (waits included) */
    kd_eval_result last_val;
} kd_train_result;

kd_status kd_train(kd_model *m, const kd_dataset *train, const kd_dataset *val, const kd_train_config *cfg,
                   kd_train_result *res, kd_error *err);
/* Optimizer steps kd_train takes per epoch on n_train samples with cfg's batch and
 * max_steps_per_epoch (a last batch of one sample is dropped); schedules over a run use it. */
int kd_train_steps_per_epoch(int n_train, const kd_train_config *cfg);
/* Evaluate in eval mode (running BN stats, no dropout). predictions (ds->n) may be NULL.
 * KD_STATUS_DIVERGED (kd_error_nonfinite) when the model outputs NaN or inf for any image. */
/* KD_STATUS_MISMATCH unless ds fits m: the same sample shape, the same kind of input (8-bit pixels,
 * or float values: kd_model.input_values) and every label below m's class count. The one check of
 * data against a model (training, evaluation, and the CLI when it loads data for a checkpoint). */
kd_status kd_model_check_data(const kd_model *m, const kd_dataset *ds, kd_error *err);
kd_status kd_evaluate(kd_model *m, const kd_dataset *ds, int batch, int threads, kd_eval_result *res,
                      int32_t *predictions, kd_error *err);
/* Evaluate a and b (e.g. student and teacher) on ds, and count the samples where their top-1
 * predictions agree (*n_agree of ds->n). */
kd_status kd_evaluate_agreement(kd_model *a, kd_model *b, const kd_dataset *ds, int batch, int threads,
                                kd_eval_result *ra, kd_eval_result *rb, int *n_agree, kd_error *err);

/* Index of the largest of v[0..n) (n >= 1; ties: the lowest index). NaN never wins; all NaN: 0.
 * Every top-1 of the library and the CLI goes through it, so non-finite outputs never index memory. */
int kd_argmax(const float *v, int n);
/* Rows among B rows of C logits that hold NaN or inf; *first (may be NULL) gets the first such
 * row, or -1. */
int kd_logits_nonfinite(const float *logits, int B, int C, int *first);
/* The one message for a model that outputs NaN/inf: KD_STATUS_DIVERGED, "<who> <name> outputs NaN
 * or inf logits for <n_bad> of <n_total> <what>s (the first: <what> <first>): ...". who: "model" or
 * "teacher"; what: "image", "training image". */
kd_status kd_error_nonfinite(kd_error *err, const char *who, const char *name, int n_bad, int n_total,
                             const char *what, int first);

double kd_now(void);                                          /* monotonic seconds */
void kd_format_duration(char *buf, size_t n, double seconds); /* "1h02m", "3m05s", "12s" */

#ifdef __cplusplus
}
#endif
#endif
