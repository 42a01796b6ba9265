/* ONNX models (https://onnx.ai): import of a CNN teacher from a .onnx file into a distill model
 * (src/format/onnx_import.c), and export of a distill model as ONNX (src/format/onnx_export.c).
 * Both parse and write with protobuf-c's code generated from Debian's onnx.proto. Operators,
 * how each maps and the limits: docs/ONNX.md. */
#ifndef DISTILL_ONNX_H
#define DISTILL_ONNX_H
#include <stddef.h>

#include "distill/int8.h"
#include "distill/model.h"
#include "distill/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ import */

/* Options of an import. mean/std: the input normalisation the model was trained with, n_norm
 * values each (n_norm = the model's input channels, or 1 for the same value on every channel;
 * std > 0), applied to pixels in [0, 1]; stored as the model's norm_mean/norm_std (and in its YAML
 * under `normalize:`). n_norm = 0: none stored. name: the model's name (NULL: the file's name
 * without directory and extension). */
typedef struct kd_onnx_import_opts {
    const float *mean, *std;
    int n_norm;
    const char *name;
} kd_onnx_import_opts;

/* What an import did, for a summary (each may be left NULL by the caller). */
typedef struct kd_onnx_import_info {
    int opset;              /* the default domain's opset (11..17) */
    int n_nodes;            /* nodes in the graph */
    int n_folded;           /* nodes evaluated at import (Constant, Shape/Gather/Concat chains, ...) */
    int n_dropped;          /* nodes without a layer of their own (Identity, Dropout, the final Softmax, ...) */
    int softmax_dropped;    /* the graph ended in a Softmax/LogSoftmax, which was dropped (distill wants logits) */
} kd_onnx_import_info;

/* Read the ONNX model at path (opsets 11..17, the operators of docs/ONNX.md) and build the distill
 * model it describes: layers named after the ONNX value names their nodes output, weights, biases
 * and batch-norm running statistics copied, in eval-mode semantics. o and info may be NULL. Every
 * problem (a malformed or truncated file, external data, several graph inputs, a shape that is not
 * known, an unsupported operator or attribute, sizes over the model limits) is an error naming the
 * file and, where there is one, the node, its op type and the opset; nothing is allocated for a
 * tensor before its size is checked. */
kd_status kd_onnx_import(const char *path, const kd_onnx_import_opts *o, kd_model **out, kd_onnx_import_info *info,
                         kd_error *err);

/* Whether path names an ONNX file by its extension (".onnx"), the one test of the file kind that
 * model loading dispatches on. */
int kd_onnx_is_path(const char *path);

/* ---- Export (src/format/onnx_export.c) ------------------------------------------------------- *
 *
 * The exported graph: ONNX IR version 7, opset KD_ONNX_EXPORT_OPSET (plus the com.microsoft domain,
 * version 1, for the int8 graph's QLinearAdd and QLinearAveragePool), one input "input": float32
 * (N, C, H, W), the normalised image the model computes on (docs/ONNX.md: x = (p / 255 - mean) /
 * std with the model's normalisation, stored in the metadata when the model has one), one output
 * "logits": float32 (N, n_classes); the batch dimension is the symbolic "N". producer_name is
 * "distill", producer_version KD_VERSION_STRING, the graph is named after the model. Every node
 * is named after the layer it computes, and so is its output (the value names a feature term or
 * `distill import` sees again), except that the last layer's output is "logits". */
#define KD_ONNX_EXPORT_OPSET 14
#define KD_ONNX_INPUT_NAME "input"
#define KD_ONNX_OUTPUT_NAME "logits"

/* The fp32 model m (eval mode: batch norm as BatchNormalization with its running statistics,
 * dropout omitted) as a serialised ONNX ModelProto: *bytes malloc'd (free with free()), *len its
 * size. Errors: KD_STATUS_BAD_MODEL naming the layer (a layer the exporter cannot express, two
 * values of one name), KD_STATUS_NO_MEMORY. */
kd_status kd_onnx_export_fp32(const kd_model *m, unsigned char **bytes, size_t *len, kd_error *err);
/* How conv, depthwise and fc layers of an int8 model are written (docs/ONNX.md, "int8"):
 * EXACT: kdrt's arithmetic in standard operators (a float Conv on the exact integers, then kdrt's
 *   two-rounding requantization in int64 operators): the same int8 outputs as kdrt, bit for bit;
 *   runtimes run it as float and integer element-wise ops, not as their int8 kernels. Layers whose
 *   sums could exceed float's exact integers fall back to QLinearConv.
 * QLINEAR: QLinearConv, the form int8 runtimes and accelerator toolchains fuse into their kernels;
 *   it requantizes once in float, so a few outputs per layer land one step from kdrt's. */
typedef enum kd_onnx_int8_ops { KD_ONNX_INT8_EXACT = 0, KD_ONNX_INT8_QLINEAR } kd_onnx_int8_ops;

/* The int8 model q: QuantizeLinear of the float input with q's input quantization, conv, depthwise
 * conv (group = C) and fully connected layers (a convolution whose kernel covers the whole input,
 * so the int32 bias stays in the integer accumulator) as `ops` says, MaxPool on int8,
 * com.microsoft QLinearAveragePool and QLinearAdd, DequantizeLinear to the float logits. Weights per
 * output channel int8 (zero point 0), activations per tensor int8 with their zero points, biases
 * int32. Errors: KD_STATUS_BAD_MODEL naming the layer (inconsistent shapes or inputs, a window
 * ONNX's pads cannot express), KD_STATUS_NO_MEMORY. */
kd_status kd_onnx_export_int8(const kd_int8_model *q, kd_onnx_int8_ops ops, unsigned char **bytes, size_t *len,
                              kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
