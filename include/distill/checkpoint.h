/* Checkpoints in the safetensors format (https://github.com/huggingface/safetensors):
 *   u64 little-endian header size N | N bytes of JSON header | raw tensor data.
 * Tensors are F32, named "<layer>.weight", "<layer>.bias", "<layer>.running_mean",
 * "<layer>.running_var", and with a training state "optim.m.<...>", "optim.v.<...>".
 * The metadata holds "format": "distill", "version", "model_yaml" (the model description) and, for
 * a training checkpoint, "epoch", "step", "rng_state", "rng_inc", "best_val_acc", "optimizer".
 * Writes are atomic (distill/fileio.h): temp file in the same directory, fsync, rename.
 * src/format/ckpt_fp32.c, a client of the one safetensors layer (src/format/safetensors.c). */
#ifndef DISTILL_CHECKPOINT_H
#define DISTILL_CHECKPOINT_H
#include "distill/model.h"
#include "distill/status.h"
#include "distill/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* opt and st may be NULL (a model-only checkpoint). */
kd_status kd_checkpoint_save(const char *path, const kd_model *m, const kd_optimizer *opt,
                             const kd_train_state *st, kd_error *err);
/* Build the model described in the checkpoint and load its weights. */
kd_status kd_checkpoint_load(const char *path, kd_model **out, kd_error *err);
/* Load weights (and, if opt/st are non-NULL and the file holds them, the training state) into an
 * existing model; every tensor's name and shape must match. *has_state (may be NULL) tells whether
 * a training state was found. */
kd_status kd_checkpoint_load_into(const char *path, kd_model *m, kd_optimizer *opt, kd_train_state *st,
                                  int *has_state, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
