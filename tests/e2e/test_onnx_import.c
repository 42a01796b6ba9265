/* ONNX import (kd_onnx_import, `distill import`, .onnx wherever a model is taken): PyTorch's logits
 * on the golden fixtures of scripts/onnx-fixtures.py (max abs difference <= 1e-4, eval mode), every
 * error path on a deliberately broken file, and the CLI: import with a normalisation, info/eval on
 * a .onnx, a fitnet term naming an imported teacher's ONNX tensor. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_run.h"
#include "distill/checkpoint.h"
#include "distill/fileio.h"
#include "distill/npy.h"
#include "distill/onnx.h"
#include "test.h"

#define FIX KD_SOURCE_DIR "/tests/fixtures/onnx/"

static void golden(const char *name) {
    char path[512];
    kd_error err;
    kd_model *m = NULL;
    kd_onnx_import_info info;
    snprintf(path, sizeof path, FIX "%s.onnx", name);
    kd_status st = kd_onnx_import(path, NULL, &m, &info, &err);
    CHECK_MSG(st == KD_STATUS_OK, "%s: %s", name, err.msg);
    if (st) return;
    float *x = NULL, *y = NULL;
    int n = 0, c = 0, ny = 0, cy = 0;
    snprintf(path, sizeof path, FIX "%s.in.npy", name);
    CHECK(kd_npy_load_logits(path, 0, &x, &n, &c, &err) == KD_STATUS_OK);
    snprintf(path, sizeof path, FIX "%s.out.npy", name);
    CHECK(kd_npy_load_logits(path, 0, &y, &ny, &cy, &err) == KD_STATUS_OK);
    if (x && y && c == m->in_c * m->in_h * m->in_w && cy == m->n_classes && n == ny &&
        kd_model_set_batch(m, n, 1, &err) == KD_STATUS_OK) {
        const float *z = kd_model_forward(m, x, n, 0, NULL);
        double maxd = 0;
        for (int i = 0; i < n; i++) {
            /* the final softmax is dropped: its golden is the log-probabilities, centred */
            double mz = 0, my = 0;
            if (info.softmax_dropped) {
                for (int k = 0; k < cy; k++) mz += z[i * cy + k] / cy, my += y[i * cy + k] / cy;
            }
            for (int k = 0; k < cy; k++) {
                double d = fabs((z[i * cy + k] - mz) - (y[i * cy + k] - my));
                if (d > maxd) maxd = d;
            }
        }
        CHECK_MSG(maxd <= 1e-4, "%s: max abs difference from PyTorch %g", name, maxd);
        printf("%-20s opset %d, %d layers, max abs diff %.2g\n", name, info.opset, m->n_layers, maxd);
    } else {
        CHECK_MSG(0, "%s: fixture shapes: in %dx%d out %dx%d, model [%d,%d,%d] -> %d", name, n, c, ny, cy, m->in_c,
                  m->in_h, m->in_w, m->n_classes);
    }
    free(x);
    free(y);
    kd_model_free(m);
}

static void expect_error(const char *file, kd_status want, const char *needle) {
    kd_error err = {0};
    kd_model *m = NULL;
    kd_status st = kd_onnx_import(file, NULL, &m, NULL, &err);
    CHECK_MSG(st == want && strstr(err.msg, needle) && strstr(err.msg, file) && m == NULL,
              "%s: status %d (want %d), message '%s' (want '%s')", file, st, want, err.msg, needle);
    kd_model_free(m);
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(p, 1, n, f);
        fclose(f);
    }
}

/* 64 random 28x28 images with labels 0-9, as IDX files: a data set small enough for ASan runs */
static void write_tiny_data(void) {
    unsigned char img[16 + 64 * 784] = {0, 0, 8, 3, 0, 0, 0, 64, 0, 0, 0, 28, 0, 0, 0, 28};
    unsigned char lbl[8 + 64] = {0, 0, 8, 1, 0, 0, 0, 64};
    unsigned s = 13;
    for (int i = 0; i < 64 * 784; i++) img[16 + i] = (unsigned char)((s = s * 1103515245u + 12345u) >> 24);
    for (int i = 0; i < 64; i++) lbl[8 + i] = (unsigned char)(i % 10);
    write_bytes("onnx_img", img, sizeof img);
    write_bytes("onnx_lbl", lbl, sizeof lbl);
}

int main(void) {
    static const char *const fixtures[] = {"resnet_block",      "resnet_block_fp16", "mobilenetv2_block",
                                           "mobilenetv3_block", "small_cnn",         "fashion_cnn",
                                           "handmade"};
    for (size_t k = 0; k < sizeof fixtures / sizeof *fixtures; k++) golden(fixtures[k]);

    /* layer names are the ONNX value names */
    kd_model *m = NULL;
    kd_error err;
    CHECK(kd_onnx_import(FIX "resnet_block.onnx", NULL, &m, NULL, &err) == KD_STATUS_OK);
    if (m) {
        CHECK(kd_model_find_layer(m, "/stem/stem.2/Relu_output_0") == 2);
        CHECK(!strcmp(m->layers[m->n_layers - 1].name, "logits"));
        CHECK(m->norm_mean == NULL && !strcmp(m->name, "resnet_block"));
        kd_model_free(m);
    }

    /* the normalisation a distill export stores in the metadata comes back; options win over it */
    m = NULL;
    CHECK(kd_onnx_import(FIX "tiny-norm.onnx", NULL, &m, NULL, &err) == KD_STATUS_OK);
    CHECK(m && m->norm_mean && m->norm_mean[2] == 0.125f && m->norm_std[0] == 2.f);
    kd_model_free(m);
    m = NULL;
    const float zero = 0.f, one = 1.f;
    kd_onnx_import_opts o01 = {.mean = &zero, .std = &one, .n_norm = 1, .name = "n"};
    CHECK(kd_onnx_import(FIX "tiny-norm.onnx", &o01, &m, NULL, &err) == KD_STATUS_OK);
    CHECK(m && m->norm_mean && m->norm_mean[2] == 0.f && m->norm_std[0] == 1.f && !strcmp(m->name, "n"));
    kd_model_free(m);

    /* Reshape (N, C) -> (N, C, 1, 1), as a squeeze-excitation built with Linear + view(b, c, 1, 1): the
     * gate multiplies every pixel of its channel */
    m = NULL;
    CHECK(kd_onnx_import(FIX "reshape-se.onnx", NULL, &m, NULL, &err) == KD_STATUS_OK);
    if (m) {
        float x[48];
        for (int k = 0; k < 48; k++) x[k] = (float)(k % 7) * 0.25f - 0.5f;
        CHECK(kd_model_set_batch(m, 1, 1, &err) == KD_STATUS_OK);
        const float *y = kd_model_forward(m, x, 1, 0, NULL);
        for (int c = 0; c < 3; c++) {
            double mean = 0;
            for (int k = 0; k < 16; k++) mean += x[c * 16 + k] / 16.0;
            double want = mean / (1 + exp(-mean));
            CHECK_MSG(fabs(y[c] - want) < 1e-5, "channel %d: %g, want %g", c, (double)y[c], want);
        }
        kd_model_free(m);
    }

    /* every error path, each a broken file */
    static const struct {
        const char *file;
        kd_status st;
        const char *needle;
    } bad[] = {
        {FIX "bad-op.onnx", KD_STATUS_BAD_MODEL, "node 'my_tanh' (Tanh, opset 13): operator Tanh is not supported (supported: Conv,"},
        {FIX "bad-attr.onnx", KD_STATUS_BAD_MODEL, "node 'conv_same' (Conv, opset 13): auto_pad 'SAME_LOWER' is not supported"},
        {FIX "bad-opset.onnx", KD_STATUS_BAD_MODEL, "opset 9 is not supported (supported: 11 to 17"},
        {FIX "bad-two-inputs.onnx", KD_STATUS_BAD_MODEL, "the graph has 2 inputs: 'input', 'other'"},
        {FIX "bad-dynamic.onnx", KD_STATUS_BAD_MODEL, "the height is 'height', not a number"},
        {FIX "bad-external.onnx", KD_STATUS_BAD_MODEL, "tensor 'w': its data is in an external file"},
        {FIX "bad-short-init.onnx", KD_STATUS_BAD_FILE, "tensor 'w': raw_data holds 40 bytes, its shape needs 384"},
        {FIX "bad-dtype.onnx", KD_STATUS_BAD_MODEL, "tensor 'w': element type 11 is not supported"},
        {FIX "bad-huge.onnx", KD_STATUS_BAD_MODEL, "tensor 'w': 1099511627776 elements (a model may have at most"},
        {FIX "bad-reshape.onnx", KD_STATUS_BAD_MODEL, "node 'reshape_dyn' (Reshape, opset 13): input 1 ('f0') must be a constant"},
        {FIX "bad-undefined.onnx", KD_STATUS_BAD_MODEL, "node 'fc' (Gemm, opset 13): input 'nowhere' is not produced"},
        {FIX "bad-norm-meta.onnx", KD_STATUS_BAD_MODEL, "metadata distill.normalize.mean is '0.5,0.25': expected 3"},
        {FIX "bad-slice-step.onnx", KD_STATUS_BAD_MODEL, "node 'reshape' (Reshape, opset 13): reshape of (N,3,4,4) to [48]"},
        {FIX "bad-concat-empty.onnx", KD_STATUS_BAD_MODEL, "node 'cat' (Concat, opset 13): input 1 is empty"},
        {FIX "bad-div-zero.onnx", KD_STATUS_BAD_MODEL, "node 'div' (Div, opset 13): layer y gets a non-finite weight (inf)"},
        {FIX "bad-long-name.onnx", KD_STATUS_BAD_MODEL, "node 'add' (Add, opset 13): output name 'yyyy"},
        {FIX "bad-dilation.onnx", KD_STATUS_BAD_MODEL, "node 'conv' (Conv, opset 13): dilation 17 is out of range (supported: up to 16)"},
        {FIX "bad-rank-mix.onnx", KD_STATUS_BAD_MODEL, "node 'mul' (Mul, opset 13): Mul of computed tensors of ranks 4 and 2"},
        {FIX "bad-budget.onnx", KD_STATUS_BAD_MODEL, "node 'cos' (ConstantOfShape, opset 13): ConstantOfShape: 8388608 elements exceed what is left of the constants' budget"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) expect_error(bad[k].file, bad[k].st, bad[k].needle);

    /* truncated, empty and not-ONNX files */
    char *buf = NULL;
    size_t len = 0;
    CHECK(kd_read_file(FIX "resnet_block.onnx", &buf, &len, &err) == KD_STATUS_OK);
    if (buf) {
        write_bytes("onnx_truncated.onnx", buf, len / 2);
        expect_error("onnx_truncated.onnx", KD_STATUS_BAD_FILE, "not a valid ONNX model");
        free(buf);
    }
    write_bytes("onnx_empty.onnx", "", 0);
    expect_error("onnx_empty.onnx", KD_STATUS_BAD_MODEL, "no opset of the default ONNX domain");
    write_bytes("onnx_text.onnx", "name: not a protobuf\n", 21);
    expect_error("onnx_text.onnx", KD_STATUS_BAD_FILE, "not a valid ONNX model");
    expect_error("onnx_missing.onnx", KD_STATUS_NOT_FOUND, "onnx_missing.onnx");
    /* a file over the size cap is refused before it is read (a sparse file: no disk used) */
    FILE *f = fopen("onnx_big.onnx", "wb");
    if (f) {
        CHECK(ftruncate(fileno(f), (off_t)3 << 30) == 0);
        fclose(f);
        expect_error("onnx_big.onnx", KD_STATUS_BAD_FILE, "more than an ONNX model may have");
        unlink("onnx_big.onnx");
    }

    /* the CLI: import with a normalisation, stored in the checkpoint */
    EXPECT("import " FIX "fashion_cnn.onnx -o onnx_fc.safetensors --mean 0.286 --std 0.353 --name fc", 0,
           "wrote onnx_fc.safetensors");
    CHECK_MSG(strstr(out, "opset 13") && strstr(out, "layers: conv2d 2 linear 1 maxpool 2") && strstr(out, "1442 parameters") && strstr(out, "mean 0.286 std 0.353"), "%s", out);
    m = NULL;
    CHECK(kd_checkpoint_load("onnx_fc.safetensors", &m, &err) == KD_STATUS_OK);
    if (m) {
        CHECK(m->norm_mean && m->norm_mean[0] == 0.286f && m->norm_std[0] == 0.353f && !strcmp(m->name, "fc"));
        kd_model_free(m);
    }
    EXPECT("import " FIX "mobilenetv3_block.onnx --check", 0, "the final softmax is dropped");
    EXPECT("import " FIX "resnet_block.onnx -o onnx_rb.safetensors --scale01", 0, "mean 0,0,0 std 1,1,1");
    static const cli_case usage[] = {
        {NULL, NULL, "import " FIX "resnet_block.onnx --mean 0.5", 2, "--mean and --std go together"},
        {NULL, NULL, "import " FIX "resnet_block.onnx --mean 0.5,0.5 --std 0.2", 2, "--mean has 2 values, --std 1"},
        {NULL, NULL, "import " FIX "resnet_block.onnx --mean 0.5,0.5 --std 0.2,0.2", 1, "the normalisation has 2 values"},
        {NULL, NULL, "import " FIX "resnet_block.onnx --scale01 --mean 0 --std 1", 2, "alternatives"},
        {NULL, NULL, "import " FIX "resnet_block.onnx --std 0,1,1 --mean 0,0,0", 2, "--std expects one number or one per channel (at most 1024), comma-separated, each > 0"},
        {NULL, NULL, "import " FIX "bad-op.onnx -o onnx_bad.safetensors", 1, "node 'my_tanh' (Tanh, opset 13)"},
    };
    EXPECT_CASES(usage);
    CHECK(access("onnx_bad.safetensors", F_OK) != 0);
    EXPECT("import --help", 0, "Usage: distill import MODEL.onnx");
    /* a .onnx path wherever a model is taken */
    EXPECT("info " FIX "fashion_cnn.onnx", 0, "/features/features.2/Relu_output_0");
    EXPECT("eval " FIX "bad-dynamic.onnx", 1, "the height is 'height'");
    write_tiny_data();
    EXPECT("kd --teacher " FIX "fashion_cnn.onnx --student cnn-t --data onnx_img,onnx_lbl --epochs 1 --val 16 --batch 16 -q "
           "--loss hinton --loss fitnet:teacher=/features/features.2/Relu_output_0,student=relu1,weight=0.1 "
           "-o onnx_kd.safetensors", 0, "top-1 agreement");
    EXPECT("kd --teacher " FIX "fashion_cnn.onnx --student cnn-t --data onnx_img,onnx_lbl --val 16 --loss "
           "fitnet:teacher=/features/no:pe.1,student=relu1 -o onnx_kd2.safetensors", 1, "no layer '/features/no:pe.1'");
    TEST_DONE();
}
