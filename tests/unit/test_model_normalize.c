/* The model's own input normalisation, `normalize: {mean: [..], std: [..]}` in the model YAML
 * (issue 13): read into m->norm_mean / m->norm_std, refused with the file and line when malformed,
 * written back by kd_model_yaml_from_layers, and kept by the passes that rebuild a model (BN fold,
 * channel pruning). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/compress.h"
#include "distill/model.h"
#include "test.h"

static const char head[] = "name: n\ninput: [3, 4, 4]\n";
static const char body[] = "layers:\n  - {type: conv2d, out: 4, kernel: 3, pad: 1}\n  - {type: batchnorm}\n"
                           "  - {type: relu}\n  - {type: flatten}\n  - {type: linear, out: 5}\n";

static kd_status build(kd_model **m, const char *norm, kd_error *err) {
    char text[1024];
    snprintf(text, sizeof text, "%s%s%s", head, norm, body);
    return kd_model_from_yaml(m, text, "norm.yaml", 1, err);
}

static void expect_norm(const kd_model *m, const float *mean, const float *std, const char *what) {
    CHECK_MSG(m && m->norm_mean && m->norm_std, "%s: no normalisation", what);
    if (!m || !m->norm_mean || !m->norm_std) return;
    for (int c = 0; c < 3; c++)
        CHECK_MSG(m->norm_mean[c] == mean[c] && m->norm_std[c] == std[c], "%s: channel %d: %g/%g", what, c,
                  (double)m->norm_mean[c], (double)m->norm_std[c]);
}

static void expect_error(const char *norm, const char *n1, const char *n2) {
    kd_model *m = NULL;
    kd_error err = {0};
    CHECK_MSG(build(&m, norm, &err) == KD_STATUS_BAD_MODEL && !m, "accepted: %s", norm);
    CHECK_MSG(strstr(err.msg, n1) && strstr(err.msg, n2), "'%s' / '%s' not in: %s", n1, n2, err.msg);
    kd_model_free(m);
}

int main(void) {
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    kd_model *m = NULL, *again = NULL, *out = NULL;
    kd_error err = {0};
    /* none: NULL, as before */
    CHECK_MSG(build(&m, "", &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(m && !m->norm_mean && !m->norm_std);
    kd_model_free(m);
    m = NULL;

    CHECK_MSG(build(&m, "normalize: {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}\n", &err) ==
                  KD_STATUS_OK, "%s", err.msg);
    expect_norm(m, mean, std, "read");
    if (m) {
        /* writer -> reader */
        char *yaml = NULL;
        CHECK_MSG(kd_model_yaml_from_layers(m, m->layers, m->n_layers, &yaml, &err) == KD_STATUS_OK, "%s", err.msg);
        CHECK_MSG(yaml && strstr(yaml, "normalize: {mean: ["), "%s", yaml ? yaml : "");
        CHECK_MSG(yaml && kd_model_from_yaml(&again, yaml, "written.yaml", 1, &err) == KD_STATUS_OK, "%s", err.msg);
        expect_norm(again, mean, std, "written back");
        free(yaml);
        kd_model_free(again);
        /* BN fold and channel pruning rebuild the model through the writer */
        int n_folded = 0;
        CHECK_MSG(kd_fold_batchnorm(m, &out, &n_folded, &err) == KD_STATUS_OK, "%s", err.msg);
        CHECK(n_folded == 1);
        expect_norm(out, mean, std, "folded");
        kd_model_free(out);
        out = NULL;
        kd_channel_prune_config cfg = {0.5f, NULL, KD_CHANNEL_L1};
        CHECK_MSG(kd_prune_channels(m, &cfg, &out, NULL, &err) == KD_STATUS_OK, "%s", err.msg);
        expect_norm(out, mean, std, "pruned");
        kd_model_free(out);
    }
    kd_model_free(m);

    expect_error("normalize: {mean: [0.5, 0.5], std: [1, 1, 1]}\n", "norm.yaml:3:", "list of 3 finite numbers");
    expect_error("normalize: {mean: [0.5, 0.5, 0.5], std: [1, 0, 1]}\n", "norm.yaml:3:", "each > 0");
    expect_error("normalize: {mean: [0.5, 0.5, 0.5], std: [1, -2, 1]}\n", "norm.yaml:3:", "'normalize: std'");
    expect_error("normalize: {mean: [0.5, .nan, 0.5], std: [1, 1, 1]}\n", "norm.yaml:3:", "'normalize: mean'");
    expect_error("normalize: {mean: [0.5, nan, 0.5], std: [1, 1, 1]}\n", "norm.yaml:3:", "'normalize: mean'");
    expect_error("normalize: {mean: [0.5, 1e39, 0.5], std: [1, 1, 1]}\n", "norm.yaml:3:", "'normalize: mean'");
    expect_error("normalize: {mean: [0.5, 0.5, 0.5], std: [1, inf, 1]}\n", "norm.yaml:3:", "'normalize: std'");
    expect_error("normalize: {mean: [0.5, 0.5, 0.5]}\n", "norm.yaml:3:", "'normalize: std'");
    expect_error("normalize: {mean: [0.5, 0.5, 0.5], sdt: [1, 1, 1]}\n", "norm.yaml:3:", "unknown key 'sdt'");
    expect_error("normalize: [0.5, 0.5, 0.5]\n", "norm.yaml:3:", "'normalize' must be a mapping");
    expect_error("normalize: {mean: [0.5, x, 0.5], std: [1, 1, 1]}\n", "norm.yaml:3:", "'normalize: mean'");
    TEST_DONE();
}
