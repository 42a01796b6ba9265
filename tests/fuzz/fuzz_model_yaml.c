/* libFuzzer target for the model YAML reader and writer (src/format/model_yaml.c): any text goes
 * through kd_model_from_yaml; a model it accepts is written back with kd_model_yaml_from_layers,
 * which must read back to the same layers (the writer's promise), and its resolved text (m->yaml:
 * `input: auto` and `out: classes` replaced) must rebuild the same model. Built and run by
 * scripts/fuzz.sh; tests/unit/test_fuzz_corpus.c replays tests/fuzz/corpus/model_yaml. */
#include <stdlib.h>
#include <string.h>

#include "distill/model.h"
#include "fuzz_file.h"

/* input_type and class_names (issue 14) read back as they were */
static int same_data_keys(const kd_model *a, const kd_model *b) {
    if (a->input_values != b->input_values || !a->class_names != !b->class_names || a->n_classes != b->n_classes)
        return 0;
    for (int i = 0; a->class_names && i < a->n_classes; i++)
        if (strcmp(a->class_names[i], b->class_names[i])) return 0;
    return 1;
}

static int fuzz_model_yaml(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    kd_model *m = NULL, *again = NULL;
    kd_error err;
    int ok = kd_model_from_yaml(&m, text, "fuzz.yaml", 1, &err) == KD_STATUS_OK;
    free(text);
    char *yaml = NULL;
    if (ok && kd_model_yaml_from_layers(m, m->layers, m->n_layers, &yaml, &err) == KD_STATUS_OK) {
        /* the written text must rebuild the same model */
        if (kd_model_from_yaml(&again, yaml, "written.yaml", 1, &err) != KD_STATUS_OK ||
            again->n_layers != m->n_layers || again->n_params != m->n_params || again->n_buffers != m->n_buffers ||
            !again->norm_mean != !m->norm_mean ||
            (m->norm_mean && (memcmp(again->norm_mean, m->norm_mean, (size_t)m->in_c * sizeof(float)) ||
                              memcmp(again->norm_std, m->norm_std, (size_t)m->in_c * sizeof(float)))) ||
            !same_data_keys(again, m))
            abort();
        kd_model_free(again);
        again = NULL;
        /* the model's own (resolved) text rebuilds it without the data: what a checkpoint holds */
        if (kd_model_from_yaml(&again, m->yaml, "resolved.yaml", 1, &err) != KD_STATUS_OK ||
            again->in_c != m->in_c || again->in_h != m->in_h || again->in_w != m->in_w ||
            again->n_params != m->n_params || !same_data_keys(again, m) || strcmp(again->yaml, m->yaml))
            abort();
        kd_model_free(again);
    }
    free(yaml);
    kd_model_free(m);
    return ok;
}

KD_FUZZ_TARGET(fuzz_model_yaml)
