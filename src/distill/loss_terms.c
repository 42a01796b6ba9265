/* Loss terms of a run: names, defaults, and the one text form "KIND[:key=value,...]" that both
 * the CLI (--loss) and the run YAML (loss: list) are turned into, so the two cannot drift. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/spec.h"
#include "distill/distill.h"

static const char *const kind_names[KD_LOSS_KIND_COUNT] = {"ce", "hinton", "dkd", "fitnet", "at", "cosine", "rkd", "sp"};

const char *kd_loss_kind_name(kd_loss_kind k) { return k >= 0 && k < KD_LOSS_KIND_COUNT ? kind_names[k] : "?"; }

void kd_loss_term_default(kd_loss_term *t, kd_loss_kind kind) {
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->weight = 1.f;
    t->T = 0.f;      /* the run's temperature */
    t->alpha = -1.f; /* the run's alpha */
    t->dkd_alpha = 1.f;
    t->dkd_beta = 8.f;
    t->rkd_dist = 1.f;
    t->rkd_angle = 2.f;
    t->project = kind == KD_LOSS_FITNET ? 1 : -1;
}

/* The keys of each kind, for the shared "KIND:key=value" parser (src/core/spec.c). */
#define K(kind) (1u << (kind))
#define TERM_FLOAT(name, kinds, field, lo, hi) {name, kinds, KD_SPEC_FLOAT, offsetof(kd_loss_term, field), lo, hi, 0}
#define TERM_BOOL(name, kinds, field) {name, kinds, KD_SPEC_BOOL, offsetof(kd_loss_term, field), 0, 0, 0}
#define TERM_NAME(name, kinds, field) {name, kinds, KD_SPEC_NAME, offsetof(kd_loss_term, field), 0, 0, KD_NAME_MAX}
enum {
    ALL_KINDS = (1u << KD_LOSS_KIND_COUNT) - 1,
    RESPONSE = K(KD_LOSS_HINTON) | K(KD_LOSS_DKD),
    FEATURE = ALL_KINDS & ~(K(KD_LOSS_FITNET) - 1) /* fitnet and every kind after it */
};
static const kd_spec_key term_keys[] = {
    TERM_FLOAT("weight", ALL_KINDS, weight, 0.f, 1e6f),
    TERM_FLOAT("T", RESPONSE, T, 0.01f, 1000.f),
    TERM_BOOL("standardize", RESPONSE, standardize),
    TERM_FLOAT("alpha", K(KD_LOSS_HINTON), alpha, 0.f, 1.f),
    TERM_FLOAT("alpha", K(KD_LOSS_DKD), dkd_alpha, 0.f, 1e4f),
    TERM_FLOAT("beta", K(KD_LOSS_DKD), dkd_beta, 0.f, 1e4f),
    TERM_FLOAT("distance", K(KD_LOSS_RKD), rkd_dist, 0.f, 1e6f),
    TERM_FLOAT("angle", K(KD_LOSS_RKD), rkd_angle, 0.f, 1e6f),
    TERM_BOOL("project", K(KD_LOSS_COSINE), project),
    TERM_NAME("student", FEATURE, student),
    TERM_NAME("teacher", FEATURE, teacher),
};
#undef K
#undef TERM_FLOAT
#undef TERM_BOOL
#undef TERM_NAME

static void term_defaults(void *t, int kind) { kd_loss_term_default(t, (kd_loss_kind)kind); }

static const kd_spec_table term_spec = {"loss", kind_names, KD_LOSS_KIND_COUNT, term_keys,
                                        (int)(sizeof term_keys / sizeof term_keys[0]), "see distill kd --help",
                                        term_defaults};

kd_status kd_loss_term_parse(kd_loss_term *t, const char *spec, kd_error *err) {
    return kd_spec_parse(&term_spec, spec, t, err);
}

void kd_loss_term_format(const kd_loss_term *t, char *buf, size_t n) {
    int k = snprintf(buf, n, "%s:weight=%g", kd_loss_kind_name(t->kind), (double)t->weight);
#define ADD(...)                                                                                                       \
    do {                                                                                                               \
        if (k >= 0 && (size_t)k < n) k += snprintf(buf + k, n - (size_t)k, __VA_ARGS__);                               \
    } while (0)
    if (t->kind == KD_LOSS_HINTON || t->kind == KD_LOSS_DKD) {
        if (t->T > 0.f) ADD(",T=%g", (double)t->T);
        if (t->standardize) ADD(",standardize=1");
    }
    if (t->kind == KD_LOSS_HINTON && t->alpha >= 0.f) ADD(",alpha=%g", (double)t->alpha);
    if (t->kind == KD_LOSS_DKD) ADD(",alpha=%g,beta=%g", (double)t->dkd_alpha, (double)t->dkd_beta);
    if (t->kind == KD_LOSS_RKD) ADD(",distance=%g,angle=%g", (double)t->rkd_dist, (double)t->rkd_angle);
    if (t->kind == KD_LOSS_COSINE && t->project >= 0) ADD(",project=%d", t->project);
    if (t->student[0]) ADD(",student=%s", t->student);
    if (t->teacher[0]) ADD(",teacher=%s", t->teacher);
#undef ADD
}
