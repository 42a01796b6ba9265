/* Internal to the model code: shared between the YAML parser and the builder. */
#ifndef KD_MODEL_INTERNAL_H
#define KD_MODEL_INTERNAL_H
#include "distill/model.h"

/* Assign parameter/buffer offsets from the layer table and allocate params, grads, buffers. */
kd_status kd_model_layout_params(kd_model *m, kd_error *err);

/* Samples per layer output (c*h*w). */
static inline size_t kd_layer_in_size(const kd_layer *L) { return (size_t)L->in_c * L->in_h * L->in_w; }

#endif
