/* Hostile numbers (issue 12 items 1, 5, 9): a checkpoint whose weights are finite but so large
 * that the model outputs NaN/inf fails eval, predict and kd with a message saying so (and no
 * memory error); --resume refuses options that differ from the checkpoint's and a checkpoint
 * whose stored values the command line would refuse; fixed teacher logits refuse augmentation. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_run.h"
#include "distill/checkpoint.h"
#include "distill/npy.h"
#include "distill/train.h"

/* mlp-s with its output layer's weights set to `w` (finite), saved to path. */
static void save_scaled_model(const char *path, float w) {
    kd_model *m = NULL;
    kd_error err;
    CHECK_MSG(kd_model_create(&m, "mlp-s", 7, &err) == KD_STATUS_OK, "%s", err.msg);
    if (!m) return;
    const kd_layer *L = &m->layers[kd_model_find_layer(m, "fc2")];
    for (size_t i = 0; i < L->w_size; i++) m->params[L->w_off + i] = w;
    CHECK_MSG(kd_checkpoint_save(path, m, NULL, NULL, &err) == KD_STATUS_OK, "%s", err.msg);
    kd_model_free(m);
}

static void test_argmax(void) {
    const float nan = NAN, inf = INFINITY;
    const float a[] = {nan, nan, nan}, b[] = {nan, 1.f, 3.f, 3.f}, c[] = {2.f, nan, 5.f}, d[] = {-inf, -inf};
    CHECK(kd_argmax(a, 3) == 0);
    CHECK(kd_argmax(b, 4) == 2); /* NaN never wins; ties: the lowest index */
    CHECK(kd_argmax(c, 3) == 2);
    CHECK(kd_argmax(d, 2) == 0);
    const float rows[] = {1.f, 2.f, 3.f, inf, 0.f, 0.f, nan, 1.f};
    int first = 0;
    CHECK(kd_logits_nonfinite(rows, 4, 2, &first) == 2 && first == 1);
    CHECK(kd_logits_nonfinite(rows, 1, 2, &first) == 0 && first == -1);
}

/* Item 1: eval, predict and kd on a model whose outputs are not finite. */
static void test_nonfinite_model(void) {
    save_scaled_model("num_bad.safetensors", 3e38f);
    save_scaled_model("num_ok.safetensors", 0.01f);
    static const cli_case cases[] = {
        {NULL, NULL, "predict num_bad.safetensors -n 50", 1, "num_bad.safetensors: model mlp-s outputs NaN or inf logits for 50 of 50 images"},
        {NULL, NULL, "eval num_bad.safetensors", 1, "num_bad.safetensors: model mlp-s outputs NaN or inf logits for"},
        {NULL, NULL, "eval num_ok.safetensors", 0, "accuracy"},
    };
    EXPECT_CASES(cases);
    EXPECT("predict num_bad.safetensors -n 50 -i 9000", 1, "(the first: image 9000)");
    CHECK_MSG(!strstr(out, "correct") && !strstr(out, "Sanitizer"), "predict printed a result:\n%s", out);
    EXPECT("eval num_bad.safetensors", 1, "of 10000 images");
    CHECK_MSG(!strstr(out, "accuracy"), "eval printed an accuracy:\n%s", out);
    /* the teacher is blamed, before training: when cached, when run every step, in an ensemble */
    const char *kd = "kd --student mlp-s --epochs 1 --limit 1000 --val 200 --batch 100 -q -o num_kd.safetensors";
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s --teacher num_bad.safetensors", kd);
    EXPECT(cmd, 1, "teacher mlp-s outputs NaN or inf logits for 800 of 800 training images");
    CHECK_MSG(!strstr(out, "learning rate") && !strstr(out, "--lr"), "kd blamed the learning rate:\n%s", out);
    snprintf(cmd, sizeof cmd, "%s --teacher num_bad.safetensors --no-cache", kd);
    EXPECT(cmd, 1, "teacher mlp-s outputs NaN or inf logits");
    snprintf(cmd, sizeof cmd, "%s --teacher num_ok.safetensors --teacher num_bad.safetensors", kd);
    EXPECT(cmd, 1, "teacher mlp-s outputs NaN or inf logits");
    remove("num_bad.safetensors");
    remove("num_ok.safetensors");
    remove("num_kd.safetensors.ckpt");
}

/* Replace the first `from` in file path by `to` (same length, so the header keeps its size). */
static int edit_file(const char *path, const char *from, const char *to) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    size_t k = strlen(from);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(buf + i, from, k)) {
            memcpy(buf + i, to, k);
            f = fopen(path, "wb");
            if (!f) return 0;
            fwrite(buf, 1, n, f);
            fclose(f);
            return 1;
        }
    return 0;
}

/* Item 5: --resume continues the checkpoint's run: options that would change it are refused by
 * name, --epochs extends it, and stored settings out of the command line's range are refused. */
static void test_resume_options(void) {
    const char *A = "train -m mlp-s --limit 1000 --val 200 --batch 100 -q -o num_r.safetensors --resume";
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s -e 1", A);
    EXPECT(cmd, 0, "wrote num_r.safetensors");
    static const struct {
        const char *opts, *needle;
    } refused[] = {
        {"-e 1 --lr 0.5", "num_r.safetensors.ckpt: this run asks for --lr 0.5 (the checkpoint's: 0.05)"},
        {"-e 1 --lr 0.001", "--lr 0.001 (the checkpoint's: 0.05)"},
        {"-e 1 --momentum 0.8", "--momentum 0.8 (the checkpoint's: 0.9)"},
        {"-e 1 --schedule const", "--schedule const (the checkpoint's: cosine)"},
        {"-e 1 --seed 2", "another seed than this run's 2"},
        {"-e 1 --optimizer adamw", "was trained with sgd, this run uses adamw"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        snprintf(cmd, sizeof cmd, "%s %s", A, refused[i].opts);
        EXPECT(cmd, 1, refused[i].needle);
    }
    snprintf(cmd, sizeof cmd, "%s -e 2", A); /* more epochs: applied */
    EXPECT(cmd, 0, "resumed num_r.safetensors.ckpt at step 8");
    CHECK_MSG(strstr(out, "trained mlp-s: 1 epochs"), "--epochs 2 did not extend the run:\n%s", out);
    snprintf(cmd, sizeof cmd, "%s -e 1", A);
    EXPECT(cmd, 1, "it has completed 2 epochs, more than this run's 1");
    CHECK(edit_file("num_r.safetensors.ckpt", "lr\\\":0.05", "lr\\\":-1.0"));
    snprintf(cmd, sizeof cmd, "%s -e 2", A);
    EXPECT(cmd, 1, "num_r.safetensors.ckpt: its optimizer setting lr is -1, outside [1e-09, 100] (as --lr)");
    remove("num_r.safetensors");
    remove("num_r.safetensors.ckpt");
}

/* Item 9: logits fixed per training image cannot be paired with shifted or flipped images. */
static void test_fixed_logits_augmentation(void) {
    static float z[60000 * 10];
    kd_error err;
    CHECK_MSG(kd_npy_save("num_logits.npy", z, 60000, 10, &err) == KD_STATUS_OK, "%s", err.msg);
    const char *A = "kd --teacher-logits num_logits.npy -s mlp-s -e 1 --limit 1000 --val 200 -q -o num_kd.safetensors";
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s --translate 2", A);
    EXPECT(cmd, 1, "the teacher's outputs are fixed per training image");
    snprintf(cmd, sizeof cmd, "%s --hflip", A);
    EXPECT(cmd, 1, "augmentation (--translate, --hflip, --mixup, --cutmix)");
    remove("num_logits.npy");
}

int main(void) {
    test_argmax();
    test_nonfinite_model();
    test_resume_options();
    test_fixed_logits_augmentation();
    TEST_DONE();
}
