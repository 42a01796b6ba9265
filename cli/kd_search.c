/* `distill kd --search`'s report: the rung plan, a table per rung as the candidates finish, and the
 * winner as the command-line options that reproduce it. The search is the library's kd_search. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *const dim_names[] = {"T", "alpha", "fscale", "mixup", "translate"};
#define N_DIMS 5

static int dim_width(int k) {
    int n = (int)strlen(dim_names[k]);
    return n > 6 ? n : 6;
}

static void print_plan(void *ctx, const kd_search_plan *p) {
    kd_cli_search_report *r = ctx;
    r->plan = *p;
    r->rung = -1;
    char dims[64] = "";
    for (int k = 0, n = 0; k < N_DIMS; k++)
        if (p->dims & (1u << k)) n += snprintf(dims + n, sizeof dims - (size_t)n, "%s%s", n ? " x " : "", dim_names[k]);
    kd_cli_note("distill kd: search: successive halving over %d recipe%s (%s), scored on %d held-out training "
                    "images%s\n", p->space, p->space > 1 ? "s" : "", dims[0] ? dims : "nothing to vary", r->n_val,
            p->aug_fixed ? "; augmentation not searched: the teacher's outputs come from a table, which cannot score "
                           "an augmented view" : "");
    int last = p->n_rungs - 1, final_e = r->user_epochs ? r->user_epochs : p->epochs[last];
    printf("search: plan:");
    for (int i = 0; i <= last - p->final_run; i++)
        printf("%s rung %d: %d x %d epoch%s", i ? "," : "", i, p->candidates[i], p->epochs[i], p->epochs[i] > 1 ? "s" : "");
    printf("%s then the winner trains %d epoch%s; at most %lld + %d epochs\n", p->final_run && last == 0 ? "" : ";",
           final_e, final_e > 1 ? "s" : "", p->search_epochs, final_e);
}

static void print_candidate(void *ctx, const kd_search_candidate *c) {
    kd_cli_search_report *r = ctx;
    const kd_search_plan *p = &r->plan;
    if (c->rung != r->rung) { /* a new rung: its table's title and header */
        r->rung = c->rung;
        int e = p->epochs[c->rung], next = c->rung + 1 < p->n_rungs ? p->candidates[c->rung + 1] : 1;
        printf("search: rung %d: %d candidates, %d epoch%s each; ", c->rung, p->candidates[c->rung], e, e > 1 ? "s" : "");
        if (c->rung + 1 == p->n_rungs) printf("the best wins\n");
        else if (p->final_run && c->rung + 2 == p->n_rungs) printf("the best is the winner\n");
        else printf("the best %d go on\n", next);
        printf("search: %4s", "id");
        for (int k = 0; k < N_DIMS; k++)
            if (p->dims & (1u << k)) printf(" %-*s", dim_width(k), dim_names[k]);
        printf(" %-9s %s\n", "val acc", "epochs");
    }
    const double v[N_DIMS] = {c->T, c->alpha, c->fscale, c->mixup, c->translate};
    printf("search: %4d", c->id);
    for (int k = 0; k < N_DIMS; k++)
        if (p->dims & (1u << k)) printf(" %-*g", dim_width(k), v[k]);
    char acc[32];
    snprintf(acc, sizeof acc, c->diverged ? "diverged" : "%.2f%%", 100.0 * c->val_acc);
    printf(" %-9s %d%s\n", acc, c->epochs, c->epochs < p->epochs[c->rung] ? " (stopped early)" : "");
    fflush(stdout);
}

void kd_cli_search_report_init(kd_cli_search_report *r, kd_search_config *sc, int n_val, int user_epochs) {
    r->n_val = n_val;
    r->user_epochs = user_epochs;
    r->rung = -1;
    sc->on_plan = print_plan;
    sc->on_candidate = print_candidate;
    sc->ctx = r;
}

void kd_cli_search_winner(const kd_cli_search_report *r, const kd_search_result *w, int n_terms,
                          const kd_augment *base) {
    const kd_search_candidate *b = &w->best;
    if (b->val_acc < 0.f) printf("search: best (the only candidate, not trained in the search):");
    else
        printf("search: best (validation %.2f%% after %d epoch%s in rung %d):", 100.0 * b->val_acc, b->epochs,
               b->epochs > 1 ? "s" : "", b->rung);
    for (int k = 0; k < n_terms; k++) {
        char spec[256];
        kd_loss_term_format(&w->terms[k], spec, sizeof spec);
        printf(" --loss %s", spec);
    }
    /* the augmentation where it differs from the run's own options */
    if (w->aug.mixup != base->mixup) printf(" --mixup %g", (double)w->aug.mixup);
    if (w->aug.translate != base->translate) printf(" --translate %d", w->aug.translate);
    /* the run's: the winner's unless the user gave them */
    printf(" --epochs %d\n", r->user_epochs ? r->user_epochs : w->epochs);
    if (r->user_epochs && r->user_epochs != w->epochs)
        printf("search: the winner's schedule is %d epoch%s; the run keeps --epochs %d\n", w->epochs,
               w->epochs > 1 ? "s" : "", r->user_epochs);
    fflush(stdout);
}
