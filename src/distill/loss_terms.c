/* Loss terms of a run: names, defaults, and the one text form "KIND[:key=value,...]" that both
 * the CLI (--loss) and the run YAML (loss: list) are turned into, so the two cannot drift. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int parse_float(const char *v, float lo, float hi, float *out) {
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !(d >= lo && d <= hi)) return 0;
    *out = (float)d;
    return 1;
}

static int parse_bool(const char *v, int *out) {
    if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes")) *out = 1;
    else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no")) *out = 0;
    else return 0;
    return 1;
}

kd_status kd_loss_term_parse(kd_loss_term *t, const char *spec, kd_error *err) {
    char buf[512];
    if (strlen(spec) >= sizeof buf) return kd_error_set(err, KD_STATUS_BAD_ARG, "loss term too long: '%.40s...'", spec);
    strcpy(buf, spec);
    char *args = strchr(buf, ':');
    if (args) *args++ = 0;
    int kind = -1;
    for (int k = 0; k < KD_LOSS_KIND_COUNT; k++)
        if (!strcmp(buf, kind_names[k])) kind = k;
    if (kind < 0)
        return kd_error_set(err, KD_STATUS_BAD_ARG,
                            "unknown loss '%s' (known: ce, hinton, dkd, fitnet, at, cosine, rkd, sp)", buf);
    kd_loss_term_default(t, (kd_loss_kind)kind);
    for (char *save = NULL, *kv = args ? strtok_r(args, ",", &save) : NULL; kv; kv = strtok_r(NULL, ",", &save)) {
        char *v = strchr(kv, '=');
        if (!v) return kd_error_set(err, KD_STATUS_BAD_ARG, "loss %s: '%s' is not key=value", buf, kv);
        *v++ = 0;
        int ok = 1, known = 1, is_dkd = kind == KD_LOSS_DKD, is_resp = kind == KD_LOSS_HINTON || is_dkd;
        int is_feat = kind >= KD_LOSS_FITNET;
        if (!strcmp(kv, "weight")) ok = parse_float(v, 0.f, 1e6f, &t->weight);
        else if (is_resp && !strcmp(kv, "T")) ok = parse_float(v, 0.01f, 1000.f, &t->T);
        else if (is_resp && !strcmp(kv, "standardize")) ok = parse_bool(v, &t->standardize);
        else if (kind == KD_LOSS_HINTON && !strcmp(kv, "alpha")) ok = parse_float(v, 0.f, 1.f, &t->alpha);
        else if (is_dkd && !strcmp(kv, "alpha")) ok = parse_float(v, 0.f, 1e4f, &t->dkd_alpha);
        else if (is_dkd && !strcmp(kv, "beta")) ok = parse_float(v, 0.f, 1e4f, &t->dkd_beta);
        else if (kind == KD_LOSS_RKD && !strcmp(kv, "distance")) ok = parse_float(v, 0.f, 1e6f, &t->rkd_dist);
        else if (kind == KD_LOSS_RKD && !strcmp(kv, "angle")) ok = parse_float(v, 0.f, 1e6f, &t->rkd_angle);
        else if (kind == KD_LOSS_COSINE && !strcmp(kv, "project")) ok = parse_bool(v, &t->project);
        else if (is_feat && (!strcmp(kv, "student") || !strcmp(kv, "teacher"))) {
            if (strlen(v) >= KD_NAME_MAX || !*v) ok = 0;
            else strcpy(kv[0] == 's' ? t->student : t->teacher, v);
        } else known = 0;
        if (!known)
            return kd_error_set(err, KD_STATUS_BAD_ARG, "loss %s has no setting '%s' (see distill kd --help)", buf, kv);
        if (!ok) return kd_error_set(err, KD_STATUS_BAD_ARG, "loss %s: bad value %s=%s", buf, kv, v);
    }
    return KD_STATUS_OK;
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
