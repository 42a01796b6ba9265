/* The data options and what a trained model takes from its data, through the `distill` command
 * (issue 14): every command with --data takes the data options and refuses bad values with a usage
 * error (run files and pipeline files too); a model trained on a tiny 3-channel IDX set (4-d IDX)
 * stores the per-channel normalisation of the training split, or --mean/--std, and eval, kd and
 * quantize use it; built-in/YAML teachers and students are built for the data; augmentation is
 * refused for table-shaped samples. Small: 60 samples of 3x8x8, a few steps: seconds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_run.h"
#include "distill/checkpoint.h"
#include "distill/data.h"

#define DIR "data_cli"

/* An IDX pair PREFIX-images-idx3-ubyte (4-d: n x c x h x w) / PREFIX-labels-idx1-ubyte in DIR/:
 * channel k of a sample of class y is about 40 + 60 k + 30 y, plus noise. */
static void write_idx(const char *prefix, int n, int c, int h, int w, int k, uint32_t seed) {
    char path[256];
    unsigned char head[24] = {0, 0, 8, 4};
    int dims[4] = {n, c, h, w};
    for (int i = 0; i < 4; i++)
        for (int b = 0; b < 4; b++) head[4 + 4 * i + b] = (unsigned char)(dims[i] >> (24 - 8 * b));
    snprintf(path, sizeof path, DIR "/%s-images-idx3-ubyte", prefix);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(head, 1, 20, f) == 20);
    uint32_t s = seed;
    for (int i = 0; f && i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (int j = 0; j < h * w; j++) {
                s = s * 1664525u + 1013904223u;
                fputc((40 + 60 * ch + 30 * (i % k) + (int)(s >> 28)) & 255, f);
            }
    if (f) fclose(f);
    head[3] = 1;
    snprintf(path, sizeof path, DIR "/%s-labels-idx1-ubyte", prefix);
    f = fopen(path, "wb");
    CHECK(f && fwrite(head, 1, 8, f) == 8);
    for (int i = 0; f && i < n; i++) fputc(i % k, f);
    if (f) fclose(f);
}

static kd_model *load(const char *path) {
    kd_model *m = NULL;
    kd_error err;
    CHECK_MSG(kd_checkpoint_load(path, &m, &err) == KD_STATUS_OK, "%s", err.msg);
    return m;
}

/* The model in path carries mean[c], std[c] (exactly) for c < 3. */
static void check_norm(const char *path, const float *mean, const float *std) {
    kd_model *m = load(path);
    if (!m) return;
    CHECK_MSG(m->norm_mean && m->norm_std, "%s has no normalisation", path);
    for (int c = 0; m->norm_mean && c < 3; c++)
        CHECK_MSG(m->norm_mean[c] == mean[c] && m->norm_std[c] == std[c], "%s channel %d: %.9g %.9g, want %.9g %.9g",
                  path, c, (double)m->norm_mean[c], (double)m->norm_std[c], (double)mean[c], (double)std[c]);
    kd_model_free(m);
}

static const char model3[] = "name: rgb\ninput: [3, 8, 8]\nlayers:\n  - {type: conv2d, out: 4, kernel: 3, pad: 1}\n"
                             "  - {type: relu}\n  - {type: flatten}\n  - {type: linear, out: 3}\n";
static const char table5[] = "name: tab\ninput: [5, 1, 1]\nlayers:\n  - {type: flatten}\n  - {type: linear, out: 2}\n";

#define FAST "-q -j 1 -e 1 -b 8 --max-steps 3 --val 10 "

/* Bad values of each data option, on each command that takes --data: usage errors (exit 2). */
static void test_usage_errors(void) {
    const cli_case cases[] = {
        {NULL, NULL, "train --data-format parquet --check", 2, "--data-format must be auto, idx, images, cifar, numpy or csv, got 'parquet'"},
        {NULL, NULL, "kd --teacher t.safetensors --channels 2 --check", 2, "--channels must be 1 (grey) or 3 (RGB), got '2'"},
        {NULL, NULL, "train --size 0x8 --check", 2, "--size expects HxW (or N for NxN), each in [1, 4096], got '0x8'"},
        {NULL, NULL, "train --size 32x --check", 2, "--size expects HxW"},
        {NULL, NULL, "train --size 8x8x8 --check", 2, "--size expects HxW"},
        {NULL, NULL, "train --fit zoom --check", 2, "--fit must be crop, pad or stretch, got 'zoom'"},
        {NULL, NULL, "train --test-fraction 1 --check", 2, "--test-fraction expects a number between 0 and 1"},
        {NULL, NULL, "train --test-fraction 0 --check", 2, "--test-fraction expects a number between 0 and 1"},
        {NULL, NULL, "train --split-seed -1 --check", 2, "--split-seed expects an integer"},
        {NULL, NULL, "train --label-column '' --check", 2, "--label-column expects a column name or 0-based index"},
        {NULL, NULL, "train --mean x --check", 2, "--mean expects one number or one per channel"},
        {NULL, NULL, "train --std 0 --check", 2, "--std expects one number or one per channel (at most 1024), comma-separated, each > 0"},
        {NULL, NULL, "train --std 1,,2 --check", 2, "--std expects"},
        {NULL, NULL, "eval x.safetensors --channels 4", 2, "distill eval: --channels must be 1 (grey) or 3"},
        {NULL, NULL, "predict x.safetensors --fit zoom", 2, "distill predict: --fit must be"},
        {NULL, NULL, "quantize x.safetensors --data-format jpeg", 2, "distill quantize: --data-format must be"},
        {NULL, NULL, "export x.safetensors -o x.kdm --size 5000", 2, "distill export: --size expects"},
        {NULL, NULL, "bench x.kdm --test-fraction 2", 2, "distill bench: --test-fraction expects"},
        {NULL, NULL, "eval x.safetensors --no-such-option", 2, "unknown option"},
        /* a run file's data options are checked the same, named with their file and line */
        {"data_cli_run.yaml", "epochs: 1\nchannels: 5\n", "train --config data_cli_run.yaml --check", 2,
         "data_cli_run.yaml:2: --channels must be 1 (grey) or 3 (RGB), got '5'"},
        {"data_cli_pipe.yaml", "data: fashion-mnist\nfit: zoom\nstudent: {epochs: 1}\n", "pipeline data_cli_pipe.yaml", 2,
         "data_cli_pipe.yaml:2: --fit must be crop, pad or stretch, got 'zoom'"},
        /* every option, good values: accepted */
        {NULL, NULL, "train --data-format idx --channels 3 --size 8x8 --fit pad --test-fraction 0.3 --split-seed 4 "
                     "--label-column label --skip-bad --mean 0.5 --std 0.2,0.3,0.4 --check", 0, ""},
        {"data_cli_run.yaml", "data-format: idx\nsize: 16\nskip-bad: true\n", "train --config data_cli_run.yaml --check",
         0, ""},
        {NULL, NULL, "train --help", 0, "--test-fraction F"},
        {NULL, NULL, "eval --help", 0, "--data-format F"},
        {NULL, NULL, "quantize --help", 0, "--label-column C"},
        {NULL, NULL, "train --help", 0, "a random crop with padding N"},
    };
    EXPECT_CASES(cases);
    remove("data_cli_run.yaml");
    remove("data_cli_pipe.yaml");
}

int main(void) {
    test_usage_errors();
    mkdir(DIR, 0755);
    write_idx("train", 60, 3, 8, 8, 3, 1);
    write_idx("t10k", 30, 3, 8, 8, 3, 2);
    kd_dataset train = {0};
    kd_error err;
    CHECK_MSG(kd_dataset_load(&train, DIR, "train", &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(train.c == 3 && train.h == 8 && train.n == 60);
    float mean[3] = {0}, std[3] = {0};
    if (train.c == 3) kd_dataset_channel_stats(&train, mean, std);
    CHECK(mean[0] < mean[1] && mean[1] < mean[2]); /* three different channels */
    kd_dataset_free(&train);

    /* trained on the data: its per-channel statistics of the whole training split (before --val) */
    write_file("data_cli_rgb.yaml", model3);
    EXPECT("train " FAST "-d " DIR " -m data_cli_rgb.yaml -o data_cli_a.safetensors", 0, "wrote data_cli_a.safetensors");
    check_norm("data_cli_a.safetensors", mean, std);
    EXPECT("eval data_cli_a.safetensors -d " DIR " --data-format idx", 0, "accuracy");
    EXPECT("predict data_cli_a.safetensors -d " DIR " -n 2", 0, "(true: ");
    /* (quantize: per-channel normalisation in int8 models comes with part "deploy" of issue 14) */
    /* --mean/--std: one value for every channel, or one per channel */
    EXPECT("train " FAST "-d " DIR " -m data_cli_rgb.yaml --mean 0.5 --std 0.25 -o data_cli_b.safetensors", 0, "wrote");
    const float half[3] = {0.5f, 0.5f, 0.5f}, quarter[3] = {0.25f, 0.25f, 0.25f};
    check_norm("data_cli_b.safetensors", half, quarter);
    EXPECT("train " FAST "-d " DIR " -m data_cli_rgb.yaml --mean 0.1,0.2,0.3 -o data_cli_c.safetensors", 0, "wrote");
    const float m3[3] = {0.1f, 0.2f, 0.3f};
    check_norm("data_cli_c.safetensors", m3, std);
    EXPECT("train " FAST "-d " DIR " -m data_cli_rgb.yaml --mean 0.1,0.2 -o data_cli_c.safetensors", 2,
           "--mean has 2 values; the input has 3 channels (give 1 value or 3)");
    /* a student distilled from a checkpoint teacher takes the data's normalisation, not the teacher's */
    EXPECT("kd " FAST "-d " DIR " --teacher data_cli_b.safetensors -s data_cli_rgb.yaml -o data_cli_kd.safetensors", 0,
           "test accuracy: teacher rgb");
    check_norm("data_cli_kd.safetensors", mean, std);
    /* consistent teaching on 3-channel images: mixup, CutMix and shifts, the teacher in int8 on the
     * runtime's kernels (its NHWC input made from the NCHW batch) */
    EXPECT("kd " FAST "-d " DIR " --teacher data_cli_b.safetensors -s data_cli_rgb.yaml --mixup 0.5 --cutmix 1 "
           "--translate 1 --teacher-int8 -o data_cli_kd8.safetensors", 0, "runs in int8 on the runtime's kernels");
    EXPECT("kd " FAST "-d " DIR " --teacher data_cli_b.safetensors --teacher data_cli_b.safetensors -s data_cli_rgb.yaml "
           "--teacher-int8 -o data_cli_kd8.safetensors", 2, "--teacher-int8 runs one teacher checkpoint");
    EXPECT("kd " FAST "-d " DIR " --teacher data_cli_b.safetensors -s data_cli_rgb.yaml --teacher-int8 --loss hinton "
           "--loss fitnet -o data_cli_kd8.safetensors", 2, "the feature and relation terms need the fp32 teacher's");
    EXPECT("train " FAST "-d " DIR " -m data_cli_rgb.yaml --teacher-int8 -o data_cli_kd8.safetensors", 2,
           "this is a distillation option");
    write_npy_zeros("data_cli_logits.npy", 60, 3);
    EXPECT("kd " FAST "-d " DIR " --teacher-logits data_cli_logits.npy -s data_cli_rgb.yaml --mixup 0.2 "
           "-o data_cli_kd8.safetensors", 1, "the teacher's outputs are fixed per training image");
    EXPECT("train " FAST "-d " DIR " -m data_cli_rgb.yaml --mixup -1 -o data_cli_kd8.safetensors", 2, "--mixup");
    EXPECT("train " FAST "-d " DIR " -m data_cli_rgb.yaml --mix-prob 2 -o data_cli_kd8.safetensors", 2, "--mix-prob");
    /* a run that shows progress says what it will take after its first steps */
    EXPECT("train -j 1 -e 2 -b 8 --val 10 -d " DIR " -m data_cli_rgb.yaml -o data_cli_kd8.safetensors", 0,
           "time: about ");
    /* a checkpoint for other data: one message naming the data and both shapes */
    EXPECT("eval data_cli_a.safetensors -d fashion-mnist", 1, "data has 1x28x28 samples, model rgb expects 3x8x8");
    EXPECT("kd " FAST "--teacher data_cli_a.safetensors -s mlp-s -d fashion-mnist -o data_cli_x.safetensors",
           1, "data_cli_a.safetensors: data has 1x28x28 samples, model rgb expects 3x8x8");

    /* samples of 5x1x1 (a table's shape): augmentation refused, training without it runs */
    write_idx("train", 40, 5, 1, 1, 2, 3);
    write_idx("t10k", 20, 5, 1, 1, 2, 4);
    write_file("data_cli_tab.yaml", table5);
    EXPECT("train " FAST "-d " DIR " -m data_cli_tab.yaml --translate 4 -o data_cli_t.safetensors", 1,
           "the samples are 5 features (5x1x1, a table or feature vectors), not images");
    EXPECT("train " FAST "-d " DIR " -m data_cli_tab.yaml --hflip -o data_cli_t.safetensors", 1, "train without them");
    EXPECT("train " FAST "-d " DIR " -m data_cli_tab.yaml --cutmix 1 -o data_cli_t.safetensors", 1,
           "--mixup works on tables");
    EXPECT("train " FAST "-d " DIR " -m data_cli_tab.yaml --mixup 0.4 -o data_cli_t.safetensors", 0,
           "wrote data_cli_t.safetensors");
    EXPECT("train " FAST "-d " DIR " -m data_cli_tab.yaml -o data_cli_t.safetensors", 0, "wrote data_cli_t.safetensors");

    const char *files[] = {"data_cli_rgb.yaml", "data_cli_tab.yaml", "data_cli_a.safetensors", "data_cli_b.safetensors",
                           "data_cli_c.safetensors", "data_cli_kd.safetensors", "data_cli_t.safetensors",
                           "data_cli_kd8.safetensors", "data_cli_kd8.safetensors.ckpt", "data_cli_logits.npy",
                           "data_cli_a.safetensors.ckpt", "data_cli_b.safetensors.ckpt", "data_cli_c.safetensors.ckpt",
                           "data_cli_kd.safetensors.ckpt", "data_cli_t.safetensors.ckpt",
                           DIR "/train-images-idx3-ubyte", DIR "/train-labels-idx1-ubyte", DIR "/t10k-images-idx3-ubyte",
                           DIR "/t10k-labels-idx1-ubyte", DIR};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) remove(files[i]);
    TEST_DONE();
}
