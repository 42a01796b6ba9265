/* Run files: a YAML mapping whose keys are the command's long options (dashes or underscores),
 * turned into the same argv the command line would give, so every flag has its YAML twin and the
 * reverse by construction:
 *
 *   teacher: [t1.safetensors, t2.safetensors]    # lists repeat the option (--teacher t1 --teacher t2)
 *   student: cnn-s
 *   epochs: 10
 *   translate: 2
 *   hflip: true                                  # flags: true / false
 *   loss:                                        # each item becomes one --loss KIND:key=value,...
 *     - hinton: {T: 4, alpha: 0.9}
 *     - {type: fitnet, student: pool2, teacher: pool2, weight: 0.5}
 *     - ce
 *   init-from-teacher: {conv1: conv1, fc: fc2}   # mappings become key=value,... */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cli.h"

typedef struct {
    char **v;
    int n, cap;
} argv_list;

static int push(argv_list *a, const char *s) {
    if (a->n + 2 > a->cap) {
        int cap = a->cap ? 2 * a->cap : 32;
        char **v = realloc(a->v, sizeof(char *) * (size_t)cap);
        if (!v) return 0;
        a->v = v;
        a->cap = cap;
    }
    if (!(a->v[a->n] = strdup(s))) return 0;
    a->v[++a->n] = NULL;
    return 1;
}

static const char *scalar(yaml_node_t *n) { return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL; }

/* "k=v,k=v" from a mapping of scalars; returns 0 if an entry is not a scalar pair. */
static int mapping_text(yaml_document_t *doc, yaml_node_t *map, char *buf, size_t n, const char *skip_key) {
    size_t k = strlen(buf);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const char *key = scalar(yaml_document_get_node(doc, p->key));
        const char *val = scalar(yaml_document_get_node(doc, p->value));
        if (!key || !val) return 0;
        if (skip_key && !strcmp(key, skip_key)) continue;
        int w = snprintf(buf + k, n - k, "%s%s=%s", k && buf[k - 1] != ':' ? "," : "", key, val);
        if (w < 0 || (size_t)w >= n - k) return 0;
        k += (size_t)w;
    }
    return 1;
}

/* One item of a list: a scalar, {kind: {settings}}, or {type: kind, settings...}. */
static int item_text(yaml_document_t *doc, yaml_node_t *it, char *buf, size_t n) {
    buf[0] = 0;
    if (scalar(it)) return snprintf(buf, n, "%s", scalar(it)) < (int)n;
    if (it->type != YAML_MAPPING_NODE) return 0;
    yaml_node_pair_t *first = it->data.mapping.pairs.start;
    if (first == it->data.mapping.pairs.top) return 0;
    yaml_node_t *v0 = yaml_document_get_node(doc, first->value);
    if (it->data.mapping.pairs.top - first == 1 && v0->type == YAML_MAPPING_NODE) {
        snprintf(buf, n, "%s:", scalar(yaml_document_get_node(doc, first->key)) ? scalar(yaml_document_get_node(doc, first->key)) : "");
        return mapping_text(doc, v0, buf, n, NULL);
    }
    for (yaml_node_pair_t *p = first; p < it->data.mapping.pairs.top; p++) {
        const char *key = scalar(yaml_document_get_node(doc, p->key));
        if (key && !strcmp(key, "type") && scalar(yaml_document_get_node(doc, p->value))) {
            snprintf(buf, n, "%s:", scalar(yaml_document_get_node(doc, p->value)));
            return mapping_text(doc, it, buf, n, "type");
        }
    }
    return 0;
}

static int fail(const char *cmd, const char *path, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "distill %s: error: %s: %s\n", cmd, path, msg);
    return 0;
}

static int load(const char *cmd, const char *path, yaml_document_t *doc) {
    FILE *f = fopen(path, "rb");
    if (!f) return fail(cmd, path, "cannot open the run file");
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int ok = yaml_parser_load(&parser, doc);
    if (!ok)
        fail(cmd, path, "YAML error at line %zu: %s", parser.problem_mark.line + 1, parser.problem ? parser.problem : "?");
    yaml_parser_delete(&parser);
    fclose(f);
    if (ok && (!yaml_document_get_root_node(doc) || yaml_document_get_root_node(doc)->type != YAML_MAPPING_NODE)) {
        yaml_document_delete(doc);
        return fail(cmd, path, "a run file is a mapping of option: value");
    }
    return ok;
}

/* Append the options of a mapping node. With an option table, keys must be its long options
 * (flags take true/false); without one (pipeline stages, whose command checks its own options)
 * true means a bare flag, false nothing, anything else "--key value". */
static int mapping_args(const char *cmd, const char *path, yaml_document_t *doc, yaml_node_t *map,
                        const struct option *flags, argv_list *a) {
    int ok = 1;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; ok && p < map->data.mapping.pairs.top; p++) {
        const char *key = scalar(yaml_document_get_node(doc, p->key));
        yaml_node_t *val = yaml_document_get_node(doc, p->value);
        char opt[96], text[1024];
        if (!key || strlen(key) > 80) return fail(cmd, path, "keys must be option names");
        snprintf(opt, sizeof opt, "--%s", key);
        for (char *c = opt; *c; c++)
            if (*c == '_') *c = '-';
        int has_arg = 1;
        if (flags) {
            const struct option *fl = NULL;
            for (const struct option *q = flags; q->name; q++)
                if (!strcmp(q->name, opt + 2)) fl = q;
            if (!fl || !strcmp(opt + 2, "config") || !strcmp(opt + 2, "help"))
                return fail(cmd, path, "line %zu: '%s' is not an option of distill %s (see --help)",
                            val->start_mark.line + 1, key, cmd);
            has_arg = fl->has_arg;
        }
        const char *sv = scalar(val);
        int is_bool = sv && (!strcmp(sv, "true") || !strcmp(sv, "false") || !strcmp(sv, "yes") || !strcmp(sv, "no"));
        if (!has_arg || (!flags && is_bool)) { /* a flag: true / false */
            if (!is_bool) return fail(cmd, path, "line %zu: %s is a flag: true or false", val->start_mark.line + 1, key);
            if (!strcmp(sv, "true") || !strcmp(sv, "yes")) ok = push(a, opt);
            continue;
        }
        if (val->type == YAML_SEQUENCE_NODE) {
            for (yaml_node_item_t *it = val->data.sequence.items.start; ok && it < val->data.sequence.items.top; it++) {
                yaml_node_t *n = yaml_document_get_node(doc, *it);
                if (!item_text(doc, n, text, sizeof text))
                    return fail(cmd, path, "line %zu: cannot read this item of %s", n->start_mark.line + 1, key);
                ok = push(a, opt) && push(a, text);
            }
        } else if (val->type == YAML_MAPPING_NODE) {
            text[0] = 0;
            if (!mapping_text(doc, val, text, sizeof text, NULL))
                return fail(cmd, path, "line %zu: %s must map names to values", val->start_mark.line + 1, key);
            ok = push(a, opt) && push(a, text);
        } else {
            ok = push(a, opt) && push(a, sv ? sv : "");
        }
    }
    return ok;
}

static int finish(argv_list *a, int ok, int *argc, char ***argv) {
    if (!ok) {
        for (int i = 0; i < a->n; i++) free(a->v[i]);
        free(a->v);
        return 0;
    }
    *argc = a->n;
    *argv = a->v;
    return 1;
}

int kd_cli_config_args(const char *cmd, const char *path, const struct option *flags, int *argc, char ***argv,
                       int *n_from_file) {
    yaml_document_t doc;
    if (!load(cmd, path, &doc)) return 0;
    argv_list a = {0};
    int ok = push(&a, (*argv)[0]) && mapping_args(cmd, path, &doc, yaml_document_get_root_node(&doc), flags, &a);
    yaml_document_delete(&doc);
    *n_from_file = a.n;
    /* the command line comes after the file, so it overrides it */
    for (int i = 1; ok && i < *argc; i++) ok = push(&a, (*argv)[i]);
    return finish(&a, ok, argc, argv);
}

int kd_cli_config_section(const char *cmd, const char *path, const char *section, const char *const *head,
                          int *argc, char ***argv) {
    yaml_document_t doc;
    if (!load(cmd, path, &doc)) return 0;
    argv_list a = {0};
    int ok = 1;
    for (int i = 0; ok && head[i]; i++) ok = push(&a, head[i]);
    yaml_node_t *root = yaml_document_get_root_node(&doc), *sec = NULL;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        const char *key = scalar(yaml_document_get_node(&doc, p->key));
        if (key && !strcmp(key, section)) sec = yaml_document_get_node(&doc, p->value);
    }
    if (ok && sec && sec->type != YAML_MAPPING_NODE)
        ok = fail(cmd, path, "line %zu: %s must be a mapping of option: value", sec->start_mark.line + 1, section);
    else if (ok && sec)
        ok = mapping_args(cmd, path, &doc, sec, NULL, &a);
    yaml_document_delete(&doc);
    if (ok && !sec) ok = -1;
    if (ok == -1) {
        finish(&a, 1, argc, argv);
        return -1;
    }
    return finish(&a, ok, argc, argv);
}

const char *kd_cli_config_scalar(const char *path, const char *key, const char *def, char *buf, size_t n) {
    yaml_document_t doc;
    FILE *f = fopen(path, "rb");
    if (!f) return def;
    fclose(f);
    if (!load("pipeline", path, &doc)) return def;
    const char *r = def;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        const char *k = scalar(yaml_document_get_node(&doc, p->key));
        const char *v = scalar(yaml_document_get_node(&doc, p->value));
        if (k && v && !strcmp(k, key) && strlen(v) < n) {
            strcpy(buf, v);
            r = buf;
        }
    }
    yaml_document_delete(&doc);
    return r;
}

void kd_cli_free_args(int argc, char **argv) {
    for (int i = 0; i < argc; i++) free(argv[i]);
    free(argv);
}
