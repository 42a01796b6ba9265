/* Student initialisation from teacher layers (DistilBERT: the student keeps every other layer of
 * the teacher). Parameters are copied layer by layer where types and shapes agree. */
#include <stdio.h>
#include <string.h>

#include "distill/distill.h"

static int same_shape(const kd_layer *a, const kd_layer *b) {
    return a->type == b->type && a->w_size == b->w_size && a->b_size == b->b_size && a->c == b->c &&
           a->in_c == b->in_c && a->kernel == b->kernel && a->groups == b->groups;
}

static void copy_layer(kd_model *s, const kd_layer *ls, const kd_model *t, const kd_layer *lt) {
    memcpy(s->params + ls->w_off, t->params + lt->w_off, sizeof(float) * ls->w_size);
    memcpy(s->params + ls->b_off, t->params + lt->b_off, sizeof(float) * ls->b_size);
    if (ls->type == KD_LAYER_BATCHNORM)
        memcpy(s->buffers + ls->buf_off, t->buffers + lt->buf_off, sizeof(float) * 2 * (size_t)ls->c);
}

static void note(char *report, size_t n, const char *s, const char *t) {
    size_t k = strlen(report);
    if (k < n) snprintf(report + k, n - k, "%s%s<-%s", k ? " " : "", s, t);
}

kd_status kd_init_from_teacher(kd_model *student, const kd_model *teacher, const char *map, char *report,
                               size_t report_len, kd_error *err) {
    if (report_len) report[0] = 0;
    int copied = 0;
    if (!map || !*map || !strcmp(map, "auto")) {
        for (int i = 0; i < student->n_layers; i++) {
            const kd_layer *ls = &student->layers[i];
            int j = kd_model_find_layer(teacher, ls->name);
            if (ls->w_size + ls->b_size == 0 || j < 0 || !same_shape(ls, &teacher->layers[j])) continue;
            copy_layer(student, ls, teacher, &teacher->layers[j]);
            note(report, report_len, ls->name, ls->name);
            copied++;
        }
        if (!copied)
            return kd_error_set(err, KD_STATUS_MISMATCH,
                                "no layer of %s has the name and shape of a layer of %s; give a map "
                                "(student_layer=teacher_layer,...)", student->name, teacher->name);
        return KD_STATUS_OK;
    }
    char buf[1024];
    if (strlen(map) >= sizeof buf) return kd_error_set(err, KD_STATUS_BAD_ARG, "layer map too long");
    strcpy(buf, map);
    for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *tn = strchr(kv, '=');
        if (!tn) return kd_error_set(err, KD_STATUS_BAD_ARG, "layer map entry '%s' is not student=teacher", kv);
        *tn++ = 0;
        int i = kd_model_find_layer(student, kv), j = kd_model_find_layer(teacher, tn);
        if (i < 0) return kd_error_set(err, KD_STATUS_BAD_ARG, "layer map: student %s has no layer '%s'", student->name, kv);
        if (j < 0) return kd_error_set(err, KD_STATUS_BAD_ARG, "layer map: teacher %s has no layer '%s'", teacher->name, tn);
        const kd_layer *ls = &student->layers[i], *lt = &teacher->layers[j];
        if (!same_shape(ls, lt) || ls->w_size + ls->b_size == 0)
            return kd_error_set(err, KD_STATUS_MISMATCH,
                                "layer map: student %s (%s, %zu weights) and teacher %s (%s, %zu weights) differ in "
                                "type or shape, or hold no parameters", kv, kd_layer_type_name(ls->type), ls->w_size,
                                tn, kd_layer_type_name(lt->type), lt->w_size);
        copy_layer(student, ls, teacher, lt);
        note(report, report_len, kv, tn);
    }
    return KD_STATUS_OK;
}
