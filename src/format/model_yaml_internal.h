/* What the model YAML reader (model_yaml.c) shares with its writer (model_yaml_write.c). */
#ifndef DISTILL_FORMAT_MODEL_YAML_INTERNAL_H
#define DISTILL_FORMAT_MODEL_YAML_INTERNAL_H
#include <stddef.h>
#include <yaml.h>
#include "distill/model.h"

/* A scalar node's text, or NULL for any other node (or none). */
static inline const char *kd_yaml_node_scalar(yaml_node_t *n) {
    return (n && n->type == YAML_SCALAR_NODE) ? (const char *)n->data.scalar.value : NULL;
}

/* The model in text[0..len) (a file's bytes, NULs included), `input: auto` and `out: classes`
 * taking fit's shape and class count (the defaults where fit is NULL or says 0). build = 0: the
 * layers and shapes only, no parameter block (a check of a text). */
kd_status kd_model_yaml_parse(kd_model **out, const char *yaml, size_t len, const char *source, uint64_t seed,
                              const kd_model_fit *fit, int build, kd_error *err);
/* names[0..n) copied into one block (kd_dataset_set_class_names' layout; one free), or NULL when out
 * of memory; the names are checked already. */
char **kd_model_yaml_class_names_copy(const char *const *names, int n);
#endif
