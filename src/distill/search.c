/* Budgeted hyper-parameter search for distillation (kd_search, `distill kd --search`): a grid over
 * T, alpha and a common scale of the non-response terms' weights, cut to the budget by taking
 * evenly spaced points; each candidate trains from the same initialisation on the training split
 * and is scored on the validation split held out of the training set. A candidate stops early
 * when, after an epoch, it trails the best validation accuracy any earlier candidate had at that
 * epoch by more than 2 points. */
#include <string.h>

#include "distill/distill.h"

#define KD_SEARCH_MAX_EPOCHS 64

typedef struct {
    float best_at[KD_SEARCH_MAX_EPOCHS];
    int n_epochs;
    float acc_at[KD_SEARCH_MAX_EPOCHS];
} search_ctx;

static int search_on_epoch(void *ctx, int epoch, const kd_eval_result *val) {
    search_ctx *c = ctx;
    if (epoch > KD_SEARCH_MAX_EPOCHS) return 0;
    c->acc_at[epoch - 1] = (float)val->accuracy;
    c->n_epochs = epoch;
    return c->best_at[epoch - 1] > 0.f && val->accuracy < c->best_at[epoch - 1] - 0.02f;
}

static void apply_candidate(kd_loss_term *dst, const kd_loss_term *src, int n, float T, float alpha, float fscale) {
    for (int k = 0; k < n; k++) {
        dst[k] = src[k];
        if (dst[k].kind == KD_LOSS_HINTON || dst[k].kind == KD_LOSS_DKD) dst[k].T = T;
        if (dst[k].kind == KD_LOSS_HINTON) dst[k].alpha = alpha;
        if (dst[k].kind >= KD_LOSS_FITNET) dst[k].weight *= fscale;
    }
}

static int has_kind(const kd_loss_term *t, int n, int lo, int hi) {
    for (int k = 0; k < n; k++)
        if ((int)t[k].kind >= lo && (int)t[k].kind <= hi) return 1;
    return 0;
}

void kd_search_config_default(kd_search_config *c) {
    memset(c, 0, sizeof *c);
    c->epochs = 2;
    c->budget = 8;
}

/* Train one candidate from init's weights. Returns the status of setting it up; kd_train's (a
 * failure there scores the candidate as diverged) goes to *train_st and ctx has its epochs. */
static kd_status run_candidate(const kd_model *init, uint64_t seed, const kd_loss_term *cand, int n_terms,
                               const kd_teacher *teacher, const kd_dataset *train, const kd_dataset *val,
                               const kd_train_config *base, int epochs, search_ctx *ctx, kd_status *train_st,
                               kd_error *err) {
    kd_model *m = NULL;
    kd_distiller *d = NULL;
    kd_teacher t = *teacher; /* kd_distiller_create registers features in it */
    /* every candidate starts from the final run's initial weights */
    kd_status st = kd_model_from_yaml(&m, init->yaml, init->name, seed, err);
    if (!st) st = kd_distiller_create(&d, cand, n_terms, m, &t, seed, err);
    if (st) {
        kd_model_free(m);
        return st;
    }
    memcpy(m->params, init->params, sizeof(float) * init->n_params);
    memcpy(m->buffers, init->buffers, sizeof(float) * init->n_buffers);
    kd_train_config c = *base;
    c.epochs = epochs;
    c.distiller = d;
    c.checkpoint_path = NULL;
    c.log_path = NULL;
    c.resume = 0;
    c.progress = 0;
    c.on_epoch = search_on_epoch;
    c.on_epoch_ctx = ctx;
    ctx->n_epochs = 0;
    kd_train_result res;
    *train_st = kd_train(m, train, val, &c, &res, err);
    kd_distiller_free(d);
    kd_model_free(m);
    return KD_STATUS_OK;
}

kd_status kd_search(const kd_model *init, uint64_t seed, const kd_loss_term *terms, int n_terms,
                    const kd_teacher *teacher, const kd_dataset *train, const kd_dataset *val,
                    const kd_train_config *base, const kd_search_config *sc, kd_loss_term *best_terms,
                    float *best_acc, kd_error *err) {
    static const float Ts[] = {1, 2, 4, 8}, alphas[] = {0.5f, 0.9f}, fscales[] = {1.f, 0.1f, 10.f};
    if (!val || val->n == 0) return kd_error_set(err, KD_STATUS_BAD_ARG, "the search needs a validation split");
    if (sc->epochs < 1 || sc->epochs > KD_SEARCH_MAX_EPOCHS || sc->budget < 1)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "search: epochs must be in [1, %d] and the budget >= 1",
                            KD_SEARCH_MAX_EPOCHS);
    if (n_terms < 1 || n_terms > KD_MAX_LOSS_TERMS)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "a loss needs 1 to %d terms, got %d", KD_MAX_LOSS_TERMS, n_terms);
    int nT = 4, nA = has_kind(terms, n_terms, KD_LOSS_HINTON, KD_LOSS_HINTON) ? 2 : 1;
    int nF = has_kind(terms, n_terms, KD_LOSS_FITNET, KD_LOSS_SP) ? 3 : 1;
    int total = nT * nA * nF, runs = sc->budget < total ? sc->budget : total;
    if (sc->on_plan) sc->on_plan(sc->ctx, runs, total);
    search_ctx ctx = {0};
    float best = -1.f;
    for (int r = 0; r < runs; r++) {
        int g = (int)((long long)r * total / runs);
        float T = Ts[g % nT], alpha = alphas[(g / nT) % nA], fs = fscales[g / (nT * nA)];
        kd_loss_term cand[KD_MAX_LOSS_TERMS];
        apply_candidate(cand, terms, n_terms, T, alpha, fs);
        kd_status st = KD_STATUS_OK, setup = run_candidate(init, seed, cand, n_terms, teacher, train, val, base,
                                                            sc->epochs, &ctx, &st, err);
        if (setup) return setup;
        if (st == KD_STATUS_INTERRUPTED) return st;
        float acc = st ? 0.f : ctx.acc_at[ctx.n_epochs - 1];
        if (sc->on_candidate) {
            kd_search_candidate c = {T, nA > 1 ? alpha : terms[0].alpha, fs, st != KD_STATUS_OK, acc, ctx.n_epochs};
            sc->on_candidate(sc->ctx, &c);
        }
        if (!st && ctx.n_epochs == sc->epochs && acc > best) {
            best = acc;
            memcpy(best_terms, cand, sizeof(kd_loss_term) * (size_t)n_terms);
        }
        for (int e = 0; !st && e < ctx.n_epochs; e++)
            if (ctx.acc_at[e] > ctx.best_at[e]) ctx.best_at[e] = ctx.acc_at[e];
    }
    if (best < 0.f) return kd_error_set(err, KD_STATUS_DIVERGED, "every search candidate diverged");
    *best_acc = best;
    return KD_STATUS_OK;
}
