/* The supervised training loop (cross-entropy) and evaluation.
 * Reproducibility: every random draw is a function of (seed, epoch, step): the epoch's shuffle
 * uses a generator seeded with (seed, epoch) and each step's augmentation and dropout one seeded
 * with (seed, global step). A run resumed from any checkpoint, even one written mid-epoch on
 * SIGINT, therefore draws exactly what the uninterrupted run drew and ends bit-identical.
 *
 * Data parallelism (mpirun, dist.h): `batch` is the global batch. Every rank draws the whole
 * global batch (shuffle, augmentation and mixing are cheap next to the model) and runs the model
 * on its contiguous share of it; dropout skips the other shares' draws (kd_model_set_shard). The
 * gradients, scaled by the share, are summed over the ranks with the step's loss, correct count
 * and stop request; every rank then takes the same update. The data order depends on the seed and
 * the global step only, so a checkpoint resumes under any number of ranks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "distill/checkpoint.h"
#include "distill/compress.h"
#include "distill/distill.h"
#include "distill/fileio.h"
#include "distill/train.h"
#include "train/data_parallel.h"
#include "train/progress.h"

void kd_train_config_default(kd_train_config *c) {
    *c = (kd_train_config){.epochs = 15, .batch = 128, .threads = 2, .seed = 1, .progress = 1};
    kd_optim_config_default(&c->optim);
}

double kd_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int kd_argmax(const float *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best] || (isnan(v[best]) && !isnan(v[i]))) best = i;
    return best;
}

int kd_logits_nonfinite(const float *logits, int B, int C, int *first) {
    int bad = 0;
    if (first) *first = -1;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            if (!isfinite(logits[(size_t)b * C + c])) {
                if (first && *first < 0) *first = b;
                bad++;
                break;
            }
    return bad;
}

kd_status kd_error_nonfinite(kd_error *err, const char *who, const char *name, int n_bad, int n_total,
                             const char *what, int first) {
    return kd_error_set(err, KD_STATUS_DIVERGED,
                        "%s %s outputs NaN or inf logits for %d of %d %ss (the first: %s %d): its weights are "
                        "corrupt or out of range", who, name, n_bad, n_total, what, what, first);
}

kd_status kd_model_check_data(const kd_model *m, const kd_dataset *ds, kd_error *err) {
    if (ds->c != m->in_c || ds->h != m->in_h || ds->w != m->in_w)
        return kd_error_set(err, KD_STATUS_MISMATCH, "data has %dx%dx%d samples, model %s expects %dx%dx%d", ds->c,
                            ds->h, ds->w, m->name, m->in_c, m->in_h, m->in_w);
    if (m->input_values != (ds->type == KD_DATA_F32))
        return kd_error_set(err, KD_STATUS_MISMATCH, "data has %s, model %s takes %s (input_type: %s)",
                            ds->type == KD_DATA_F32 ? "float values" : "8-bit pixels", m->name,
                            m->input_values ? "float values" : "8-bit pixels", m->input_values ? "values" : "pixels");
    return kd_dataset_check_labels(ds, m->n_classes, m->name, err);
}

kd_status kd_evaluate(kd_model *m, const kd_dataset *ds, int batch, int threads, kd_eval_result *res,
                      int32_t *predictions, kd_error *err) {
    memset(res, 0, sizeof *res);
    kd_status st = kd_model_check_data(m, ds, err);
    if (st || (st = kd_model_set_batch(m, batch, threads, err))) return st;
    size_t in_size = (size_t)m->in_c * m->in_h * m->in_w;
    float *x = malloc((size_t)batch * in_size * sizeof(float));
    float *probs = malloc((size_t)batch * m->n_classes * sizeof(float));
    int32_t *y = malloc((size_t)batch * sizeof(int32_t)), *idx = malloc((size_t)batch * sizeof(int32_t));
    if (!x || !probs || !y || !idx) {
        free(x); free(probs); free(y); free(idx);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    }
    double t0 = kd_now(), loss = 0.0;
    long correct = 0;
    int n_bad = 0, first_bad = -1;
    /* Under mpirun each rank evaluates its share and the sums are reduced (not when the caller
     * wants every prediction: then every rank evaluates the whole set). */
    int N = predictions ? 1 : kd_dist_size();
    long long lo = 0, hi = ds->n;
    if (N > 1) kd_dist_share(ds->n, kd_dist_rank(), N, &lo, &hi);
    for (int s = (int)lo; s < hi; s += batch) {
        int B = hi - s < batch ? (int)(hi - s) : batch;
        for (int b = 0; b < B; b++) idx[b] = s + b;
        kd_batch_fill(x, y, ds, m->norm_mean, m->norm_std, idx, B);
        const float *logits = kd_model_forward(m, x, B, 0, NULL);
        int f, nb = kd_logits_nonfinite(logits, B, m->n_classes, &f);
        if (nb && !n_bad) first_bad = s + f;
        n_bad += nb;
        loss += (double)kd_cross_entropy_forward(probs, logits, y, B, m->n_classes, 0.f) * B;
        for (int b = 0; b < B; b++) {
            int p = kd_argmax(logits + (size_t)b * m->n_classes, m->n_classes);
            correct += p == y[b];
            if (predictions) predictions[s + b] = p;
        }
    }
    if (N > 1) {
        /* the sums, then every rank's first bad image in its own slot, to name the first overall */
        double *sums = calloc((size_t)N + 3, sizeof(double));
        if (!sums) st = kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
        else {
            sums[0] = loss, sums[1] = (double)correct, sums[2] = n_bad, sums[3 + kd_dist_rank()] = first_bad;
            st = kd_dist_sum_f64(sums, (size_t)N + 3, err);
            loss = sums[0], correct = (long)sums[1], n_bad = (int)sums[2], first_bad = -1;
            for (int r = 0; r < N && n_bad; r++)
                if (sums[3 + r] >= 0 && (first_bad < 0 || sums[3 + r] < first_bad)) first_bad = (int)sums[3 + r];
        }
        free(sums);
        if (st) {
            free(x); free(probs); free(y); free(idx);
            return st;
        }
    }
    res->n = ds->n;
    res->accuracy = ds->n ? (double)correct / ds->n : 0.0;
    res->loss = ds->n ? loss / ds->n : 0.0;
    res->seconds = kd_now() - t0;
    free(x); free(probs); free(y); free(idx);
    if (n_bad) return kd_error_nonfinite(err, "model", m->name, n_bad, ds->n, "image", first_bad);
    return KD_STATUS_OK;
}

kd_status kd_evaluate_agreement(kd_model *a, kd_model *b, const kd_dataset *ds, int batch, int threads,
                                kd_eval_result *ra, kd_eval_result *rb, int *n_agree, kd_error *err) {
    int32_t *pa = malloc(sizeof(int32_t) * (size_t)(ds->n ? ds->n : 1));
    int32_t *pb = malloc(sizeof(int32_t) * (size_t)(ds->n ? ds->n : 1));
    kd_status st = KD_STATUS_OK;
    if (!pa || !pb) st = kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    else if (!(st = kd_evaluate(a, ds, batch, threads, ra, pa, err)) &&
             !(st = kd_evaluate(b, ds, batch, threads, rb, pb, err))) {
        *n_agree = 0;
        for (int i = 0; i < ds->n; i++) *n_agree += pa[i] == pb[i];
    }
    free(pa);
    free(pb);
    return st;
}

/* Global L2 norm of the gradients; scales them down to max_norm if larger (0 = never). */
static double clip_grads(kd_model *m, float max_norm) {
    double ss = 0.0;
    for (size_t i = 0; i < m->n_params; i++) ss += (double)m->grads[i] * m->grads[i];
    double norm = sqrt(ss);
    if (max_norm > 0.f && norm > max_norm) {
        float s = (float)(max_norm / (norm + 1e-6));
        for (size_t i = 0; i < m->n_params; i++) m->grads[i] *= s;
    }
    return norm;
}

/* One line of the --log file. A line that cannot be written (a full disk) stops the run: the log
 * was asked for, and the checkpoint written next would fail the same way. */
static kd_status append_log(const kd_train_config *cfg, const char *line, int epoch, kd_error *err) {
    if (!cfg->log_path || kd_dist_rank() != 0) return KD_STATUS_OK;
    kd_error e;
    kd_status st = kd_append_file(cfg->log_path, line, strlen(line), &e);
    if (st)
        return kd_error_set(err, st, "stopped at the end of epoch %d, which is not saved: %s", epoch, e.msg);
    return KD_STATUS_OK;
}

/* The training checkpoint, and beside it the distiller's regressors (first, so a crash between
 * the two leaves them ahead, which resume detects by their step). */
static kd_status save_state(const kd_train_config *cfg, const kd_model *m, const kd_optimizer *opt,
                            const kd_train_state *ts, kd_error *err) {
    kd_status st;
    if (kd_dist_rank() != 0) return KD_STATUS_OK; /* the ranks' states are identical: one writer */
    if (cfg->distiller && (st = kd_distiller_save(cfg->distiller, cfg->checkpoint_path, ts->step, err))) return st;
    return kd_checkpoint_save(cfg->checkpoint_path, m, opt, ts, err);
}

/* Every step reseeds the generator with (seed, RNG_STEP_STREAM + step) before its draws, so the
 * state a checkpoint saved is that seeding advanced by the last step's draws. */
#define RNG_STEP_STREAM 0xa000000000ULL

/* A run resumed from a checkpoint must be the run that wrote it: its stored optimizer settings in
 * range (kd_optim_config_check, as the command line's), the same as this run's, the same seed
 * (the saved random state follows from it: a few million draws at most from the step's seeding
 * for the right seed, a random 64-bit distance for another), no fewer epochs than it completed.
 * Other options (--epochs, --log, --threads, --output) may change. */
static kd_status resume_check(const kd_train_config *cfg, const kd_optim_config *stored, const kd_train_state *ts,
                              kd_error *err) {
    kd_error e2;
    if (kd_optim_config_check(stored, &e2))
        return kd_error_set(err, KD_STATUS_BAD_FILE, "its optimizer setting %s", e2.msg);
    if (kd_optim_config_compare(&cfg->optim, stored, &e2))
        return kd_error_set(err, KD_STATUS_MISMATCH, "this run asks for %s; a resumed run keeps its settings (give the "
                            "same options, or start afresh without --resume)", e2.msg);
    kd_rng seeded;
    kd_rng_seed(&seeded, cfg->seed, ts->rng.inc >> 1);
    if (kd_rng_distance(&seeded, &ts->rng) > (1ULL << 40))
        return kd_error_set(err, KD_STATUS_MISMATCH, "it was trained with another seed than this run's %llu (its random "
                            "state does not follow from it)", (unsigned long long)cfg->seed);
    if (ts->epoch > cfg->epochs)
        return kd_error_set(err, KD_STATUS_MISMATCH, "it has completed %d epochs, more than this run's %d", ts->epoch,
                            cfg->epochs);
    return KD_STATUS_OK;
}

/* What data parallelism over `ranks` processes needs of the run: a share of every global batch
 * for each rank, and with per-rank batch norm at least 2 samples in each share (the variance of
 * one sample is 0). */
static kd_status dp_check(const kd_model *m, int n_train, const kd_train_config *cfg, int ranks, kd_error *err) {
    if (cfg->batch < ranks)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "--batch %d is the global batch, shared by the %d ranks: it needs "
                            "at least one sample per rank", cfg->batch, ranks);
    int has_bn = 0;
    for (int i = 0; i < m->n_layers; i++) has_bn |= m->layers[i].type == KD_LAYER_BATCHNORM;
    int steps = kd_train_steps_per_epoch(n_train, cfg), last = n_train - (steps - 1) * cfg->batch;
    if (last > cfg->batch) last = cfg->batch;
    int smallest = (cfg->batch < last ? cfg->batch : last) / ranks;
    if (has_bn && !cfg->sync_bn && smallest < 2)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "model %s has batch norm, which each rank computes on its own share "
                            "of the batch, and the %s batch of %d samples leaves a rank %d: give a --batch that leaves "
                            "every rank at least 2 samples, or --sync-bn (statistics over the global batch)", m->name,
                            last < cfg->batch ? "epoch's last" : "global", last < cfg->batch ? last : cfg->batch,
                            smallest);
    return KD_STATUS_OK;
}

/* After this rank's backward on Bl of the global B samples: the student's and the regressors'
 * gradients summed over the ranks (each scaled by Bl / B, its part of the mean), with the loss,
 * the correct count and the stop request, so every rank sees the global step. With buckets the
 * student's sums were started during the backward pass: they are finished here. */
static kd_status dp_step(kd_model *m, kd_distiller *kd, int Bl, int B, float *loss, long *correct, int *stop,
                         kd_dp_buckets *buckets, kd_error *err) {
    double stats[3] = {(double)*loss * Bl, (double)*correct, (double)*stop};
    float scale = (float)Bl / (float)B;
    kd_status st = buckets ? kd_dp_buckets_end(buckets, err) : KD_STATUS_OK; /* started during backward */
    if (!st) st = kd_dp_sum_grads(m->grads, buckets ? 0 : m->n_params, scale, stats, 3, err);
    for (int k = 0; kd && !st && k < kd_distiller_n_terms(kd); k++) {
        kd_model *r = kd_distiller_regressor(kd, k);
        if (r) st = kd_dp_sum_grads(r->grads, r->n_params, scale, NULL, 0, err);
    }
    *loss = (float)(stats[0] / B);
    *correct = (long)stats[1];
    *stop = stats[2] > 0;
    return st;
}

int kd_train_steps_per_epoch(int n_train, const kd_train_config *cfg) {
    /* The last partial batch is kept unless it holds a single sample (no batch statistics). */
    int steps = (n_train + cfg->batch - 1) / cfg->batch;
    if (n_train % cfg->batch == 1) steps--;
    if (cfg->max_steps_per_epoch > 0 && steps > cfg->max_steps_per_epoch) steps = cfg->max_steps_per_epoch;
    return steps;
}

kd_status kd_train(kd_model *m, const kd_dataset *train, const kd_dataset *val, const kd_train_config *cfg,
                   kd_train_result *res, kd_error *err) {
    memset(res, 0, sizeof *res);
    res->resumed_step = -1;
    if (cfg->epochs < 1 || cfg->batch < 2 || cfg->threads < 1)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "epochs >= 1, batch >= 2 and threads >= 1 are required");
    if (train->n < 2) return kd_error_set(err, KD_STATUS_BAD_ARG, "the training set needs at least 2 samples");
    kd_distiller *kd = cfg->distiller;
    kd_status st = kd_model_check_data(m, train, err);
    if (!st && val) st = kd_model_check_data(m, val, err); /* before an epoch is spent */
    if (st || (st = kd_model_set_batch(m, cfg->batch, cfg->threads, err))) return st;
    if ((cfg->aug.translate || cfg->aug.hflip || cfg->aug.cutmix > 0.f) && train->h == 1 && train->w == 1)
        return kd_error_set(err, KD_STATUS_BAD_ARG,
                            "%s: the samples are %d features (%dx1x1, a table or feature vectors), not images: "
                            "--translate, --hflip and --cutmix shift, flip and cut images and have nothing to move "
                            "here; train without them (--mixup works on tables)",
                            train->labels_path[0] ? train->labels_path : "the data", train->c, train->c);
    if (!(cfg->aug.mixup >= 0.f && cfg->aug.cutmix >= 0.f && cfg->aug.mix_prob >= 0.f && cfg->aug.mix_prob <= 1.f))
        return kd_error_set(err, KD_STATUS_BAD_ARG, "mixup and cutmix need a Beta parameter >= 0 and mix_prob in [0, 1]");
    int ranks = kd_dist_size();
    if (ranks > 1 && (st = dp_check(m, train->n, cfg, ranks, err))) return st;
    if (kd && kd_augment_any(&cfg->aug) && kd_distiller_fixed_teacher(kd))
        return kd_error_set(err, KD_STATUS_BAD_ARG,
                            "the teacher's outputs are fixed per training image (logits from a file, or cached), so "
                            "the images must not change: augmentation (--translate, --hflip, --mixup, --cutmix) "
                            "would pair them with other images; give a teacher checkpoint to score each view");
    if (kd && (st = kd_distiller_prepare(kd, cfg->batch, cfg->threads, &cfg->optim, err))) return st;
    kd_optimizer opt;
    if ((st = kd_optimizer_init(&opt, &cfg->optim, m, err))) return st;

    int steps = kd_train_steps_per_epoch(train->n, cfg);
    kd_train_state ts = {0};
    ts.best_val_acc = -1.f;
    if (cfg->resume && cfg->checkpoint_path) {
        int has_state = 0;
        kd_error e2;
        kd_status ls = kd_checkpoint_load_into(cfg->checkpoint_path, m, &opt, &ts, &has_state, &e2);
        if (ls == KD_STATUS_NOT_FOUND) {
            /* nothing to resume: start fresh */
        } else if (ls) {
            kd_optimizer_free(&opt);
            return kd_error_set(err, ls, "cannot resume: %s", e2.msg);
        } else if (!has_state) {
            kd_optimizer_free(&opt);
            return kd_error_set(err, KD_STATUS_BAD_ARG, "cannot resume: %s holds no training state",
                                cfg->checkpoint_path);
        } else if ((ls = resume_check(cfg, &opt.cfg, &ts, &e2))) {
            kd_optimizer_free(&opt);
            return kd_error_set(err, ls, "cannot resume from %s: %s", cfg->checkpoint_path, e2.msg);
        } else if (ts.step < (long long)ts.epoch * steps || ts.step - (long long)ts.epoch * steps >= steps) {
            kd_optimizer_free(&opt);
            return kd_error_set(err, KD_STATUS_MISMATCH,
                                "cannot resume from %s: it stopped at step %lld of epoch %d, which does not fit "
                                "%d steps per epoch (different data or batch size?)",
                                cfg->checkpoint_path, ts.step, ts.epoch + 1, steps);
        } else if (kd && (ls = kd_distiller_load(kd, cfg->checkpoint_path, ts.step, &e2))) {
            kd_optimizer_free(&opt);
            return kd_error_set(err, ls, "cannot resume: %s", e2.msg);
        } else {
            res->resumed_step = ts.step;
        }
    }

    if (cfg->prune && ts.step > 0 && (st = kd_prune_mask_from_zeros(&cfg->prune->mask, m, err))) {
        kd_optimizer_free(&opt);
        return st;
    }
    size_t in_size = (size_t)m->in_c * m->in_h * m->in_w;
    float *x = malloc((size_t)cfg->batch * in_size * sizeof(float));
    uint8_t *px = malloc((size_t)cfg->batch * kd_dataset_sample_bytes(train)); /* the augmented samples x is made from */
    float *probs = malloc((size_t)cfg->batch * m->n_classes * sizeof(float));
    float *dlogits = malloc((size_t)cfg->batch * m->n_classes * sizeof(float));
    int32_t *y = malloc((size_t)cfg->batch * sizeof(int32_t));
    int32_t *perm = malloc((size_t)train->n * sizeof(int32_t));
    int32_t *oidx = malloc((size_t)cfg->batch * sizeof(int32_t)); /* original sample indices */
    int mixes = kd_augment_mixes(&cfg->aug);
    int32_t *y2 = mixes ? malloc((size_t)cfg->batch * sizeof(int32_t)) : NULL; /* mixed batches: partners' labels */
    float *lam = mixes ? malloc((size_t)cfg->batch * sizeof(float)) : NULL;
    uint8_t *unmixed = mixes ? malloc((size_t)cfg->batch * kd_dataset_sample_bytes(train)) : NULL;
    if (!x || !px || !probs || !dlogits || !y || !perm || !oidx || (mixes && (!y2 || !lam || !unmixed))) {
        st = kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
        goto done;
    }
    /* the model's data-parallel hooks, reset at done: */
    if (ranks > 1 && cfg->sync_bn && (st = kd_model_set_sync_bn(m, kd_dp_bn_sum, NULL, err))) goto done;
    kd_dp_buckets buckets;
    int overlap = ranks > 1 && cfg->bucket_kb > 0;
    if (overlap) kd_model_set_grad_ready(m, kd_dp_grad_ready, &buckets);
    int show = cfg->progress && kd_dist_rank() == 0; /* rank 0 speaks for the job */
    size_t sample_bytes = kd_dataset_sample_bytes(train);
    kd_progress prog;
    kd_progress_init(&prog, cfg->out ? cfg->out : stderr, show);
    kd_dist_barrier(); /* the ranks' loading is not training time */
    double t_start = kd_now(), comm0 = kd_dist_comm_seconds();
    double t_timed = 0.0; /* the estimate of the run's time: from its second step on */
    long long samples_total = 0, step0 = ts.step;
    int estimated = 0;
    for (int epoch = ts.epoch; epoch < cfg->epochs; epoch++) {
        kd_rng shuffle;
        kd_rng_seed(&shuffle, cfg->seed, 0x5eed0000ULL + (uint64_t)epoch);
        for (int i = 0; i < train->n; i++) perm[i] = i;
        kd_rng_shuffle(&shuffle, perm, train->n);
        int first = (int)(ts.step - (long long)epoch * steps);
        double loss_sum = 0.0, t_epoch = kd_now();
        long correct = 0, seen = 0;
        kd_progress_epoch_start(&prog, epoch, cfg->epochs, steps, first);
        for (int s = first; s < steps; s++) {
            int off = s * cfg->batch;
            int B = train->n - off < cfg->batch ? train->n - off : cfg->batch;
            kd_rng_seed(&ts.rng, cfg->seed, RNG_STEP_STREAM + (uint64_t)ts.step);
            kd_batch_pixels(px, y, train, perm + off, B, &cfg->aug, &ts.rng);
            if (mixes) kd_batch_mix(px, y2, lam, unmixed, y, train, B, &cfg->aug, &ts.rng);
            int lo = 0, Bl = B; /* this rank's share of the global batch: [lo, lo + Bl) */
            if (ranks > 1) {
                kd_dp_share(B, &lo, &Bl);
                kd_model_set_shard(m, lo, B);
            }
            const uint8_t *pxl = px + (size_t)lo * sample_bytes;
            int32_t *yl = y + lo, *y2l = y2 ? y2 + lo : NULL;
            float *laml = lam ? lam + lo : NULL;
            kd_batch_normalize(x, pxl, Bl, train, m->norm_mean, m->norm_std);
            const float *logits = kd_model_forward(m, x, Bl, 1, &ts.rng);
            float loss;
            kd_model_zero_grad(m);
            if (overlap) kd_dp_buckets_begin(&buckets, m->grads, m->n_params, (size_t)cfg->bucket_kb * 256, (float)Bl / B);
            if (kd) {
                for (int b = 0; b < Bl; b++) oidx[b] = kd_dataset_orig_index(train, perm[off + lo + b]);
                /* the teacher's own input from px: the very view the student sees */
                kd_batch in = {train, pxl, x, m->norm_mean, m->norm_std, y2l, laml};
                if ((st = kd_distiller_loss(kd, logits, &in, oidx, yl, Bl, cfg->label_smoothing, dlogits, &loss, err)))
                    goto done;
                kd_distiller_backward(kd, dlogits);
            } else {
                loss = kd_cross_entropy_mix_forward(probs, logits, yl, y2l, laml, Bl, m->n_classes, cfg->label_smoothing);
                memset(dlogits, 0, (size_t)Bl * m->n_classes * sizeof(float));
                kd_cross_entropy_mix_backward(dlogits, probs, yl, y2l, laml, Bl, m->n_classes, cfg->label_smoothing, 1.f);
                kd_model_backward(m, dlogits);
            }
            long step_correct = 0;
            for (int b = 0; b < Bl; b++) step_correct += kd_argmax(logits + (size_t)b * m->n_classes, m->n_classes) == yl[b];
            int stop = cfg->stop && *cfg->stop;
            if (ranks > 1 && (st = dp_step(m, kd, Bl, B, &loss, &step_correct, &stop, overlap ? &buckets : NULL, err)))
                goto done;
            double gnorm = clip_grads(m, cfg->clip_grad_norm);
            if (!isfinite(loss) || !isfinite(gnorm)) {
                kd_progress_end_line(&prog);
                st = kd_error_set(err, KD_STATUS_DIVERGED,
                                  "training diverged at epoch %d step %d (loss %g, gradient norm %g): stopped "
                                  "without saving; the last good checkpoint%s%s is kept. Try a lower --lr or "
                                  "--clip-grad.",
                                  epoch + 1, s + 1, (double)loss, gnorm, cfg->checkpoint_path ? " " : "",
                                  cfg->checkpoint_path ? cfg->checkpoint_path : "");
                goto done;
            }
            /* opt.cfg: on resume the checkpoint's recipe, so a continued run is the same run */
            float lr = kd_schedule_lr(&opt.cfg, epoch + (double)(s + 1) / steps, cfg->epochs);
            kd_optimizer_step(&opt, m, lr);
            if (kd) kd_distiller_step(kd, lr);
            ts.step++;
            if (!estimated && show) {
                /* Long schedules are cheap to ask for, not to sit through: say what this one costs as
                 * soon as a few steps tell (the first is left out: it sets up the kernels). */
                long long timed = ts.step - step0 - 1, total = (long long)steps * cfg->epochs;
                double now = kd_now();
                /* a short run: at the end of its first epoch, if a step is left to estimate */
                int epoch_end = s + 1 == steps && timed >= 1 && ts.step < total;
                if (timed == 0) t_timed = now;
                else if (ts.step == total) estimated = 1; /* nothing left to estimate */
                else if (timed >= 20 || (timed >= 3 && now - t_timed >= 2.0) || epoch_end) {
                    double per = (now - t_timed) / (double)timed;
                    char eta[32];
                    kd_format_duration(eta, sizeof eta, per * (double)(total - ts.step));
                    kd_progress_message(&prog, "time: about %s for the %lld steps left of %d epochs (%.1f ms a step, "
                                        "timed on %lld; each epoch's validation adds to it)\n", eta,
                                        total - ts.step, cfg->epochs, 1e3 * per, timed);
                    estimated = 1;
                }
            }
            if (cfg->prune && (st = kd_prune_schedule_step(cfg->prune, m, ts.step, err))) goto done;
            loss_sum += (double)loss * B;
            correct += step_correct;
            seen += B;
            samples_total += B;
            kd_progress_step(&prog, s + 1, loss_sum / seen, (double)correct / seen, seen, lr);
            if (stop) {
                kd_progress_end_line(&prog);
                if (ranks > 1 && (st = kd_dp_sync_model(m, m->name, err))) goto done;
                if (cfg->checkpoint_path) {
                    ts.epoch = epoch;
                    if (s + 1 == steps) ts.epoch = epoch + 1;
                    if ((st = save_state(cfg, m, &opt, &ts, err))) goto done;
                }
                st = kd_error_set(err, KD_STATUS_INTERRUPTED,
                                  "interrupted at epoch %d step %d%s%s", epoch + 1, s + 1,
                                  cfg->checkpoint_path ? "; state saved to " : "",
                                  cfg->checkpoint_path ? cfg->checkpoint_path : "");
                goto done;
            }
        }
        double epoch_sec = kd_now() - t_epoch;
        /* the ranks' running statistics averaged, and their weights checked equal, before the
         * sharded validation and the checkpoint */
        if (ranks > 1 && (st = kd_dp_sync_model(m, m->name, err))) goto done;
        kd_eval_result vr = {0};
        if (val && val->n > 0) {
            if ((st = kd_evaluate(m, val, cfg->batch, cfg->threads, &vr, NULL, err))) goto done;
            if (vr.accuracy > ts.best_val_acc) ts.best_val_acc = (float)vr.accuracy;
        }
        res->last_val = vr;
        double sps = seen / (epoch_sec > 0 ? epoch_sec : 1e-9);
        kd_progress_epoch_end(&prog, loss_sum / (seen ? seen : 1), (double)correct / (seen ? seen : 1),
                              val && val->n ? &vr : NULL, sps, epoch_sec);
        char line[512];
        snprintf(line, sizeof line,
                 "{\"epoch\": %d, \"step\": %lld, \"lr\": %.6g, \"train_loss\": %.6f, \"train_acc\": %.6f, "
                 "\"val_loss\": %.6f, \"val_acc\": %.6f, \"samples_per_sec\": %.1f, \"seconds\": %.3f}\n",
                 epoch + 1, ts.step, (double)kd_schedule_lr(&opt.cfg, epoch + 1.0, cfg->epochs),
                 loss_sum / (seen ? seen : 1), (double)correct / (seen ? seen : 1), vr.loss, vr.accuracy, sps,
                 epoch_sec);
        if ((st = append_log(cfg, line, epoch + 1, err))) goto done;
        ts.epoch = epoch + 1;
        res->epochs_run++;
        if (cfg->checkpoint_path && (st = save_state(cfg, m, &opt, &ts, err))) goto done;
        if (cfg->on_epoch && cfg->on_epoch(cfg->on_epoch_ctx, epoch + 1, &vr)) break;
    }
    res->train_seconds = kd_now() - t_start;
    res->comm_seconds = kd_dist_comm_seconds() - comm0;
    res->samples_per_sec = samples_total / (res->train_seconds > 0 ? res->train_seconds : 1e-9);
done:
    if (ranks > 1) {
        kd_model_set_shard(m, 0, 0);
        kd_model_set_sync_bn(m, NULL, NULL, NULL);
        kd_model_set_grad_ready(m, NULL, NULL);
    }
    free(x); free(px); free(probs); free(dlogits); free(y); free(perm); free(oidx);
    free(y2); free(lam); free(unmixed);
    kd_optimizer_free(&opt);
    return st;
}
