/* The steps of a quantization-aware training run around kd_train (`distill kd --qat`): before,
 * fold batch norm, calibrate the int8 activation ranges and attach fake quantization; after,
 * rebuild the integer model with the same ranges, evaluate it beside the post-training one and
 * save it. The fake quantization itself is in qat.c. */
#include "distill/compress.h"
#include "distill/quantize.h"

kd_status kd_qat_prepare(kd_model **m, const kd_dataset *calib, const kd_calib_config *cfg, kd_calib_ranges *ranges,
                         kd_int8_model **ptq, int *n_folded, kd_error *err) {
    kd_model *f = NULL;
    kd_status st = kd_fold_batchnorm(*m, &f, n_folded, err);
    if (st) return st;
    kd_model_free(*m);
    *m = f;
    /* the ranges are a deterministic function of the trained model, so --resume recomputes them */
    if ((st = kd_int8_calibrate(*m, calib, cfg, ranges, err)) || (st = kd_int8_build(*m, ranges, cfg, ptq, err)))
        return st;
    return kd_fake_quant_attach(*m, *ptq, err);
}

kd_status kd_qat_finish(const kd_model *m, const kd_calib_ranges *ranges, const kd_calib_config *cfg,
                        const kd_int8_model *ptq, const kd_dataset *test, const char *path, double *acc_qat,
                        double *acc_ptq, kd_error *err) {
    kd_int8_model *q = NULL;
    kd_status st;
    if (!(st = kd_int8_build(m, ranges, cfg, &q, err)) &&
        !(st = kd_int8_evaluate(ptq, test, 256, cfg->threads, acc_ptq, NULL, err)) &&
        !(st = kd_int8_evaluate(q, test, 256, cfg->threads, acc_qat, NULL, err)))
        st = kd_int8_save(path, q, err);
    kd_int8_free(q);
    return st;
}
