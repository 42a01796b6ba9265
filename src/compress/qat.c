/* Quantization-aware training: attaches fake quantization (src/nn/fake_quant.h, run by
 * kd_model_forward / backward when the model has one) to an fp32 model, switched on for the
 * weights and outputs an int8 model quantizes, with its scales, zero points and clamps. kd_train
 * needs nothing else, so QAT composes with distillation, pruning masks, checkpoints and resume.
 * compress may include nn's internal header nn/fake_quant.h: nn is below compress. */
#include "distill/quantize.h"
#include "nn/fake_quant.h"

kd_status kd_fake_quant_attach(kd_model *m, const kd_int8_model *q, kd_error *err) {
    if (!m || !q) return kd_error_set(err, KD_STATUS_BAD_ARG, "kd_fake_quant_attach: no model");
    kd_status st = kd_fake_quant_alloc(m, q->weight_bits, q->weight_group, err);
    if (st) return st;
    kd_fake_quant *f = kd_model_fake_quant(m);
    int nl = m->n_layers;
    for (int k = 0; k < q->n_layers; k++) {
        const kd_int8_layer *Q = &q->layers[k];
        int i = kd_model_find_layer(m, Q->name);
        /* the layer whose output Q stores: a fused ReLU follows its producer directly */
        int src = i;
        if (i >= 0 && Q->relu && m->layers[i].type != KD_LAYER_RELU)
            for (int j = i + 1; j < nl; j++)
                if (m->layers[j].type == KD_LAYER_RELU && m->layers[j].inputs[0] == i) { src = j; break; }
        if (i < 0 || (Q->relu && m->layers[src].type != KD_LAYER_RELU)) {
            kd_fake_quant_detach(m);
            return kd_error_set(err, KD_STATUS_BAD_MODEL, "%s: int8 layer %s has no matching layer in the model",
                                m->name, Q->name);
        }
        if (Q->weight) f->w_on[i] = 1;
        kdrt_activation a = Q->op == KD_INT8_CONV || Q->op == KD_INT8_DEPTHWISE ? Q->conv.activation
                            : Q->op == KD_INT8_FC                               ? Q->fc.activation
                            : Q->op == KD_INT8_ADD                              ? Q->add.activation
                                                                                : Q->pool.activation;
        f->a_on[src] = 1;
        f->a_q[src] = Q->out_q;
        f->a_lo[src] = a.min;
        f->a_hi[src] = a.max;
    }
    return KD_STATUS_OK;
}
