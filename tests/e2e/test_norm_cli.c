/* End to end on Fashion-MNIST: a YAML model with its own `normalize:` is trained, evaluated and
 * used as a teacher through the `distill` command, and every accuracy the command prints equals
 * the model's accuracy computed here by feeding it its own normalisation directly; a student
 * normalised otherwise than its teacher is distilled the same, bit for bit, whether the teacher
 * runs every step or is cached (both feed the teacher its own inputs). Small: 3,000 training and
 * 2,000 test images of Fashion-MNIST written as raw IDX files, 1 epoch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_run.h"
#include "distill/checkpoint.h"
#include "distill/train.h"

/* mean 0.5, std 0.25: far from the data's own statistics (about 0.286, 0.353) */
static const char model_yaml[] =
    "name: normed\ninput: [1, 28, 28]\nnormalize: {mean: [0.5], std: [0.25]}\nlayers:\n"
    "  - {name: conv1, type: conv2d, out: 8, kernel: 3, pad: 1}\n  - {type: relu}\n"
    "  - {type: maxpool, kernel: 2}\n  - {type: flatten}\n  - {type: linear, out: 10}\n";

/* Correct predictions of checkpoint `path` on the test set, its inputs made here: (p/255 - 0.5) /
 * 0.25 with the arithmetic of data.h (p * scale + shift), so equal results mean equal inputs.
 * -1 if the checkpoint cannot be read. */
static int own_correct(const char *path, const kd_dataset *test) {
    kd_model *m = NULL;
    kd_error err;
    if (kd_checkpoint_load(path, &m, &err) != KD_STATUS_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    CHECK_MSG(m->norm_mean && m->norm_mean[0] == 0.5f && m->norm_std[0] == 0.25f, "%s lost its normalisation", path);
    enum { B = 250 };
    static float x[B * 784];
    const float scale = 1.f / (255.f * 0.25f), shift = -0.5f / 0.25f;
    int correct = 0;
    CHECK(kd_model_set_batch(m, B, 2, &err) == KD_STATUS_OK);
    for (int s = 0; s < test->n; s += B) {
        for (int i = 0; i < B * 784; i++) x[i] = test->pixels[(size_t)s * 784 + i] * scale + shift;
        const float *lg = kd_model_forward(m, x, B, 0, NULL);
        for (int b = 0; b < B; b++) correct += kd_argmax(lg + b * 10, 10) == test->labels[s + b];
    }
    kd_model_free(m);
    return correct;
}

/* The first n images of a Fashion-MNIST split as raw IDX files in dir/ (PREFIX-images-idx3-ubyte,
 * PREFIX-labels-idx1-ubyte), so that every command of the test reads a small set fast. */
static void write_subset(const char *dir, const char *prefix, const kd_dataset *ds, int n) {
    char path[256];
    unsigned char head[16] = {0, 0, 8, 3, (unsigned char)(n >> 24), (unsigned char)(n >> 16), (unsigned char)(n >> 8),
                              (unsigned char)n, 0, 0, 0, 28, 0, 0, 0, 28};
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dir, prefix);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(head, 1, 16, f) == 16 && fwrite(ds->pixels, 784, (size_t)n, f) == (size_t)n);
    if (f) fclose(f);
    head[3] = 1;
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, prefix);
    f = fopen(path, "wb");
    CHECK(f && fwrite(head, 1, 8, f) == 8);
    for (int i = 0; f && i < n; i++) fputc(ds->labels[i], f);
    if (f) fclose(f);
}

int main(void) {
    kd_dataset test, train;
    kd_error err;
    if (kd_dataset_load(&test, "fashion-mnist", "test", &err) != KD_STATUS_OK ||
        kd_dataset_load(&train, "fashion-mnist", "train", &err) != KD_STATUS_OK) {
        printf("note: %s (skipping)\n", err.msg);
        TEST_DONE();
    }
    mkdir("norm_data", 0755);
    write_subset("norm_data", "train", &train, 3000);
    write_subset("norm_data", "t10k", &test, 2000);
    kd_dataset_free(&train);
    kd_dataset_truncate(&test, 2000);
    const cli_case train_case[] = {
        {"norm_model.yaml", model_yaml, "train -d norm_data --model norm_model.yaml --val 0 --epochs 1 "
         "-o norm_teacher.safetensors", 0, "wrote norm_teacher.safetensors"},
    };
    EXPECT_CASES(train_case);
    int own = own_correct("norm_teacher.safetensors", &test);
    /* trained on its own normalisation: clearly better than chance when fed it */
    CHECK_MSG(own > test.n * 6 / 10, "%d/%d correct on its own normalisation", own, test.n);
    char want[64];
    snprintf(want, sizeof want, "(%d/%d)", own, test.n);
    EXPECT("eval -d norm_data norm_teacher.safetensors", 0, want);
    /* int8: the fp32 accuracy printed is its own; the int8 model takes the same normalisation */
    EXPECT("quantize -d norm_data norm_teacher.safetensors -n 200", 0, "int8 accuracy");
    snprintf(want, sizeof want, "fp32 accuracy  %.2f%%", 100.0 * own / test.n);
    CHECK_MSG(strstr(out, want) != NULL, "'%s' not in:\n%s", want, out);
    const char *a8 = strstr(out, "int8 accuracy");
    double acc8 = a8 ? atof(a8 + strlen("int8 accuracy")) : 0.0;
    double acc = 100.0 * own / test.n;
    CHECK_MSG(acc8 > acc - 2.0, "int8 accuracy %.2f%% against fp32 %.2f%%", acc8, acc);
    /* as a teacher of a student with the data's statistics: the teacher's accuracy reported by kd */
    snprintf(want, sizeof want, "teacher normed %.2f%%", 100.0 * own / test.n);
    EXPECT("kd -d norm_data --teacher norm_teacher.safetensors --student mlp-s --limit 1000 --val 0 --epochs 1 "
           "--translate 1 -o norm_student.safetensors", 0, want);
    /* the other way round: the normalised model as the student of a teacher with the data's
     * statistics; the cached and the online teacher give the same student */
    EXPECT("kd -d norm_data --teacher mlp-s --student norm_model.yaml --limit 600 --val 0 --epochs 1 "
           "-o norm_cached.safetensors", 0, "computed once and cached");
    EXPECT("kd -d norm_data --teacher mlp-s --student norm_model.yaml --limit 600 --val 0 --epochs 1 --no-cache "
           "-o norm_online.safetensors", 0, "wrote norm_online.safetensors");
    size_t na = 0, nb = 0;
    char *a = NULL, *b = NULL;
    FILE *fa = fopen("norm_cached.safetensors", "rb"), *fb = fopen("norm_online.safetensors", "rb");
    if (fa && fb) {
        a = malloc(1 << 22);
        b = malloc(1 << 22);
        na = fread(a, 1, 1 << 22, fa);
        nb = fread(b, 1, 1 << 22, fb);
    }
    CHECK_MSG(a && b && na > 0 && na == nb && memcmp(a, b, na) == 0,
              "the student distilled from the cached teacher differs from the one of the online teacher");
    free(a);
    free(b);
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    const char *files[] = {"norm_model.yaml", "norm_teacher.safetensors", "norm_teacher.safetensors.ckpt",
                           "norm_student.safetensors", "norm_student.safetensors.ckpt", "norm_cached.safetensors",
                           "norm_cached.safetensors.ckpt", "norm_online.safetensors", "norm_online.safetensors.ckpt"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) remove(files[i]);
    const char *data[] = {"norm_data/train-images-idx3-ubyte", "norm_data/train-labels-idx1-ubyte",
                          "norm_data/t10k-images-idx3-ubyte", "norm_data/t10k-labels-idx1-ubyte", "norm_data"};
    for (size_t i = 0; i < sizeof data / sizeof data[0]; i++) remove(data[i]);
    kd_dataset_free(&test);
    TEST_DONE();
}
