/* ONNX: distill models from and to the format every framework reads (issue 13; docs/ONNX.md). The
 * file is onnx.proto, parsed and serialised by protobuf-c's code generated at build time from the
 * onnx.proto that Debian's libonnx-dev ships. */
#ifndef DISTILL_ONNX_H
#define DISTILL_ONNX_H
#include <stddef.h>

#include "distill/int8.h"
#include "distill/model.h"
#include "distill/status.h"

#ifdef __cplusplus
extern "C" {
#endif

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
/* The int8 model q (docs/ONNX.md, "int8"): QuantizeLinear of the float input with q's input
 * quantization, QLinearConv for conv, depthwise conv (group = C) and fully connected layers
 * (a convolution whose kernel covers the whole input, so the int32 bias stays in the integer
 * accumulator), MaxPool on int8, com.microsoft QLinearAveragePool and QLinearAdd, Clip on int8
 * for a fused ReLU's clamp, DequantizeLinear to the float logits. Weights per output channel
 * int8 (zero point 0), activations per tensor int8 with their zero points, biases int32. Errors:
 * KD_STATUS_BAD_MODEL naming the layer (inconsistent shapes or inputs, a window ONNX's pads
 * cannot express), KD_STATUS_NO_MEMORY. */
kd_status kd_onnx_export_int8(const kd_int8_model *q, unsigned char **bytes, size_t *len, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
