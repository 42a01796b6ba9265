/* The model YAML writer, beside its reader (model_yaml.c): a layer table back into the text the
 * reader takes (model surgery: pruning, BN folding, ONNX import), and the data's normalisation,
 * input type and class names written into a model's YAML after the fact (kd_model_set_data_info). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "distill/data.h"
#include "distill/model.h"
#include "distill/yaml_doc.h"
#include "format/model_yaml_internal.h"

/* ---------------------------------------------------------------- writer */

typedef struct sbuf {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) { b->oom = 1; return; }
        if (b->s && b->len + (size_t)n < b->cap) { b->len += (size_t)n; return; }
        size_t cap = b->cap ? b->cap : 1024;
        while (cap <= b->len + (size_t)n) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) { b->oom = 1; return; }
        b->s = p;
        b->cap = cap;
    }
}

/* A YAML single-quoted scalar: names may hold ',', ':', '#', '{' ... which would end a plain
 * scalar inside a flow mapping; a quote inside is doubled. */
static void sb_quoted(sbuf *b, const char *s) {
    sb_printf(b, "'");
    for (; *s; s++) sb_printf(b, *s == '\'' ? "''" : "%c", *s);
    sb_printf(b, "'");
}

/* A flow sequence of n floats with 9 significant digits (exact for float32). */
static void sb_floats(sbuf *b, const float *v, int n) {
    sb_printf(b, "[");
    for (int i = 0; i < n; i++) sb_printf(b, "%s%.9g", i ? ", " : "", (double)v[i]);
    sb_printf(b, "]");
}

/* The keys of what the data says, those m has: normalize, input_type (values only; pixels is the
 * default) and class_names, quoted so that any name reads back as it is. */
static void sb_data_keys(sbuf *b, const kd_model *m) {
    if (m->norm_mean && m->norm_std) {
        sb_printf(b, "normalize: {mean: ");
        sb_floats(b, m->norm_mean, m->in_c);
        sb_printf(b, ", std: ");
        sb_floats(b, m->norm_std, m->in_c);
        sb_printf(b, "}\n");
    }
    if (m->input_values) sb_printf(b, "input_type: values\n");
    if (m->class_names) {
        sb_printf(b, "class_names: [");
        for (int i = 0; i < m->n_classes; i++) {
            if (i) sb_printf(b, ", ");
            sb_quoted(b, m->class_names[i]);
        }
        sb_printf(b, "]\n");
    }
}

kd_status kd_model_yaml_from_layers(const kd_model *like, const kd_layer *layers, int n_layers, char **yaml,
                                    kd_error *err) {
    *yaml = NULL;
    if (!layers || n_layers < 1) return kd_error_set(err, KD_STATUS_BAD_ARG, "a model needs at least one layer");
    sbuf b = {0};
    sb_printf(&b, "# written by distill (model surgery)\nname: ");
    sb_quoted(&b, like->name[0] ? like->name : "model");
    sb_printf(&b, "\ninput: [%d, %d, %d]\n", like->in_c, like->in_h, like->in_w);
    sb_data_keys(&b, like);
    sb_printf(&b, "layers:\n");
    for (int i = 0; i < n_layers; i++) {
        const kd_layer *L = &layers[i];
        if (L->type < 0 || L->type >= KD_LAYER_COUNT) {
            free(b.s);
            return kd_error_set(err, KD_STATUS_BAD_ARG, "layer %d: bad type %d", i, (int)L->type);
        }
        sb_printf(&b, "  - {name: ");
        sb_quoted(&b, L->name);
        sb_printf(&b, ", type: %s", kd_layer_type_name(L->type));
        switch (L->type) {
        case KD_LAYER_CONV2D:
            sb_printf(&b, ", out: %d, kernel: %d, stride: %d, pad: %d, groups: %d, bias: %s", L->out, L->kernel,
                      L->stride, L->pad, L->groups, L->bias ? "true" : "false");
            if (L->dilation > 1) sb_printf(&b, ", dilation: %d", L->dilation);
            break;
        case KD_LAYER_LINEAR: sb_printf(&b, ", out: %d, bias: %s", L->out, L->bias ? "true" : "false"); break;
        case KD_LAYER_MAXPOOL:
        case KD_LAYER_AVGPOOL:
            sb_printf(&b, ", kernel: %d, stride: %d", L->kernel, L->stride);
            if (L->pad) sb_printf(&b, ", pad: %d", L->pad);
            if (L->ceil_mode) sb_printf(&b, ", ceil_mode: true");
            if (L->type == KD_LAYER_AVGPOOL && !L->count_pad) sb_printf(&b, ", count_pad: false");
            break;
        case KD_LAYER_CLIP: sb_printf(&b, ", lo: %.9g, hi: %.9g", (double)L->lo, (double)L->hi); break;
        case KD_LAYER_LEAKY_RELU: sb_printf(&b, ", alpha: %.9g", (double)L->alpha); break;
        case KD_LAYER_HARD_SIGMOID: sb_printf(&b, ", alpha: %.9g, beta: %.9g", (double)L->alpha, (double)L->beta); break;
        case KD_LAYER_PAD:
            sb_printf(&b, ", pads: [%d, %d, %d, %d], value: %.9g", L->pads[0], L->pads[1], L->pads[2], L->pads[3],
                      (double)L->value);
            break;
        case KD_LAYER_SCALE: sb_printf(&b, ", per_channel: %s", L->out == 1 ? "false" : "true"); break;
        case KD_LAYER_BATCHNORM:
            sb_printf(&b, ", eps: %.9g, momentum: %.9g", (double)L->eps, (double)L->momentum);
            break;
        case KD_LAYER_DROPOUT: sb_printf(&b, ", p: %.9g", (double)L->p); break;
        default: break;
        }
        int n_in = L->type == KD_LAYER_ADD || L->type == KD_LAYER_MUL ? 2 : L->type == KD_LAYER_CONCAT ? L->n_inputs : 1;
        if (n_in < 1 || n_in > KD_LAYER_MAX_INPUTS) {
            free(b.s);
            return kd_error_set(err, KD_STATUS_BAD_ARG, "layer %s: %d inputs", L->name, n_in);
        }
        if (n_in >= 2 || L->inputs[0] != i - 1) {
            sb_printf(&b, ", inputs: [");
            for (int k = 0; k < n_in; k++) {
                int j = L->inputs[k];
                if (j != KD_MODEL_INPUT && (j < 0 || j >= i)) {
                    free(b.s);
                    return kd_error_set(err, KD_STATUS_BAD_ARG, "layer %s: input %d is not an earlier layer",
                                        L->name, j);
                }
                if (k) sb_printf(&b, ", ");
                if (j == KD_MODEL_INPUT) sb_printf(&b, "input");
                else sb_quoted(&b, layers[j].name);
            }
            sb_printf(&b, "]");
        }
        sb_printf(&b, "}\n");
    }
    if (b.oom) {
        free(b.s);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory writing model YAML");
    }
    *yaml = b.s;
    return KD_STATUS_OK;
}

/* ------------------------------------------------- what the data says, set after the fact */

/* yaml with its top-level keys normalize, input_type and class_names taken out (each key's lines up
 * to the next key) and keys appended: the layers' text stays as written. NULL when yaml is not a
 * block mapping whose keys each start a line (the caller checks the result and writes the model anew
 * when it is NULL or does not build the same model). */
static char *replace_data_keys(const char *yaml, const char *keys) {
    yaml_document_t doc;
    size_t len = strlen(yaml);
    if (kd_yaml_load(&doc, yaml, len, "<model>", NULL)) return NULL;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    size_t cut[3][2], n_cut = 0;  /* line ranges [from, to) to leave out */
    int ok = root && root->type == YAML_MAPPING_NODE && root->data.mapping.style == YAML_BLOCK_MAPPING_STYLE;
    for (yaml_node_pair_t *kv = ok ? root->data.mapping.pairs.start : NULL; ok && kv < root->data.mapping.pairs.top; kv++) {
        yaml_node_t *k = yaml_document_get_node(&doc, kv->key);
        const char *name = kd_yaml_node_scalar(k);
        ok = name && k->start_mark.column == 0;
        if (ok && (!strcmp(name, "normalize") || !strcmp(name, "input_type") || !strcmp(name, "class_names"))) {
            cut[n_cut][0] = k->start_mark.line;
            cut[n_cut][1] = kv + 1 < root->data.mapping.pairs.top
                                ? yaml_document_get_node(&doc, kv[1].key)->start_mark.line : (size_t)-1;
            ok = n_cut++ < 2;
        }
    }
    yaml_document_delete(&doc);
    char *out = ok ? malloc(len + strlen(keys) + 2) : NULL;
    if (!out) return NULL;
    char *w = out;
    size_t line = 0;
    for (const char *l = yaml; *l; line++) {
        const char *nl = strchr(l, '\n');
        size_t ll = nl ? (size_t)(nl - l) + 1 : strlen(l);
        int keep = 1;
        for (size_t c = 0; c < n_cut; c++) keep &= line < cut[c][0] || line >= cut[c][1];
        if (keep) {
            memcpy(w, l, ll);
            w += ll;
        }
        l += ll;
    }
    if (w > out && w[-1] != '\n') *w++ = '\n';
    strcpy(w, keys);
    return out;
}

/* 1 if text builds the layers that m's own text builds and carries want's data keys. */
static int same_model_with(const kd_model *m, const char *text, const kd_model *want) {
    kd_model *a = NULL, *b = NULL;
    int same = !kd_model_yaml_parse(&a, m->yaml, strlen(m->yaml), "<model>", 0, NULL, 0, NULL) &&
               !kd_model_yaml_parse(&b, text, strlen(text), "<model>", 0, NULL, 0, NULL) &&
               a->in_c == b->in_c && a->in_h == b->in_h && a->in_w == b->in_w && a->n_layers == b->n_layers &&
               !memcmp(a->layers, b->layers, (size_t)a->n_layers * sizeof *a->layers) &&
               b->input_values == want->input_values && !b->norm_mean == !want->norm_mean &&
               !b->class_names == !want->class_names;
    if (same && want->norm_mean)
        same = !memcmp(b->norm_mean, want->norm_mean, (size_t)b->in_c * sizeof *b->norm_mean) &&
               !memcmp(b->norm_std, want->norm_std, (size_t)b->in_c * sizeof *b->norm_std);
    for (int i = 0; same && want->class_names && i < b->n_classes; i++)
        same = !strcmp(b->class_names[i], want->class_names[i]);
    kd_model_free(a);
    kd_model_free(b);
    return same;
}

kd_status kd_model_set_data_info(kd_model *m, const float *norm_mean, const float *norm_std, int input_values,
                                 const char *const *class_names, int n, kd_error *err) {
    if (!m || !norm_mean != !norm_std || input_values < -1 || input_values > 1)
        return kd_error_set(err, KD_STATUS_BAD_ARG,
                            "kd_model_set_data_info: needs a model, norm_mean and norm_std both or neither, "
                            "input_values -1, 0 or 1");
    for (int c = 0; norm_mean && c < m->in_c; c++)
        if (!isfinite(norm_mean[c]) || !isfinite(norm_std[c]) || !(norm_std[c] > 0.f))
            return kd_error_set(err, KD_STATUS_BAD_ARG,
                                "model %s: input channel %d's normalisation (mean %g, std %g) must be finite, std > 0",
                                m->name, c, (double)norm_mean[c], (double)norm_std[c]);
    if (class_names && n != m->n_classes)
        return kd_error_set(err, KD_STATUS_MISMATCH, "model %s has %d classes, %d class names were given", m->name,
                            m->n_classes, n);
    for (int i = 0; class_names && i < n; i++) {
        const char *why = class_names[i] ? kd_class_name_problem(class_names[i]) : "is missing";
        if (why) return kd_error_set(err, KD_STATUS_BAD_ARG, "model %s: class name %d %s", m->name, i, why);
    }
    kd_model want = *m; /* m with the new fields, for the writer and the check */
    float *mean = NULL, *std = NULL;
    char **names = NULL, *yaml = NULL;
    sbuf keys = {0};
    kd_status st = KD_STATUS_NO_MEMORY;
    if (norm_mean) {
        if (!(mean = malloc((size_t)m->in_c * sizeof *mean)) || !(std = malloc((size_t)m->in_c * sizeof *std)))
            goto done;
        memcpy(mean, norm_mean, (size_t)m->in_c * sizeof *mean);
        memcpy(std, norm_std, (size_t)m->in_c * sizeof *std);
        want.norm_mean = mean;
        want.norm_std = std;
    }
    if (input_values >= 0) want.input_values = input_values;
    if (class_names && !(want.class_names = names = kd_model_yaml_class_names_copy(class_names, n))) goto done;
    sb_data_keys(&keys, &want);
    if (keys.oom) goto done;
    if (m->yaml && (yaml = replace_data_keys(m->yaml, keys.s ? keys.s : "")) && !same_model_with(m, yaml, &want)) {
        free(yaml);
        yaml = NULL;
    }
    if (!yaml && (st = kd_model_yaml_from_layers(&want, m->layers, m->n_layers, &yaml, err))) goto done;
    if (mean) {
        free(m->norm_mean);
        free(m->norm_std);
        m->norm_mean = mean;
        m->norm_std = std;
    }
    if (names) {
        free(m->class_names);
        m->class_names = names;
    }
    m->input_values = want.input_values;
    free(m->yaml);
    m->yaml = yaml;
    free(keys.s);
    return KD_STATUS_OK;
done:
    free(mean);
    free(std);
    free(names);
    free(keys.s);
    return st == KD_STATUS_NO_MEMORY ? kd_error_set(err, st, "out of memory") : st;
}
