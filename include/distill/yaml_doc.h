/* Bounded YAML loading, the one guard in front of every YAML reader (model files, run files,
 * pipeline files; src/format/yaml_doc.c): a file larger than KD_YAML_MAX_BYTES, nested deeper than
 * KD_YAML_MAX_DEPTH or with more than KD_YAML_MAX_NODES nodes is refused with its file and line
 * before libyaml builds a tree (libyaml's time grows with the square of the nesting depth and its
 * memory with the node count), and every libyaml error names the file, line and column. */
#ifndef DISTILL_YAML_DOC_H
#define DISTILL_YAML_DOC_H
#include <stddef.h>
#include <yaml.h>

#include "distill/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KD_YAML_MAX_BYTES (8 << 20) /* the largest model file written by surgery is well under 1 MB */
#define KD_YAML_MAX_DEPTH 64        /* mappings and lists inside each other */
#define KD_YAML_MAX_NODES (1 << 18) /* scalars, lists and mappings, aliases counted too */

/* Parse the first document of text[0..len) (NULs included: they are an error at their line) into
 * *doc, which the caller frees with yaml_document_delete. source names the text in messages.
 * KD_STATUS_BAD_FILE on a syntax or encoding error or a bound exceeded. */
kd_status kd_yaml_load(yaml_document_t *doc, const char *text, size_t len, const char *source, kd_error *err);
/* Read a whole YAML file (a regular file of at most KD_YAML_MAX_BYTES; malloc'd, NUL-terminated
 * text; see kd_read_file). */
kd_status kd_yaml_read_file(const char *path, char **text, size_t *len, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
