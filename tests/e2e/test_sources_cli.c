/* Every data source of tests/fixtures/data through the `distill` command (issue 14): an image
 * folder (two-folder layout; one tree with --test-fraction, --size and --channels), a CIFAR-10
 * directory, an .npz, an .npy pair, a CSV pair with a header and string labels, a TSV. For each:
 * train (1 epoch, the default --val, which must fit the data), the checkpoint's YAML carries the
 * normalisation (one value per input channel) and the class names, info shows them, eval on the
 * test split prints the same accuracy twice and the class names per class, predict (image files
 * for image models, --data otherwise) names the classes, quantize and export with the default
 * calibration count (the data has fewer than 1000 samples), bench --verify of the .kdm agrees
 * with the training side's integer evaluation; eval and quantize read an image folder at the
 * model's shape without --size/--channels, bench at the .kdm's. Bad specs are refused naming
 * the file. kd --teacher-logits of a --test-fraction split takes one row per row of the file.
 * Tiny models and sets: a few seconds under ASan. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_run.h"
#include "distill/checkpoint.h"

#define FX KD_SOURCE_DIR "/tests/fixtures/data"

typedef struct source {
    const char *name, *model, *data; /* data: the data options of every command */
    int in_c;                        /* input channels (features of a table) */
    const char *yaml_names;          /* the YAML class_names line, or NULL: none stored */
    const char *info_names;          /* info's class names line */
    const char *files;               /* image files for predict, or NULL: predict --data */
    const char *predict_needle;      /* a class (name=index) that must be in predict's output */
    const char *eval_needle;         /* a per-class line of eval */
} source;

static const source sources[] = {
    {"two", "cnn-s", "--data " FX "/images/two", 3, "class_names: ['cat', 'dog', 'frog']",
     "class names   cat, dog, frog", FX "/images/two/test/dog/dog00.jpg " FX "/images/two/test/frog/frog01.ppm",
     "frog=2", "   1 dog "},
    {"one", "cnn-s", "--data " FX "/images/one --test-fraction 0.4 --size 16x16 --channels 1", 1,
     "class_names: ['cat', 'dog', 'frog']", "class names   cat, dog, frog", FX "/images/one/cat/img0.png",
     "cat=0", "   0 cat "},
    {"cifar", "cnn-s", "--data " FX "/cifar/c10", 3, "class_names: ['name0', 'name1', 'name2',",
     "class names   name0, name1, name2, name3, name4, name5, name6, name7 (+2 more)", NULL, "(true: name",
     " name"},
    {"npz", "mlp-tab", "--data " FX "/numpy/tab.npz", 5, NULL, "class names   none stored", NULL, "class 0", "   0 "},
    {"npy", "mlp-tab", "--data " FX "/numpy/X.npy," FX "/numpy/Y.npy", 3, NULL, "class names   none stored", NULL,
     "class 0", "   0 "},
    {"csv", "mlp-tab", "--data " FX "/csv/train.csv," FX "/csv/test.csv", 2, "class_names: ['a', 'b', 'c']",
     "class names   a, b, c", NULL, "(true: ", "   0 a "},
    /* tests/fixtures/data/csv/tab.tsv has 2 rows, too few for a test split: 12 rows written here */
    {"tsv", "mlp-tab", "--data tsv.tsv", 3, "class_names: ['high', 'low']", "class names   high, low", NULL,
     "low=1", "   1 low "},
};

static const char tsv[] = "x\ty\tz\tlevel\n1\t2\t3\tlow\n9\t8\t7\thigh\n1.5\t2\t3\tlow\n9\t8.5\t7\thigh\n"
                          "1\t2.5\t3\tlow\n9\t8\t7.5\thigh\n1\t2\t3.5\tlow\n9.5\t8\t7\thigh\n2\t2\t3\tlow\n"
                          "9\t9\t7\thigh\n1\t3\t3\tlow\n9\t8\t6\thigh\n";

/* eval's accuracy line without its speed (", N samples/s"); "" when there is none. */
static void eval_line(char *buf, size_t n) {
    const char *a = strstr(out, ": accuracy "), *e = a ? strstr(a, ", loss ") : NULL;
    while (a && a > out && a[-1] != '\n') a--;
    size_t len = e ? (size_t)(e - a) + 14 : 0; /* ", loss 1.2345" */
    snprintf(buf, n, "%.*s", (int)(len < n ? len : n - 1), e ? a : "");
}

static void check_source(const source *s) {
    char a[2048], first[512], second[512];
    snprintf(a, sizeof a, "train --model %s %s --epochs 1 --batch 4 -q -o %s.safetensors", s->model, s->data, s->name);
    EXPECT(a, 0, "wrote");

    snprintf(a, sizeof a, "%s/%s.safetensors", cli_dir, s->name);
    kd_model *m = NULL;
    kd_error err;
    CHECK_MSG(kd_checkpoint_load(a, &m, &err) == KD_STATUS_OK, "%s: %s", s->name, err.msg);
    if (m) {
        const char *nl = strstr(m->yaml, "normalize: {mean: [");
        CHECK_MSG(nl != NULL, "%s: no normalize line in the YAML:\n%s", s->name, m->yaml);
        int commas = 0;
        for (const char *p = nl ? nl + 19 : ""; *p && *p != ']'; p++) commas += *p == ',';
        CHECK_MSG(m->in_c == s->in_c && commas + 1 == s->in_c, "%s: input channels %d, %d mean values, expected %d",
                  s->name, m->in_c, commas + 1, s->in_c);
        if (s->yaml_names) CHECK_MSG(strstr(m->yaml, s->yaml_names) != NULL, "%s: '%s' not in\n%s", s->name, s->yaml_names, m->yaml);
        else CHECK_MSG(!strstr(m->yaml, "class_names"), "%s: class names from numeric labels:\n%s", s->name, m->yaml);
        kd_model_free(m);
    }
    snprintf(a, sizeof a, "info %s.safetensors", s->name);
    EXPECT(a, 0, s->info_names);
    CHECK_MSG(strstr(out, !strcmp(s->model, "mlp-tab") ? "input type    values" : "input type    pixels") != NULL,
              "%s: input type:\n%s", s->name, out);

    snprintf(a, sizeof a, "eval %s.safetensors %s", s->name, s->data);
    EXPECT(a, 0, s->eval_needle);
    CHECK_MSG(strstr(out, " samples/s") != NULL, "eval: %s", out);
    eval_line(first, sizeof first);
    EXPECT(a, 0, "accuracy");
    eval_line(second, sizeof second);
    CHECK_MSG(first[0] && !strcmp(first, second), "%s: eval twice: '%s' vs '%s'", s->name, first, second);

    if (s->files) snprintf(a, sizeof a, "predict %s.safetensors %s", s->name, s->files);
    else snprintf(a, sizeof a, "predict %s.safetensors %s -n 2", s->name, s->data);
    EXPECT(a, 0, s->predict_needle);

    snprintf(a, sizeof a, "quantize %s.safetensors %s -o %s.int8.safetensors", s->name, s->data, s->name);
    EXPECT(a, 0, "int8 accuracy");
    snprintf(a, sizeof a, "export %s.safetensors %s -o %s.kdm", s->name, s->data, s->name);
    EXPECT(a, 0, "wrote");
    snprintf(a, sizeof a, "bench %s.kdm %s --verify -n 3", s->name, s->data);
    EXPECT(a, 0, "int8 logits identical to the training side's integer evaluation");
}

int main(void) {
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/test_sources_cli.d", KD_BINARY_DIR);
    mkdir(dir, 0755);
    cli_dir = dir;
    write_file("tsv.tsv", tsv);
    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) check_source(&sources[i]);

    /* a model trained with --size and --channels reads an image folder at its own shape: the same
     * evaluation without them */
    char first[512], second[512];
    EXPECT("eval one.safetensors --data " FX "/images/one --test-fraction 0.4 --size 16x16 --channels 1", 0, "accuracy");
    eval_line(first, sizeof first);
    EXPECT("eval one.safetensors --data " FX "/images/one --test-fraction 0.4", 0, "accuracy");
    eval_line(second, sizeof second);
    CHECK_MSG(first[0] && !strcmp(first, second), "eval at the model's shape: '%s' vs '%s'", first, second);
    EXPECT("quantize one.safetensors --data " FX "/images/one --test-fraction 0.4 -o one2.int8.safetensors", 0,
           "int8 accuracy");
    /* bench reads an image folder at the .kdm's shape too */
    EXPECT("bench one.kdm --data " FX "/images/one --test-fraction 0.4 -n 3", 0, "accuracy");
    /* --teacher-logits for one file split by --test-fraction: one row per row of the whole file
     * (the training samples' rows in it go up to 12), not per training sample (9) */
    write_npy_zeros("tsv_logits.npy", 12, 2);
    EXPECT("kd --teacher-logits tsv_logits.npy --student mlp-tab --data tsv.tsv --test-fraction 0.25 --epochs 1 "
           "--batch 4 -q -o tsv_kd.safetensors", 0, "wrote");
    write_npy_zeros("tsv_logits.npy", 5, 2);
    EXPECT("kd --teacher-logits tsv_logits.npy --student mlp-tab --data tsv.tsv --test-fraction 0.25 --epochs 1 "
           "--batch 4 -q -o tsv_kd.safetensors", 1, "tsv_logits.npy has 5 rows");
    /* a model without class names (a built-in one, untrained) is shown the data's */
    EXPECT("eval cnn-s --data " FX "/images/two", 0, "   1 dog ");
    /* a calibration count larger than the data is still an error */
    EXPECT("quantize csv.safetensors --data " FX "/csv/train.csv," FX "/csv/test.csv -n 4 -o x.int8.safetensors", 1,
           "calibration asks for 4 samples but the data set has 3");
    /* bad specs: the error names the file */
    static const cli_case bad[] = {
        {NULL, NULL, "train --model mlp-tab --data " FX "/csv/bad-ragged.csv", 1, "bad-ragged.csv:3:"},
        {NULL, NULL, "eval npz.safetensors --data " FX "/numpy/bad-crc.npz", 1, "bad-crc.npz: member x_test.npy"},
        {NULL, NULL, "train --model cnn-s --data " FX "/cifar/bad", 1, "cifar/bad/data_batch_1.bin:"},
        {NULL, NULL, "train --model cnn-s --data " FX "/numpy/bad-nan.npy," FX "/numpy/Y.npy", 1, "bad-nan.npy"},
        {NULL, NULL, "predict two.safetensors " FX "/images/one/cat/notes.txt", 1, "notes.txt: not a PNG"},
        {NULL, NULL, "train --model cnn-s --data nowhere/photos", 1, "nowhere/photos: no such data set (fashion-mnist, an image folder"},
    };
    EXPECT_CASES(bad);
    TEST_DONE();
}
