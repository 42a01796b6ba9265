/* The text form "KIND[:key=value,...]" of a term (distill kd --loss, distill lm kd --loss, the loss:
 * lists of run files): one tokenizer and validator, called by each command family with its own
 * table of kinds, keys and ranges (src/distill/loss_terms.c, src/lm/train_lm.c). */
#ifndef KD_SPEC_H
#define KD_SPEC_H
#include <stddef.h>

#include "distill/status.h"

typedef enum kd_spec_type {
    KD_SPEC_FLOAT, /* a float field; the number must be in [lo, hi] */
    KD_SPEC_BOOL,  /* an int field: 1/true/yes or 0/false/no */
    KD_SPEC_NAME   /* a char[size] field: 1 to size - 1 characters */
} kd_spec_type;

typedef struct kd_spec_key {
    const char *name;
    unsigned kinds;    /* bit k set: kind k has this key (a name may appear once per kind) */
    kd_spec_type type;
    size_t off;        /* offsetof the field in the caller's struct */
    double lo, hi;     /* KD_SPEC_FLOAT */
    size_t size;       /* KD_SPEC_NAME */
} kd_spec_key;

typedef struct kd_spec_table {
    const char *what;             /* the noun in messages: "loss" */
    const char *const *kinds;     /* names, indexed by kind */
    int n_kinds;
    const kd_spec_key *keys;
    int n_keys;
    const char *help;             /* where the settings are listed ("see distill kd --help") */
    void (*defaults)(void *out, int kind); /* fills *out for kind before the settings apply */
} kd_spec_table;

/* Parse spec (at most 511 characters) into out (the struct the table's offsets point into; the
 * table's defaults() records the kind there). Empty items between commas are skipped; a later key=value overrides an earlier one.
 * Errors (KD_STATUS_BAD_ARG) name the term and the key: unknown kind (listing the known ones), an
 * item that is not key=value, a key the kind does not have, a value out of range or malformed. */
kd_status kd_spec_parse(const kd_spec_table *t, const char *spec, void *out, kd_error *err);
#endif
