/* Models that fit the data (issue 14): `input: auto` and `out: classes` resolved from kd_model_fit
 * (the zoo resolved to 1x28x28 and 10 classes is byte for byte the zoo text of before), explicit
 * shapes that differ from the data's, shape errors that say which input caused them, the
 * `input_type` and `class_names` keys through the reader, the writer, kd_model_set_data_info and a
 * checkpoint, the CIFAR ResNets against PyTorch (tests/golden/gen_resnet.py), and every new zoo
 * model learning a tiny synthetic set. */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/checkpoint.h"
#include "distill/model.h"
#include "distill/ops.h"
#include "distill/train.h"
#include "test.h"

#ifndef KD_SOURCE_DIR
#define KD_SOURCE_DIR "."
#endif

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* The zoo as it was before `auto` (git show 869fb2e:examples/models/NAME.yaml): length and FNV-1a. */
static const struct {
    const char *name;
    size_t len;
    uint64_t hash;
} old_zoo[] = {
    {"cnn-s", 472, 0xacd5d67614b806a6ull},       {"cnn-t", 996, 0xd4533f3d7699138cull},
    {"mlp-1200", 545, 0xeca347cb0e90f0caull},    {"mlp-800", 339, 0xbd91b8b399103108ull},
    {"mlp-s", 226, 0x868a1e6c3e1cd6d2ull},       {"mobilenet-s", 1528, 0x8dd7c5b9074cf7eaull},
};

static void test_old_zoo_bytes(void) {
    static const kd_model_fit mnist = {1, 28, 28, 10}, unknown = {0, 0, 0, 0};
    const kd_model_fit *fits[3] = {NULL, &mnist, &unknown};
    for (size_t i = 0; i < sizeof old_zoo / sizeof *old_zoo; i++)
        for (int f = 0; f < 3; f++) {
            kd_model *m = NULL;
            kd_error err = {0};
            CHECK_MSG(kd_model_create_for(&m, old_zoo[i].name, 1, fits[f], &err) == KD_STATUS_OK, "%s", err.msg);
            if (!m) continue;
            CHECK_MSG(strlen(m->yaml) == old_zoo[i].len && fnv1a(m->yaml) == old_zoo[i].hash,
                      "%s (fit %d): resolved YAML differs from the zoo file before issue 14:\n%s", old_zoo[i].name,
                      f, m->yaml);
            CHECK(m->in_c == 1 && m->in_h == 28 && m->in_w == 28 && m->n_classes == 10);
            kd_model_free(m);
        }
    /* every zoo model says auto, so each of them follows the data */
    for (int i = 0; kd_model_zoo_name(i); i++) {
        const char *y = kd_model_zoo_yaml(kd_model_zoo_name(i));
        CHECK_MSG(strstr(y, "\ninput: auto\n") && strstr(y, "out: classes}"), "%s", kd_model_zoo_name(i));
    }
}

static void test_auto(void) {
    kd_model *m = NULL, *again = NULL;
    kd_error err = {0};
    kd_model_fit fit = {3, 32, 32, 4};
    CHECK_MSG(kd_model_create_for(&m, "cnn-s", 1, &fit, &err) == KD_STATUS_OK, "%s", err.msg);
    if (m) {
        CHECK(m->in_c == 3 && m->in_h == 32 && m->in_w == 32 && m->n_classes == 4);
        CHECK_MSG(strstr(m->yaml, "\ninput: [3, 32, 32]\n") && strstr(m->yaml, "out: 4}") &&
                      !strstr(m->yaml, "auto") && !strstr(m->yaml, "classes"), "%s", m->yaml);
        /* the resolved text rebuilds the model without the data (a checkpoint) */
        CHECK_MSG(kd_model_from_yaml(&again, m->yaml, "resolved", 1, &err) == KD_STATUS_OK, "%s", err.msg);
        CHECK(again && again->in_c == 3 && again->in_h == 32 && again->n_classes == 4 && again->n_params == m->n_params);
        kd_model_free(again);
        kd_model_free(m);
    }
    /* only the classes known: the default shape, the data's classes; and the other way round */
    kd_model_fit classes_only = {0, 0, 0, 7}, shape_only = {2, 10, 12, 0};
    CHECK_MSG(kd_model_create_for(&m, "mlp-s", 1, &classes_only, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(m && m->in_c == 1 && m->in_h == 28 && m->n_classes == 7);
    kd_model_free(m);
    CHECK_MSG(kd_model_create_for(&m, "mlp-s", 1, &shape_only, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(m && m->in_c == 2 && m->in_h == 10 && m->in_w == 12 && m->n_classes == 10 && m->layers[1].in_c == 240);
    kd_model_free(m);
    /* quoted, in a flow mapping, after non-ASCII text on the same line, and a conv's out */
    static const char flow[] = "{name: f, input: 'auto', layers: [{name: \xc3\xa9t\xc3\xa9, type: conv2d, out: classes, "
                               "kernel: 1}, {type: global_avgpool}]}\n";
    CHECK_MSG(kd_model_from_yaml(&m, flow, "flow.yaml", 1, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK_MSG(m && !strcmp(m->yaml, "{name: f, input: [1, 28, 28], layers: [{name: \xc3\xa9t\xc3\xa9, type: conv2d, "
                                    "out: 10, kernel: 1}, {type: global_avgpool}]}\n"), "%s", m ? m->yaml : "");
    kd_model_free(m);
    /* `classes` is a count only where a layer has one */
    CHECK(kd_model_from_yaml(&m, "name: b\ninput: auto\nlayers:\n  - {type: maxpool, kernel: classes}\n", "b.yaml", 1,
                             &err) == KD_STATUS_BAD_MODEL && !m);
    CHECK_MSG(strstr(err.msg, "b.yaml:4") && strstr(err.msg, "kernel"), "%s", err.msg);
}

static void test_mismatch(void) {
    kd_model *m = NULL;
    kd_error err = {0};
    static const char fixed[] = "name: fixed\ninput: [1, 28, 28]\nlayers:\n  - {type: flatten}\n  - {type: linear, out: 10}\n";
    FILE *f = fopen("model_fit_fixed.yaml", "w");
    CHECK(f && fputs(fixed, f) >= 0 && fclose(f) == 0);
    kd_model_fit cifar = {3, 32, 32, 10};
    CHECK(kd_model_create_for(&m, "model_fit_fixed.yaml", 1, &cifar, &err) == KD_STATUS_MISMATCH && !m);
    CHECK_MSG(strstr(err.msg, "data has 3x32x32 samples") && strstr(err.msg, "fixed expects 1x28x28") &&
                  strstr(err.msg, "model_fit_fixed.yaml:2"), "%s", err.msg);
    /* more classes than the model's outputs: an error; fewer: as before */
    kd_model_fit more = {1, 28, 28, 12}, fewer = {1, 28, 28, 3};
    CHECK(kd_model_create_for(&m, "model_fit_fixed.yaml", 1, &more, &err) == KD_STATUS_MISMATCH && !m);
    CHECK_MSG(strstr(err.msg, "data has 12 classes") && strstr(err.msg, "10 outputs"), "%s", err.msg);
    CHECK_MSG(kd_model_create_for(&m, "model_fit_fixed.yaml", 1, &fewer, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(m && m->n_classes == 10 && !strcmp(m->yaml, fixed));
    kd_model_free(m);
    m = NULL;
    remove("model_fit_fixed.yaml");
    /* a shape the model cannot take: the shape error, saying which input caused it */
    kd_model_fit tiny = {1, 2, 2, 10};
    CHECK(kd_model_create_for(&m, "cnn-t", 1, &tiny, &err) == KD_STATUS_BAD_MODEL && !m);
    CHECK_MSG(strstr(err.msg, "model cnn-t cannot take 1x2x2 input: ") && strstr(err.msg, "layer pool2") &&
                  strstr(err.msg, "larger than the 1x1 input"), "%s", err.msg);
    kd_model_fit huge = {1, 100000, 1, 10};
    CHECK(kd_model_create_for(&m, "mlp-s", 1, &huge, &err) != KD_STATUS_OK && !m);
    CHECK_MSG(strstr(err.msg, "1x100000x1"), "%s", err.msg);
}

/* A tiny model with the data keys `extra`. */
static kd_status build(kd_model **m, const char *extra, kd_error *err) {
    char text[2048];
    snprintf(text, sizeof text, "name: t\ninput: [2, 3, 3]\n%slayers:\n  - {type: flatten}\n  - {name: fc, type: linear, out: 3}\n",
             extra);
    return kd_model_from_yaml(m, text, "t.yaml", 1, err);
}

static void expect_bad(const char *extra, const char *n1, const char *n2) {
    kd_model *m = NULL;
    kd_error err = {0};
    CHECK_MSG(build(&m, extra, &err) == KD_STATUS_BAD_MODEL && !m, "accepted: %s", extra);
    CHECK_MSG(strstr(err.msg, "t.yaml:") && strstr(err.msg, n1) && strstr(err.msg, n2), "'%s' / '%s' not in: %s", n1,
              n2, err.msg);
    kd_model_free(m);
}

/* Names that need quoting, a quote of each kind, a YAML comment sign, UTF-8. */
static const char *const odd_names[3] = {"it's: \"quoted\", [a]", "# not a comment", "caf\xc3\xa9 \xe2\x82\xac"};

static void expect_fields(const kd_model *m, int values, const float *mean, const float *std, const char *const *names,
                          const char *what) {
    CHECK_MSG(m && m->input_values == values, "%s: input_values", what);
    if (!m) return;
    if (mean) {
        CHECK_MSG(m->norm_mean && m->norm_std, "%s: no normalisation", what);
        for (int c = 0; m->norm_mean && m->norm_std && c < m->in_c; c++)
            CHECK_MSG(m->norm_mean[c] == mean[c] && m->norm_std[c] == std[c], "%s: channel %d", what, c);
    } else {
        CHECK_MSG(!m->norm_mean && !m->norm_std, "%s: normalisation", what);
    }
    CHECK_MSG(!names == !m->class_names, "%s: class names", what);
    for (int i = 0; names && m->class_names && i < m->n_classes; i++)
        CHECK_MSG(!strcmp(m->class_names[i], names[i]), "%s: class %d is '%s'", what, i, m->class_names[i]);
}

static void test_data_keys(void) {
    kd_model *m = NULL, *again = NULL;
    kd_error err = {0};
    static const char *const abc[3] = {"cat", "dog", "bird"};
    CHECK_MSG(build(&m, "input_type: values\nclass_names: [cat, dog, \"bird\"]\n", &err) == KD_STATUS_OK, "%s", err.msg);
    expect_fields(m, 1, NULL, NULL, abc, "read");
    kd_model_free(m);
    CHECK_MSG(build(&m, "input_type: pixels\n", &err) == KD_STATUS_OK, "%s", err.msg);
    expect_fields(m, 0, NULL, NULL, NULL, "pixels");
    kd_model_free(m);
    expect_bad("input_type: floats\n", "input_type", "pixels");
    expect_bad("class_names: [a, b]\n", "2 names", "3 classes");
    expect_bad("class_names: [a, b, c, d]\n", "4 names", "3 classes");
    expect_bad("class_names: a\n", "class_names", "list of 3");
    expect_bad("class_names: [a, \"b\\tc\", d]\n", "class_names[1]", "control character");
    expect_bad("class_names: [a, b, \"\\x85\"]\n", "class_names[2]", "control character");
    expect_bad("class_names: [a, '', c]\n", "class_names[1]", "empty");
    expect_bad("class_names: [a, [b], c]\n", "class_names[1]", "not a string");
    expect_bad("class_names: [a, b, 0123456789012345678901234567890123456789012345678901234567890123]\n",
               "class_names[2]", "longer than 63 bytes");

    /* the writer: any name round-trips, the keys only when set */
    static const float mean[2] = {0.1f, 1e-7f}, std[2] = {0.3f, 123456.7f};
    CHECK_MSG(build(&m, "", &err) == KD_STATUS_OK, "%s", err.msg);
    if (!m) return;
    char *yaml = NULL;
    CHECK(kd_model_yaml_from_layers(m, m->layers, m->n_layers, &yaml, &err) == KD_STATUS_OK);
    CHECK_MSG(yaml && !strstr(yaml, "input_type") && !strstr(yaml, "class_names"), "%s", yaml ? yaml : "");
    free(yaml);
    CHECK_MSG(kd_model_set_data_info(m, mean, std, 1, odd_names, 3, &err) == KD_STATUS_OK, "%s", err.msg);
    expect_fields(m, 1, mean, std, odd_names, "set");
    CHECK(kd_model_yaml_from_layers(m, m->layers, m->n_layers, &yaml, &err) == KD_STATUS_OK);
    CHECK_MSG(yaml && kd_model_from_yaml(&again, yaml, "written", 1, &err) == KD_STATUS_OK, "%s\n%s", err.msg,
              yaml ? yaml : "");
    expect_fields(again, 1, mean, std, odd_names, "written and read");
    free(yaml);
    kd_model_free(again);
    kd_model_free(m);
}

static void test_set_data_info(void) {
    kd_model *m = NULL, *again = NULL;
    kd_error err = {0};
    CHECK_MSG(kd_model_create(&m, "mlp-s", 1, &err) == KD_STATUS_OK, "%s", err.msg);
    if (!m) return;
    char *before = strdup(m->yaml);
    const char *names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                             "Bag", "Ankle boot"};
    static const float mean[1] = {0.2860402f}, std[1] = {0.3530239f}, mean2[1] = {0.5f}, std2[1] = {0.25f};
    CHECK_MSG(kd_model_set_data_info(m, mean, std, 0, names, 10, &err) == KD_STATUS_OK, "%s", err.msg);
    expect_fields(m, 0, mean, std, names, "set");
    /* the layers' text stays as written (comments too); the keys follow it */
    CHECK_MSG(!strncmp(m->yaml, before, strlen(before)) && strstr(m->yaml, "\nnormalize: {mean: [0.286040187]") &&
                  strstr(m->yaml, "\nclass_names: ['T-shirt/top', "), "%s", m->yaml);
    CHECK_MSG(kd_model_from_yaml(&again, m->yaml, "again", 1, &err) == KD_STATUS_OK, "%s", err.msg);
    expect_fields(again, 0, mean, std, names, "rebuilt");
    kd_model_free(again);
    again = NULL;
    /* again: the keys replaced, not repeated; NULL / -1 leave a field as it is */
    CHECK_MSG(kd_model_set_data_info(m, mean2, std2, 1, NULL, 0, &err) == KD_STATUS_OK, "%s", err.msg);
    expect_fields(m, 1, mean2, std2, names, "set again");
    const char *k = strstr(m->yaml, "normalize:");
    CHECK_MSG(k && !strstr(k + 1, "normalize:") && strstr(m->yaml, "class_names:") &&
                  !strstr(strstr(m->yaml, "class_names:") + 1, "class_names:") && !strncmp(m->yaml, before, strlen(before)),
              "%s", m->yaml);
    CHECK_MSG(kd_model_set_data_info(m, NULL, NULL, -1, NULL, 0, &err) == KD_STATUS_OK, "%s", err.msg);
    expect_fields(m, 1, mean2, std2, names, "nothing set");
    CHECK_MSG(kd_model_from_yaml(&again, m->yaml, "again", 1, &err) == KD_STATUS_OK, "%s", err.msg);
    expect_fields(again, 1, mean2, std2, names, "rebuilt again");
    kd_model_free(again);
    again = NULL;

    /* bad arguments leave m as it was */
    char *yaml = strdup(m->yaml);
    const char *bad[10] = {"a", "b", "c", "d", "e", "f", "g", "h", "i\n", "j"};
    static const float zero[1] = {0.f};
    CHECK(kd_model_set_data_info(m, NULL, NULL, 0, bad, 9, &err) == KD_STATUS_MISMATCH);
    CHECK_MSG(strstr(err.msg, "mlp-s has 10 classes, 9 class names"), "%s", err.msg);
    CHECK(kd_model_set_data_info(m, NULL, NULL, 0, bad, 10, &err) == KD_STATUS_BAD_ARG);
    CHECK_MSG(strstr(err.msg, "class name 8 has a control character"), "%s", err.msg);
    CHECK(kd_model_set_data_info(m, mean, zero, 0, NULL, 0, &err) == KD_STATUS_BAD_ARG);
    CHECK_MSG(strstr(err.msg, "channel 0") && strstr(err.msg, "std > 0"), "%s", err.msg);
    CHECK(kd_model_set_data_info(m, mean, NULL, 0, NULL, 0, &err) == KD_STATUS_BAD_ARG);
    CHECK(kd_model_set_data_info(m, NULL, NULL, 2, NULL, 0, &err) == KD_STATUS_BAD_ARG);
    CHECK(!strcmp(m->yaml, yaml));
    expect_fields(m, 1, mean2, std2, names, "after errors");
    free(yaml);

    /* a checkpoint carries them */
    CHECK_MSG(kd_checkpoint_save("model_fit_test.safetensors", m, NULL, NULL, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK_MSG(kd_checkpoint_load("model_fit_test.safetensors", &again, &err) == KD_STATUS_OK, "%s", err.msg);
    expect_fields(again, 1, mean2, std2, names, "checkpoint");
    CHECK(again && !strcmp(again->yaml, m->yaml));
    kd_model_free(again);
    remove("model_fit_test.safetensors");
    kd_model_free(m);
    free(before);

    /* a text that cannot be edited line by line (a flow mapping) is written anew */
    CHECK_MSG(kd_model_from_yaml(&m, "{name: f, input: [1, 2, 2], layers: [{type: linear, out: 3}]}", "f", 1, &err) ==
                  KD_STATUS_OK, "%s", err.msg);
    if (!m) return;
    CHECK_MSG(kd_model_set_data_info(m, NULL, NULL, 1, odd_names, 3, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK_MSG(strstr(m->yaml, "layers:\n") && kd_model_from_yaml(&again, m->yaml, "f2", 1, &err) == KD_STATUS_OK, "%s\n%s",
              err.msg, m->yaml);
    expect_fields(again, 1, NULL, NULL, odd_names, "flow rewritten");
    CHECK(again && again->n_layers == 1 && again->n_params == m->n_params);
    kd_model_free(again);
    kd_model_free(m);
}

/* The CIFAR ResNets against PyTorch's: parameter count, MACs and every tensor's shape by name. */
static void test_resnet_golden(void) {
    FILE *f = fopen(KD_SOURCE_DIR "/tests/golden/resnet/resnet.txt", "r");
    CHECK_MSG(f != NULL, "tests/golden/resnet/resnet.txt (tests/golden/gen_resnet.py)");
    if (!f) return;
    char line[256], name[128], shape[64];
    kd_model *m = NULL;
    kd_model_fit cifar = {3, 32, 32, 10};
    int models = 0, tensors = 0;
    size_t tensor_elems = 0;
    long long params, macs;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "model %127s %lld %lld", name, &params, &macs) == 3) {
            if (m) CHECK_MSG(tensor_elems == kd_model_param_bytes(m) / sizeof(float), "%s: tensors", m->name);
            kd_model_free(m);
            m = NULL;
            kd_error err = {0};
            CHECK_MSG(kd_model_create_for(&m, name, 1, &cifar, &err) == KD_STATUS_OK, "%s", err.msg);
            if (!m) break;
            models++;
            tensor_elems = 0;
            CHECK_MSG((long long)m->n_params == params && kd_model_macs(m) == macs, "%s: %zu params, %lld MACs; torch: %lld, %lld",
                      name, m->n_params, kd_model_macs(m), params, macs);
        } else if (m && sscanf(line, "tensor %127s %63s", name, shape) == 2) {
            char *dot = strrchr(name, '.');
            if (!dot) continue;
            *dot = '\0';
            int li = kd_model_find_layer(m, name);
            CHECK_MSG(li >= 0, "%s: no layer %s", m->name, name);
            if (li < 0) continue;
            const kd_layer *L = &m->layers[li];
            char ours[64] = "";
            const char *what = dot + 1;
            if (L->type == KD_LAYER_CONV2D && !strcmp(what, "weight"))
                snprintf(ours, sizeof ours, "%dx%dx%dx%d", L->out, L->in_c / L->groups, L->kernel, L->kernel);
            else if (L->type == KD_LAYER_LINEAR && !strcmp(what, "weight"))
                snprintf(ours, sizeof ours, "%dx%d", L->out, L->in_c);
            else if (L->type == KD_LAYER_LINEAR && !strcmp(what, "bias") && L->b_size)
                snprintf(ours, sizeof ours, "%zu", L->b_size);
            else if (L->type == KD_LAYER_BATCHNORM)
                snprintf(ours, sizeof ours, "%d", L->c);
            CHECK_MSG(!strcmp(ours, shape), "%s: %s.%s is %s, torch's %s", m->name, name, what, ours, shape);
            size_t n = 1;
            for (char *s = shape; *s;) {
                n *= strtoul(s, &s, 10);
                if (*s == 'x') s++;
            }
            tensor_elems += n;
            tensors++;
        }
    }
    if (m) CHECK_MSG(tensor_elems == kd_model_param_bytes(m) / sizeof(float), "%s: tensors", m->name);
    kd_model_free(m);
    fclose(f);
    CHECK(models == 2 && tensors > 100);
}

/* Each new zoo model learns a tiny synthetic set: the loss after a few steps is below the first. */
static void test_new_models_train(void) {
    static const struct {
        const char *name;
        kd_model_fit fit;
    } cases[] = {
        {"resnet-8", {3, 8, 8, 4}}, {"resnet-20", {3, 8, 8, 4}}, {"cnn-t-wide", {3, 8, 8, 4}}, {"mlp-tab", {12, 1, 1, 3}},
    };
    enum { B = 16, STEPS = 8 };
    /* one thread: oneDNN's sgemm would take OMP_NUM_THREADS, and its spinning threads cost more than
     * these small layers (kd_sgemm, ops.h) */
    omp_set_num_threads(1);
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        kd_model *m = NULL;
        kd_error err = {0};
        CHECK_MSG(kd_model_create_for(&m, cases[k].name, 7, &cases[k].fit, &err) == KD_STATUS_OK, "%s", err.msg);
        if (!m) continue;
        CHECK(m->n_classes == cases[k].fit.n_classes);
        size_t in = (size_t)m->in_c * m->in_h * m->in_w;
        float *x = malloc(B * in * sizeof *x), *probs = malloc(B * (size_t)m->n_classes * sizeof *probs),
              *dl = malloc(B * (size_t)m->n_classes * sizeof *dl);
        int32_t y[B];
        kd_rng rng;
        kd_rng_seed(&rng, 3, 1);
        for (int b = 0; b < B; b++) { /* the class shifts the mean of every input value */
            y[b] = b % m->n_classes;
            for (size_t i = 0; i < in; i++) x[b * in + i] = kd_rng_normal(&rng) + (float)y[b] - 1.f;
        }
        kd_optim_config c;
        kd_optim_config_default(&c);
        kd_optimizer o;
        CHECK(kd_model_set_batch(m, B, 1, &err) == KD_STATUS_OK);
        CHECK(kd_optimizer_init(&o, &c, m, &err) == KD_STATUS_OK);
        float first = 0.f, last = 0.f;
        for (int s = 0; s < STEPS; s++) {
            const float *logits = kd_model_forward(m, x, B, 1, &rng);
            float loss = kd_cross_entropy_forward(probs, logits, y, B, m->n_classes, 0.f);
            if (s == 0) first = loss;
            last = loss;
            memset(dl, 0, B * (size_t)m->n_classes * sizeof *dl);
            kd_cross_entropy_backward(dl, probs, y, B, m->n_classes, 0.f, 1.f);
            kd_model_zero_grad(m);
            kd_model_backward(m, dl);
            kd_optimizer_step(&o, m, 0.02f);
        }
        CHECK_MSG(last < 0.7f * first, "%s: loss %g -> %g", cases[k].name, (double)first, (double)last);
        kd_optimizer_free(&o);
        free(x);
        free(probs);
        free(dl);
        kd_model_free(m);
    }
}

int main(void) {
    test_old_zoo_bytes();
    test_auto();
    test_mismatch();
    test_data_keys();
    test_set_data_info();
    test_resnet_golden();
    test_new_models_train();
    TEST_DONE();
}
