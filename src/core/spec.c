/* The "KIND[:key=value,...]" term parser shared by distill kd and distill lm kd (spec.h): splits
 * the text, finds the kind and each key in the caller's table, checks and stores the values. */
#include "core/spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_float(const char *v, double lo, double hi, float *out) {
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

static const kd_spec_key *find_key(const kd_spec_table *t, int kind, const char *name) {
    for (int i = 0; i < t->n_keys; i++)
        if ((t->keys[i].kinds >> kind & 1u) && !strcmp(t->keys[i].name, name)) return &t->keys[i];
    return NULL;
}

static int set_value(const kd_spec_key *k, const char *v, void *out) {
    char *field = (char *)out + k->off;
    switch (k->type) {
    case KD_SPEC_FLOAT: return parse_float(v, k->lo, k->hi, (float *)(void *)field);
    case KD_SPEC_BOOL: return parse_bool(v, (int *)(void *)field);
    case KD_SPEC_NAME:
        if (!*v || strlen(v) >= k->size) return 0;
        strcpy(field, v);
        return 1;
    }
    return 0;
}

kd_status kd_spec_parse(const kd_spec_table *t, const char *spec, void *out, kd_error *err) {
    char buf[512];
    if (strlen(spec) >= sizeof buf)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "%s term too long: '%.40s...'", t->what, spec);
    strcpy(buf, spec);
    char *args = strchr(buf, ':');
    if (args) *args++ = 0;
    int k = -1;
    for (int i = 0; i < t->n_kinds; i++)
        if (!strcmp(buf, t->kinds[i])) k = i;
    if (k < 0) {
        char known[256];
        size_t n = 0;
        known[0] = 0;
        for (int i = 0; i < t->n_kinds && n < sizeof known; i++)
            n += (size_t)snprintf(known + n, sizeof known - n, "%s%s", i ? ", " : "", t->kinds[i]);
        return kd_error_set(err, KD_STATUS_BAD_ARG, "unknown %s '%s' (known: %s)", t->what, buf, known);
    }
    t->defaults(out, k);
    unsigned long long seen = 0; /* keys already set (the first 64 of the table): "T=4,T=5" is a typo, not a choice */
    for (char *save = NULL, *kv = args ? strtok_r(args, ",", &save) : NULL; kv; kv = strtok_r(NULL, ",", &save)) {
        char *v = strchr(kv, '=');
        if (!v) return kd_error_set(err, KD_STATUS_BAD_ARG, "%s %s: '%s' is not key=value", t->what, buf, kv);
        *v++ = 0;
        const kd_spec_key *key = find_key(t, k, kv);
        if (!key)
            return kd_error_set(err, KD_STATUS_BAD_ARG, "%s %s has no setting '%s' (%s)", t->what, buf, kv, t->help);
        size_t ki = (size_t)(key - t->keys);
        unsigned long long bit = ki < 64 ? 1ull << ki : 0;
        if (seen & bit) return kd_error_set(err, KD_STATUS_BAD_ARG, "%s %s: '%s' is given twice", t->what, buf, kv);
        seen |= bit;
        if (!set_value(key, v, out))
            return kd_error_set(err, KD_STATUS_BAD_ARG, "%s %s: bad value %s=%s", t->what, buf, kv, v);
    }
    return KD_STATUS_OK;
}
