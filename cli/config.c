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
#include "distill/yaml_doc.h"

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

/* Where each argv string taken from a YAML file came from ("run.yaml:3: "), so that the commands'
 * own range checks (kd_cli_int, kd_cli_float) name the file and line of a bad value: a table keyed
 * by the string's address, filled as strings are taken from a file and emptied as they are freed.
 * The CLI's one piece of state besides kd_cli_stop; the file's path must outlive its strings. */
typedef struct {
    const char *s;
    char *where;
} origin;
static origin *origins;
static int n_origins, cap_origins;

/* Record that s came from where ("FILE:LINE: "). */
static int note_where(const char *s, const char *where) {
    if (n_origins == cap_origins) {
        int cap = cap_origins ? 2 * cap_origins : 64;
        origin *o = realloc(origins, sizeof *o * (size_t)cap);
        if (!o) return 0;
        origins = o;
        cap_origins = cap;
    }
    char *w = strdup(where);
    if (!w) return 0;
    origins[n_origins++] = (origin){s, w};
    return 1;
}

static int note(const char *s, const char *path, size_t line) {
    char where[1100];
    snprintf(where, sizeof where, "%.1000s:%zu: ", path, line);
    return note_where(s, where);
}

static void forget(const char *s) {
    for (int i = n_origins - 1; i >= 0; i--)
        if (origins[i].s == s) {
            free(origins[i].where);
            origins[i] = origins[--n_origins];
        }
    if (!n_origins) {
        free(origins);
        origins = NULL;
        cap_origins = 0;
    }
}

const char *kd_cli_config_where(const char *s) {
    for (int i = 0; s && i < n_origins; i++)
        if (origins[i].s == s) return origins[i].where;
    return "";
}

/* "distill CMD: error: FILE: message", or "FILE:LINE: message" about one line of the file (the
 * form every message about a place in a YAML file takes: kd_cli_config_where, the YAML loader's).
 * Returns 0. */
static int vfail(const char *cmd, const char *path, size_t line, const char *fmt, va_list ap) {
    char msg[512], at[32] = "";
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (line) snprintf(at, sizeof at, ":%zu", line);
    fprintf(stderr, "distill %s: error: %s%s: %s\n", cmd, path, at, msg);
    return 0;
}

static int fail(const char *cmd, const char *path, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(cmd, path, 0, fmt, ap);
    va_end(ap);
    return 0;
}

static int fail_line(const char *cmd, const char *path, size_t line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(cmd, path, line, fmt, ap);
    va_end(ap);
    return 0;
}

/* A YAML file read once: run files and pipeline files. */
struct kd_cli_yaml {
    yaml_document_t doc;
    const char *cmd, *path;
};

kd_cli_yaml *kd_cli_yaml_open(const char *cmd, const char *path) {
    kd_cli_yaml *y = calloc(1, sizeof *y);
    char *text = NULL;
    size_t len = 0;
    kd_error err;
    if (!y) {
        fail(cmd, path, "out of memory");
        return NULL;
    }
    y->cmd = cmd;
    y->path = path;
    kd_status st = kd_yaml_read_file(path, &text, &len, &err);
    if (!st) st = kd_yaml_load(&y->doc, text, len, path, &err);
    free(text);
    if (st) {
        fprintf(stderr, "distill %s: error: %s\n", cmd, err.msg);
        free(y);
        return NULL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&y->doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        fail(cmd, path, "the file must be a mapping of key: value");
        kd_cli_yaml_close(y);
        return NULL;
    }
    return y;
}

void kd_cli_yaml_close(kd_cli_yaml *y) {
    if (!y) return;
    for (yaml_node_t *n = y->doc.nodes.start; n && n < y->doc.nodes.top; n++)
        if (n->type == YAML_SCALAR_NODE) forget((const char *)n->data.scalar.value);
    yaml_document_delete(&y->doc);
    free(y);
}

/* Edit distance of a and b if it is at most 2 (a typo), else 3. */
static int typo_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64 || (la > lb ? la - lb : lb - la) > 2) return 3;
    int d[65][65];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]), del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb] < 3 ? d[la][lb] : 3;
}

/* " (did you mean 'x'?)" for the closest of names (dashes and underscores alike), or "". */
static void did_you_mean(const char *key, const char *const *names, const struct option *const *tables, char *buf,
                         size_t n) {
    char k[96];
    snprintf(k, sizeof k, "%s", key);
    int best = strlen(k) <= 4 ? 2 : 3; /* one edit in a short name, two in a longer one */
    buf[0] = 0;
    for (char *c = k; *c; c++)
        if (*c == '_') *c = '-';
    for (int i = 0; names && names[i]; i++)
        if (typo_distance(k, names[i]) < best) best = typo_distance(k, names[i]), snprintf(buf, n, " (did you mean '%s'?)", names[i]);
    for (int t = 0; tables && tables[t]; t++)
        for (const struct option *q = tables[t]; q->name; q++)
            if (typo_distance(k, q->name) < best) best = typo_distance(k, q->name), snprintf(buf, n, " (did you mean '%s'?)", q->name);
}

/* The option of the tables (NULL-terminated list) named opt, or NULL. */
static const struct option *find_option(const struct option *const *tables, const char *opt) {
    for (int t = 0; tables[t]; t++)
        for (const struct option *q = tables[t]; q->name; q++)
            if (!strcmp(q->name, opt)) return q;
    return NULL;
}

/* Push a string taken from the file at line (0: not from the file). */
static int push_at(argv_list *a, const char *s, const char *path, size_t line) {
    return push(a, s) && (!line || note(a->v[a->n - 1], path, line));
}

/* Append the options of a mapping node. Keys must be long options of the tables (of the command
 * `what`; flags take true/false). */
static int mapping_args(const kd_cli_yaml *y, yaml_node_t *map, const struct option *const *tables, const char *what,
                        argv_list *a) {
    const char *cmd = y->cmd, *path = y->path;
    yaml_document_t *doc = (yaml_document_t *)&y->doc;
    int ok = 1;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; ok && p < map->data.mapping.pairs.top; p++) {
        const char *key = scalar(yaml_document_get_node(doc, p->key));
        yaml_node_t *val = yaml_document_get_node(doc, p->value);
        size_t line = val->start_mark.line + 1;
        char opt[96], text[1024], hint[96];
        if (!key || strlen(key) > 80) return fail_line(cmd, path, line, "keys must be option names");
        snprintf(opt, sizeof opt, "--%s", key);
        for (char *c = opt; *c; c++)
            if (*c == '_') *c = '-';
        const struct option *fl = find_option(tables, opt + 2);
        if (!fl || !strcmp(opt + 2, "config") || !strcmp(opt + 2, "help") || !strcmp(opt + 2, "check")) {
            did_you_mean(key, NULL, tables, hint, sizeof hint);
            return fail_line(cmd, path, line, "'%s' is not an option of distill %s%s (see --help)", key, what,
                        hint);
        }
        const char *sv = scalar(val);
        int is_bool = sv && (!strcmp(sv, "true") || !strcmp(sv, "false") || !strcmp(sv, "yes") || !strcmp(sv, "no"));
        if (!fl->has_arg) { /* a flag: true / false */
            if (!is_bool) return fail_line(cmd, path, line, "%s is a flag: true or false", key);
            if (!strcmp(sv, "true") || !strcmp(sv, "yes")) ok = push_at(a, opt, path, line);
            continue;
        }
        if (val->type == YAML_SEQUENCE_NODE) {
            for (yaml_node_item_t *it = val->data.sequence.items.start; ok && it < val->data.sequence.items.top; it++) {
                yaml_node_t *n = yaml_document_get_node(doc, *it);
                if (!item_text(doc, n, text, sizeof text))
                    return fail_line(cmd, path, n->start_mark.line + 1, "cannot read this item of %s", key);
                ok = push_at(a, opt, path, n->start_mark.line + 1) && push_at(a, text, path, n->start_mark.line + 1);
            }
        } else if (val->type == YAML_MAPPING_NODE) {
            text[0] = 0;
            if (!mapping_text(doc, val, text, sizeof text, NULL))
                return fail_line(cmd, path, line, "%s must map names to values", key);
            ok = push_at(a, opt, path, line) && push_at(a, text, path, line);
        } else {
            ok = push_at(a, opt, path, line) && push_at(a, sv ? sv : "", path, line);
        }
    }
    return ok;
}

static int finish(argv_list *a, int ok, int *argc, char ***argv) {
    if (!ok) {
        kd_cli_free_args(a->n, a->v);
        return 0;
    }
    *argc = a->n;
    *argv = a->v;
    return 1;
}

int kd_cli_config_args(const char *cmd, const char *path, const struct option *flags, int *argc, char ***argv,
                       int *n_from_file) {
    kd_cli_yaml *y = kd_cli_yaml_open(cmd, path);
    if (!y) return 0;
    const struct option *tables[] = {flags, NULL};
    argv_list a = {0};
    int ok = push(&a, (*argv)[0]) && mapping_args(y, yaml_document_get_root_node(&y->doc), tables, cmd, &a);
    kd_cli_yaml_close(y);
    *n_from_file = a.n;
    /* the command line comes after the file, so it overrides it */
    for (int i = 1; ok && i < *argc; i++) ok = push(&a, (*argv)[i]);
    return finish(&a, ok, argc, argv);
}

/* The value node of a top-level key, or NULL. */
static yaml_node_t *top(const kd_cli_yaml *y, const char *key) {
    yaml_document_t *doc = (yaml_document_t *)&y->doc;
    yaml_node_t *root = yaml_document_get_root_node(doc), *r = NULL;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        const char *k = scalar(yaml_document_get_node(doc, p->key));
        if (k && !strcmp(k, key)) r = yaml_document_get_node(doc, p->value);
    }
    return r;
}

int kd_cli_config_keys(const kd_cli_yaml *y, const char *const *known, const char *const *required) {
    yaml_document_t *doc = (yaml_document_t *)&y->doc;
    yaml_node_t *root = yaml_document_get_root_node(doc);
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key);
        const char *k = scalar(kn);
        int found = 0;
        for (int i = 0; k && known[i]; i++) found |= !strcmp(k, known[i]);
        if (!found) {
            char hint[96] = "";
            if (k) did_you_mean(k, known, NULL, hint, sizeof hint);
            if (!k) return fail_line(y->cmd, y->path, kn->start_mark.line + 1, "section names must be plain names");
            return fail_line(y->cmd, y->path, kn->start_mark.line + 1, "unknown section '%s'%s", k, hint);
        }
    }
    for (int i = 0; required && required[i]; i++)
        if (!top(y, required[i])) return fail(y->cmd, y->path, "no '%s:' section (it is required)", required[i]);
    return 1;
}

int kd_cli_config_section(const kd_cli_yaml *y, const char *section, const struct option *const *tables,
                          const char *const *head, int *argc, char ***argv) {
    argv_list a = {0};
    int ok = 1;
    for (int i = 0; ok && head[i]; i++) { /* a head string from the file (a top-level scalar) keeps its origin */
        const char *w = kd_cli_config_where(head[i]);
        ok = push(&a, head[i]) && (!*w || note_where(a.v[a.n - 1], w));
    }
    yaml_node_t *sec = top(y, section);
    if (ok && sec && sec->type != YAML_MAPPING_NODE)
        ok = fail_line(y->cmd, y->path, sec->start_mark.line + 1, "%s must be a mapping of option: value", section);
    else if (ok && sec)
        ok = mapping_args(y, sec, tables, head[0], &a);
    if (!finish(&a, ok, argc, argv)) return 0;
    return sec ? 1 : -1;
}

int kd_cli_config_scalar(const kd_cli_yaml *y, const char *key, const char *def, const char **value) {
    yaml_node_t *n = top(y, key);
    *value = def;
    if (!n) return 1;
    if (!scalar(n)) return fail_line(y->cmd, y->path, n->start_mark.line + 1, "%s must be a single value", key);
    *value = scalar(n);
    return note(*value, y->path, n->start_mark.line + 1);
}

void kd_cli_free_args(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        forget(argv[i]);
        free(argv[i]);
    }
    free(argv);
}
