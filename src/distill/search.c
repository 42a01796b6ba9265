/* Budgeted recipe search for distillation (kd_search, `distill kd --search`): successive halving
 * (Jamieson & Talwalkar 2016, Hyperband's inner loop) over T, alpha, a common scale of the
 * non-response terms' weights and the augmentation (mixup, translation). Every candidate trains
 * from the same initialisation on the training split and is scored on the validation split held
 * out of the training set; each rung keeps the best 1/eta and trains them eta times longer. */
#include <stdlib.h>
#include <string.h>

#include "distill/distill.h"

/* The values searched per dimension (kd_search_plan.dims), in the order the product counts them. */
static const float Ts[] = {1, 2, 4, 8}, alphas[] = {0.5f, 0.9f, 1.f}, fscales[] = {1.f, 0.1f, 10.f},
                   mixups[] = {0.f, 0.2f, 1.f};
static const int translates[] = {0, 2};
#define KD_SEARCH_SPACE_MAX (4 * 3 * 3 * 3 * 2)

void kd_search_config_default(kd_search_config *c) {
    memset(c, 0, sizeof *c);
    c->budget = 9;
    c->epochs = 1;
    c->eta = 3;
}

void kd_search_schedule(int n, int e0, int eta, int max_epochs, kd_search_plan *p) {
    long long c = n, e = e0 < max_epochs ? e0 : max_epochs;
    p->n_rungs = 0;
    p->final_run = 0;
    p->search_epochs = 0;
    /* n < 2^31 and eta >= 2: at most 32 rungs */
    for (;;) {
        int r = p->n_rungs++;
        p->candidates[r] = (int)c;
        p->epochs[r] = (int)e;
        if (c == 1) {
            p->final_run = 1;
            return;
        }
        p->search_epochs += c * e;
        if (e >= max_epochs) return;
        c = (c + eta - 1) / eta;
        e = e * eta < max_epochs ? e * eta : max_epochs;
    }
}

/* Early stop inside a rung: the best validation accuracy of the rung's candidates so far at each
 * epoch, and the running candidate's. */
typedef struct {
    float *best_at, *acc_at; /* (max epochs of a rung) */
    int n_epochs;
} rung_ctx;

static int search_on_epoch(void *ctx, int epoch, const kd_eval_result *val) {
    rung_ctx *c = ctx;
    c->acc_at[epoch - 1] = (float)val->accuracy;
    c->n_epochs = epoch;
    return c->best_at[epoch - 1] > 0.f && val->accuracy < c->best_at[epoch - 1] - 0.02f;
}

static int has_kind(const kd_loss_term *t, int n, int lo, int hi) {
    for (int k = 0; k < n; k++)
        if ((int)t[k].kind >= lo && (int)t[k].kind <= hi) return 1;
    return 0;
}

/* Candidate g of the product (mixed radix over the searched dimensions, T fastest): its values in
 * c (unsearched ones from terms and base), its loss list in cand and its augmentation in aug. */
static void decode_candidate(int g, unsigned dims, const kd_loss_term *terms, int n_terms, const kd_augment *base,
                             kd_search_candidate *c, kd_loss_term *cand, kd_augment *aug) {
    int k;
    memset(c, 0, sizeof *c);
    c->val_acc = -1.f; /* not trained yet */
    for (k = 0; k < n_terms && terms[k].kind != KD_LOSS_HINTON && terms[k].kind != KD_LOSS_DKD; k++) {}
    c->T = k < n_terms ? terms[k].T : 0.f;
    c->alpha = terms[0].alpha;
    c->fscale = 1.f;
    *aug = *base;
    if (dims & KD_SEARCH_T) c->T = Ts[g % 4], g /= 4;
    if (dims & KD_SEARCH_ALPHA) c->alpha = alphas[g % 3], g /= 3;
    if (dims & KD_SEARCH_FSCALE) c->fscale = fscales[g % 3], g /= 3;
    if (dims & KD_SEARCH_MIXUP) aug->mixup = mixups[g % 3], g /= 3;
    if (dims & KD_SEARCH_TRANSLATE) aug->translate = translates[g % 2];
    c->mixup = aug->mixup;
    c->translate = aug->translate;
    for (k = 0; k < n_terms; k++) {
        cand[k] = terms[k];
        if ((dims & KD_SEARCH_T) && (cand[k].kind == KD_LOSS_HINTON || cand[k].kind == KD_LOSS_DKD)) cand[k].T = c->T;
        if ((dims & KD_SEARCH_ALPHA) && cand[k].kind == KD_LOSS_HINTON) cand[k].alpha = c->alpha;
        if (cand[k].kind >= KD_LOSS_FITNET) cand[k].weight *= c->fscale;
    }
}

/* Train one candidate for `epochs` from init's weights: its accuracy (0 if it diverged) and epochs
 * go to *c. A candidate that augments runs a teacher with models online (a copy without its
 * tables). Returns KD_STATUS_OK also for a diverged candidate. */
static kd_status run_candidate(const kd_model *init, uint64_t seed, const kd_loss_term *cand, int n_terms,
                               const kd_teacher *teacher, const kd_augment *aug, const kd_dataset *train,
                               const kd_dataset *val, const kd_train_config *base, int epochs, rung_ctx *ctx,
                               kd_search_candidate *c, kd_error *err) {
    kd_model *m = NULL;
    kd_distiller *d = NULL;
    kd_teacher t = {0}; /* kd_distiller_create registers features in it */
    if (teacher) t = *teacher;
    if (teacher && teacher->n_models > 0 && kd_augment_any(aug)) {
        t.logits = NULL;
        for (int f = 0; f < t.n_feats; f++) t.feat_table[f] = NULL;
    }
    /* every candidate starts from the final run's initial weights */
    kd_status st = kd_model_from_yaml(&m, init->yaml, init->name, seed, err);
    if (!st) st = kd_distiller_create(&d, cand, n_terms, m, teacher ? &t : NULL, seed, err);
    if (!st) {
        memcpy(m->params, init->params, sizeof(float) * init->n_params);
        memcpy(m->buffers, init->buffers, sizeof(float) * init->n_buffers);
        kd_train_config tc = *base;
        tc.epochs = epochs;
        tc.aug = *aug;
        tc.distiller = d;
        tc.checkpoint_path = NULL;
        tc.log_path = NULL;
        tc.resume = 0;
        tc.progress = 0;
        tc.prune = NULL;
        tc.on_epoch = search_on_epoch;
        tc.on_epoch_ctx = ctx;
        ctx->n_epochs = 0;
        kd_train_result res;
        st = kd_train(m, train, val, &tc, &res, err);
        c->diverged = st == KD_STATUS_DIVERGED;
        c->epochs = ctx->n_epochs;
        c->val_acc = st ? 0.f : ctx->acc_at[ctx->n_epochs - 1];
        if (c->diverged) st = KD_STATUS_OK;
    }
    kd_distiller_free(d);
    kd_model_free(m);
    return st;
}

/* The searched dimensions: those the terms, the teacher and the data have. */
static unsigned search_dims(const kd_loss_term *terms, int n_terms, const kd_teacher *teacher, const kd_dataset *train,
                            int *aug_fixed) {
    unsigned dims = 0;
    if (has_kind(terms, n_terms, KD_LOSS_HINTON, KD_LOSS_HINTON) || has_kind(terms, n_terms, KD_LOSS_DKD, KD_LOSS_DKD))
        dims |= KD_SEARCH_T;
    if (has_kind(terms, n_terms, KD_LOSS_HINTON, KD_LOSS_HINTON)) dims |= KD_SEARCH_ALPHA;
    if (has_kind(terms, n_terms, KD_LOSS_FITNET, KD_LOSS_SP)) dims |= KD_SEARCH_FSCALE;
    /* tables alone belong to the unchanged images: nothing scores an augmented view */
    *aug_fixed = teacher && teacher->n_models == 0;
    if (!*aug_fixed) dims |= KD_SEARCH_MIXUP | (train->h * train->w > 1 ? KD_SEARCH_TRANSLATE : 0u);
    return dims;
}

static int space_size(unsigned dims) {
    return (dims & KD_SEARCH_T ? 4 : 1) * (dims & KD_SEARCH_ALPHA ? 3 : 1) * (dims & KD_SEARCH_FSCALE ? 3 : 1) *
           (dims & KD_SEARCH_MIXUP ? 3 : 1) * (dims & KD_SEARCH_TRANSLATE ? 2 : 1);
}

kd_status kd_search(const kd_model *init, uint64_t seed, const kd_loss_term *terms, int n_terms,
                    const kd_teacher *teacher, const kd_dataset *train, const kd_dataset *val,
                    const kd_train_config *base, const kd_search_config *sc, kd_search_result *best,
                    kd_error *err) {
    if (!val || val->n == 0) return kd_error_set(err, KD_STATUS_BAD_ARG, "the search needs a validation split");
    if (sc->budget < 1 || sc->epochs < 1 || sc->eta < 2 || sc->max_epochs < 0)
        return kd_error_set(err, KD_STATUS_BAD_ARG,
                            "search: the budget and epochs must be >= 1, eta >= 2 and max_epochs >= 0");
    if (n_terms < 1 || n_terms > KD_MAX_LOSS_TERMS)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "a loss needs 1 to %d terms, got %d", KD_MAX_LOSS_TERMS, n_terms);
    kd_search_plan plan;
    plan.dims = search_dims(terms, n_terms, teacher, train, &plan.aug_fixed);
    plan.space = space_size(plan.dims);
    int n = sc->budget < plan.space ? sc->budget : plan.space, max_e = sc->max_epochs ? sc->max_epochs : base->epochs;
    if (max_e < 1) return kd_error_set(err, KD_STATUS_BAD_ARG, "search: max_epochs must be >= 1");
    kd_search_schedule(n, sc->epochs, sc->eta, max_e, &plan);
    if (sc->on_plan) sc->on_plan(sc->ctx, &plan);

    /* the first rung: n of the product in a seeded shuffled order */
    int32_t order[KD_SEARCH_SPACE_MAX];
    for (int g = 0; g < plan.space; g++) order[g] = g;
    kd_rng rng;
    kd_rng_seed(&rng, seed, 0x5ea7c4);
    kd_rng_shuffle(&rng, order, plan.space);
    int alive[KD_SEARCH_SPACE_MAX]; /* ids of the rung's candidates, best of the previous rung first */
    float score[KD_SEARCH_SPACE_MAX];
    for (int i = 0; i < n; i++) alive[i] = i;
    kd_search_candidate rep[KD_SEARCH_SPACE_MAX]; /* each id's last report */
    for (int i = 0; i < n; i++) rep[i].val_acc = -1.f; /* not trained */

    int last_trained = plan.n_rungs - 1 - plan.final_run;
    rung_ctx ctx = {calloc((size_t)max_e, sizeof(float)), calloc((size_t)max_e, sizeof(float)), 0};
    kd_status st = ctx.best_at && ctx.acc_at ? KD_STATUS_OK : kd_error_set(err, KD_STATUS_NO_MEMORY, "search: out of memory");
    for (int r = 0; !st && r <= last_trained; r++) {
        int nr = plan.candidates[r], e = plan.epochs[r];
        memset(ctx.best_at, 0, sizeof(float) * (size_t)e);
        for (int i = 0; !st && i < nr; i++) {
            int id = alive[i];
            kd_search_candidate c;
            kd_loss_term cand[KD_MAX_LOSS_TERMS];
            kd_augment aug;
            decode_candidate(order[id], plan.dims, terms, n_terms, &base->aug, &c, cand, &aug);
            st = run_candidate(init, seed, cand, n_terms, teacher, &aug, train, val, base, e, &ctx, &c, err);
            if (st) break;
            c.id = id;
            c.rung = r;
            rep[id] = c;
            score[i] = c.diverged ? -1.f : c.val_acc;
            if (sc->on_candidate) sc->on_candidate(sc->ctx, &c);
            for (int k = 0; !c.diverged && k < ctx.n_epochs; k++)
                if (ctx.acc_at[k] > ctx.best_at[k]) ctx.best_at[k] = ctx.acc_at[k];
        }
        if (st) break;
        /* best first (insertion sort); ties: the earlier drawn; a diverged one below any other */
        for (int i = 1; i < nr; i++)
            for (int j = i; j > 0 && (score[j] > score[j - 1] || (score[j] == score[j - 1] && alive[j] < alive[j - 1]));
                 j--) {
                float s = score[j];
                int a = alive[j];
                score[j] = score[j - 1], alive[j] = alive[j - 1];
                score[j - 1] = s, alive[j - 1] = a;
            }
        if (rep[alive[0]].diverged) st = kd_error_set(err, KD_STATUS_DIVERGED, "every search candidate of rung %d diverged", r);
    }
    free(ctx.best_at);
    free(ctx.acc_at);
    if (st) return st;
    int id = alive[0];
    kd_search_candidate c;
    decode_candidate(order[id], plan.dims, terms, n_terms, &base->aug, &c, best->terms, &best->aug);
    c.id = id;
    best->epochs = plan.epochs[plan.n_rungs - 1];
    best->best = rep[id].val_acc >= 0.f ? rep[id] : c;
    return KD_STATUS_OK;
}
