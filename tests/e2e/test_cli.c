/* The `distill` command as a user meets it: --help everywhere, exit codes, and a clear one-line
 * error (naming the file and the problem) for every kind of bad input. Then a tiny train -> info ->
 * eval -> predict round trip through files. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli_run.h"

/* Run `distill ARGS` (output in `out`) and send it SIGINT, what Ctrl-C sends, as soon as the file
 * `when` exists (polled every 5 ms, for at most 120 s). Returns 0 if the signal was sent. */
static int run_interrupted(const char *args, const char *when) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "exec %s %s > cli_interrupted.out 2>&1", KD_CLI_PATH, args);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int sent = -1, status = 0;
    for (int i = 0; i < 24000 && waitpid(pid, &status, WNOHANG) == 0; i++) {
        if (access(when, F_OK) == 0) {
            sent = kill(pid, SIGINT);
            break;
        }
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    if (sent) kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    FILE *f = fopen("cli_interrupted.out", "r");
    size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
    out[n] = 0;
    if (f) fclose(f);
    remove("cli_interrupted.out");
    return sent;
}

/* After `distill KDC --search ... -o cli_search.safetensors` (in out): the winner's options
 * ("search: best (...): OPTIONS") given to KDC in place of --search train the same student, bit
 * for bit: the final run used them. */
static void check_search_reproduces(const char *kdc) {
    const char *best = strstr(out, "search: best ("), *opts = best ? strstr(best, "): ") : NULL;
    CHECK_MSG(opts != NULL, "no winner line:\n%s", out);
    if (!opts) return;
    opts += 3;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %.*s -o cli_search2.safetensors", kdc, (int)strcspn(opts, "\n"), opts);
    EXPECT(cmd, 0, "top-1 agreement");
    CHECK_MSG(system("cmp -s cli_search.safetensors cli_search2.safetensors") == 0,
              "`distill %s` trained another student than the search's final run", cmd);
}

int main(void) {
    /* usage, help, argument errors */
    static const cli_case usage_cases[] = {
        {NULL, NULL, "--help", 0, "Commands:"},
        {NULL, NULL, "", 2, "Usage:"},
        {NULL, NULL, "frobnicate", 2, "unknown command 'frobnicate'"},
        {NULL, NULL, "train --help", 0, "--resume"},
        {NULL, NULL, "eval --help", 0, "--split"},
        {NULL, NULL, "info --help", 0, "--batch"},
        {NULL, NULL, "predict --help", 0, "--count"},
        {NULL, NULL, "models", 0, "mobilenet-s"},
        {NULL, NULL, "train --epochs zero", 2, "--epochs expects an integer"},
        {NULL, NULL, "train --optimizer adam", 2, "sgd or adamw"},
        {NULL, NULL, "info cnn-t", 0, "conv3"},
        {NULL, NULL, "info no-such-model", 1, "neither a built-in model"},
    };
    EXPECT_CASES(usage_cases);

    static const cli_case bad_inputs[] = {
        /* bad model descriptions name the file, the line and the layer */
        {"cli_bad.yaml", "name: bad\ninput: [1, 28, 28]\nlayers:\n  - {type: conv2d, out: 8}\n"
                         "  - {name: oops, type: transformer}\n",
         "info cli_bad.yaml", 1, "cli_bad.yaml:5: layer #2: unknown layer type 'transformer'"},
        {"cli_shape.yaml", "name: bad\ninput: [1, 28, 28]\nlayers:\n  - {name: a, type: conv2d, out: 8}\n"
                           "  - {name: b, type: conv2d, out: 4}\n  - {name: s, type: add, inputs: [a, b]}\n"
                           "  - {type: flatten}\n  - {type: linear, out: 10}\n",
         "info cli_shape.yaml", 1, "layer s: inputs have different shapes"},
        /* missing data: say which Debian package provides it, or which file is missing */
        {NULL, NULL, "eval cnn-s --data /nonexistent/dir", 1, "/nonexistent/dir"},
        {"cli_not_idx", "hello, this is not an IDX file at all........", "eval cnn-s --data cli_not_idx,cli_not_idx", 1,
         "cli_not_idx"},
        /* checkpoints: garbage, and a checkpoint of another model */
        {"cli_garbage.safetensors", "garbage garbage garbage", "eval cli_garbage.safetensors", 1,
         "cli_garbage.safetensors"},
        {NULL, NULL, "eval missing.safetensors", 1, "missing.safetensors"},
    };
    EXPECT_CASES(bad_inputs);

    /* a tiny round trip on real data */
    EXPECT("train --model mlp-s --epochs 1 --limit 2000 --val 500 --batch 100 -q -o cli_mlp.safetensors "
           "--log cli_log.jsonl",
           0, "wrote cli_mlp.safetensors");
    EXPECT("info cli_mlp.safetensors", 0, "101770");
    EXPECT("eval cli_mlp.safetensors", 0, "accuracy");
    EXPECT("predict cli_mlp.safetensors --count 3", 0, "correct");
    FILE *f = fopen("cli_log.jsonl", "r");
    CHECK(f != NULL);
    if (f) {
        char line[1024] = "";
        CHECK(fgets(line, sizeof line, f) != NULL);
        CHECK(strstr(line, "\"epoch\": 1") && strstr(line, "\"val_acc\""));
        fclose(f);
    }
    /* distillation from the model just trained, then its error paths */
    EXPECT("kd --teacher cli_mlp.safetensors --student mlp-s --epochs 1 --limit 2000 --val 500 --batch 100 -q "
           "-o cli_kd.safetensors",
           0, "top-1 agreement");
    /* quantization-aware distillation from that student, int4 weights; resumed; its errors */
    EXPECT("kd --teacher cli_mlp.safetensors --student cli_kd.safetensors --qat 4 --limit 2000 --val 500 --batch 100 "
           "--epochs 1 -q -o cli_qat.safetensors", 0, "after quantization-aware training");
    CHECK_MSG(strstr(out, "weights int4 in groups of 32") && strstr(out, "lr 0.005") &&
              strstr(out, "wrote cli_qat.int8.safetensors"), "QAT run:\n%s", out);
    EXPECT("kd --teacher cli_mlp.safetensors --student cli_kd.safetensors --qat 4 --limit 2000 --val 500 --batch 100 "
           "--epochs 2 -q --resume -o cli_qat.safetensors", 0, "after quantization-aware training");
    CHECK_MSG(strstr(out, "resumed cli_qat.safetensors.ckpt at step"), "QAT --resume did not resume:\n%s", out);
    EXPECT("kd --teacher cli_mlp.safetensors --student mlp-s --qat 8 -o x.safetensors", 2, "--qat fine-tunes a trained model");
    EXPECT("kd --teacher cli_mlp.safetensors --student cli_kd.safetensors --qat 3", 2, "--qat must be 8 or 4");
    EXPECT("quantize cli_kd.safetensors -w 4 --calib-images 200", 0, "int4 weights in groups of 32");
    EXPECT("quantize cli_kd.safetensors -w 5", 2, "--weight-bits must be 8 or 4");
    /* a run file gives the same options; the command line overrides it; loss lists combine terms */
    write_file("cli_run.yaml", "teacher: cli_mlp.safetensors\nstudent: mlp-s\nepochs: 3\nlimit: 2000\nval: 500\n"
                               "batch: 100\nquiet: true\noutput: cli_kd2.safetensors\nloss:\n"
                               "  - hinton: {T: 2, alpha: 0.5}\n  - {type: rkd, weight: 2}\n  - sp\n");
    EXPECT("kd --config cli_run.yaml --epochs 1", 0, "top-1 agreement");
    CHECK_MSG(strstr(out, "1 epochs") && strstr(out, "hinton:weight=1,T=2,alpha=0.5 + rkd:weight=2"),
              "run file not applied:\n%s", out);
    EXPECT("kd --config cli_run.yaml --epochs 1 --loss fitnet:student=relu1,weight=0.1", 0, "fitnet:weight=0.1");
    CHECK_MSG(!strstr(out, "rkd"), "the command line's --loss list must replace the file's:\n%s", out);
    static const cli_case run_file_cases[] = {
        {NULL, NULL, "kd --config cli_run.yaml --epochs 1 --init-from-teacher auto", 0, "fc1<-fc1 fc2<-fc2"},
        {NULL, NULL, "kd --config cli_run.yaml --epochs 1 --search --search-budget 2 --search-epochs 1", 0, "search: best"},
        {"cli_badrun.yaml", "teacher: cli_mlp.safetensors\ntemprature: 3\n", "kd --config cli_badrun.yaml", 2, "cli_badrun.yaml:2: 'temprature' is not an option"},
        {"cli_badrun.yaml", "teacher: [unclosed\n", "kd --config cli_badrun.yaml", 2, "cli_badrun.yaml: YAML error"},
        {NULL, NULL, "kd --config cli_run.yaml --loss hint", 2, "unknown loss 'hint'"},
        {NULL, NULL, "kd --config cli_run.yaml --loss at", 1, "attention maps need spatial layers"},
        {NULL, NULL, "kd --config cli_run.yaml --loss fitnet:student=conv9", 1, "has no layer 'conv9'"},
        {NULL, NULL, "kd --config cli_run.yaml --init-from-teacher fc1=fc2", 1, "differ in type or shape"},
    };
    EXPECT_CASES(run_file_cases);
    /* --search: successive halving's plan and tables, then the final run with the winner's options */
    const char *kdc = "kd --teacher cli_mlp.safetensors --student mlp-s --limit 2000 --val 300 --max-steps 5 --batch 100 -q";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s --search --search-budget 3 -o cli_search.safetensors", kdc);
    EXPECT(cmd, 0, "search: plan: rung 0: 3 x 1 epoch; then the winner trains 3 epochs; at most 3 + 3 epochs");
    CHECK_MSG(strstr(out, "search: rung 0: 3 candidates, 1 epoch each; the best is the winner") &&
              strstr(out, "(T x alpha x mixup x translate)") && strstr(out, "--epochs 3\n") &&
              strstr(out, "1700 train / 300 val images, 3 epochs, batch 100"), "search report:\n%s", out);
    check_search_reproduces(kdc);
    /* a budget of one: the first of seed 1's draw, which augments (it depends on the draw only), so
     * the teacher cache made before the search is dropped; --epochs is the user's */
    snprintf(cmd, sizeof cmd, "%s --search --search-budget 1 --epochs 2 -o cli_search.safetensors", kdc);
    EXPECT(cmd, 0, "search: best (the only candidate, not trained in the search): --loss hinton:weight=1,T=8,alpha=0.9 "
                   "--mixup 0.2 --translate 2 --epochs 2\nsearch: the winner's schedule is 1 epoch; the run keeps --epochs 2");
    CHECK_MSG(strstr(out, "its cache dropped") && strstr(out, "300 val images, 2 epochs"), "budget 1:\n%s", out);
    check_search_reproduces(kdc);
    /* a teacher of logits from a file cannot score augmented views: augmentation is not searched */
    write_npy_zeros("cli_logits.npy", 60000, 10);
    EXPECT("kd --teacher-logits cli_logits.npy --student mlp-s --limit 2000 --val 300 --max-steps 5 -q --search "
           "--search-budget 2 --search-eta 2 -o cli_search.safetensors", 0, "augmentation not searched");
    CHECK_MSG(strstr(out, "over 12 recipes (T x alpha)") && strstr(out, "search: rung 0: 2 candidates") &&
              !strstr(out, "--mixup"), "search with a fixed teacher:\n%s", out);
    EXPECT("kd --teacher cli_mlp.safetensors --search-eta 1", 2, "--search-eta expects an integer in [2, 100]");
    /* pruning: structured shrinks the model, unstructured zeroes weights, gradual during kd */
    static const cli_case prune_cases[] = {
        {NULL, NULL, "prune cli_mlp.safetensors --channels 0.5 -o cli_pruned.safetensors", 0, "128->64"},
        {NULL, NULL, "info cli_pruned.safetensors", 0, "50890"},
        {NULL, NULL, "prune cli_mlp.safetensors --sparsity 0.7 --scope global -o cli_sparse.safetensors", 0, "wrote"},
        {NULL, NULL, "prune cli_mlp.safetensors -o x.safetensors", 2, "either --sparsity"},
        {NULL, NULL, "prune cli_mlp.safetensors --sparsity 0.5 --channels 0.5 -o x.safetensors", 2, "either --sparsity"},
        {NULL, NULL, "prune cli_mlp.safetensors --sparsity 1.5 -o x.safetensors", 2, "--sparsity"},
        {NULL, NULL, "kd --config cli_run.yaml --epochs 1 --prune-sparsity 0.6", 0, "weight sparsity of conv/linear layers: 60.00%"},
    };
    EXPECT_CASES(prune_cases);
    /* the pipeline from a file: stages run, then skip when rerun; report and plot */
    write_file("cli_pipe.yaml", "out: cli_pipe\nthreads: 1\nteacher-file: cli_mlp.safetensors\n"
                                "baseline: {model: mlp-s, epochs: 1, limit: 2000, val: 500, quiet: true}\n"
                                "student: {student: mlp-s, epochs: 1, limit: 2000, val: 500, quiet: true}\n"
                                "prune: {channels: 0.5, epochs: 1, limit: 2000, val: 500, quiet: true}\n"
                                "quantize: {calib-images: 200}\n"
                                "qat: {epochs: 1, limit: 2000, val: 500, quiet: true}\n");
    EXPECT("pipeline cli_pipe.yaml", 0, "| pruned + KD |");
    CHECK_MSG(strstr(out, "| student (CE only) |") && strstr(out, "| 50890 |") && strstr(out, "| int8 PTQ (of pruned + KD) |") &&
              strstr(out, "| int8 QAT+KD (of pruned + KD) |") &&
              strstr(out, "| kdrt .kdm (of int8 QAT+KD) |"),
              "pipeline report:\n%s", out);
    EXPECT("pipeline cli_pipe.yaml", 0, "student: cli_pipe/student.safetensors exists, skipped");
    /* the pipeline's int8 model as the device runs it: identical logits to the integer evaluation */
    EXPECT("export cli_pipe/int8.safetensors -o cli_pipe/model.kdm", 0, "wrote cli_pipe/model.kdm");
    EXPECT("bench cli_pipe/model.kdm --verify --limit 300 -n 100", 0, "identical to the training side's integer "
           "evaluation on 300/300 images");
    CHECK_MSG(strstr(out, "arena bytes") && strstr(out, "batch-1 latency  median"), "bench output:\n%s", out);
    EXPECT("bench cli_pipe/int8.safetensors", 1, "cli_pipe/int8.safetensors: malformed model");
    /* killed in the middle of a stage (SIGINT as soon as the student's first epoch checkpoint
     * exists), the pipeline continues where it stopped: finished stages are skipped, the
     * interrupted one resumes from its last checkpoint */
    write_file("cli_pipe_kill.yaml", "out: cli_pipe_kill\nthreads: 1\nteacher-file: cli_mlp.safetensors\n"
                                     "student: {student: cnn-s, epochs: 6, limit: 2000, val: 500, quiet: true}\n"
                                     "quantize: {calib-images: 200}\n");
    CHECK(system("rm -rf cli_pipe_kill") == 0);
    CHECK(run_interrupted("pipeline cli_pipe_kill.yaml", "cli_pipe_kill/student.safetensors.ckpt") == 0);
    CHECK_MSG(strstr(out, "interrupted"), "the pipeline was not interrupted:\n%s", out);
    EXPECT("pipeline cli_pipe_kill.yaml", 0, "| int8 PTQ (of student) |");
    CHECK_MSG(strstr(out, "teacher: cli_mlp.safetensors exists, skipped") &&
              strstr(out, "resumed cli_pipe_kill/student.safetensors.ckpt at step"),
              "the student stage did not resume:\n%s", out);
    write_file("cli_pipe_bad.yaml", "out: cli_pipe_bad\nteacher-file: cli_mlp.safetensors\nstudent: {student: mlp-s, tempreature: 2}\n");
    EXPECT("pipeline cli_pipe_bad.yaml", 2, "cli_pipe_bad.yaml:3: 'tempreature' is not an option of distill kd (did you mean 'temperature'?)");
    EXPECT("pipeline missing.yaml", 1, "missing.yaml: no such file");
    EXPECT("kd --student mlp-s", 2, "either --teacher");
    EXPECT("kd --teacher a.safetensors --teacher-logits b.npy", 2, "either --teacher");
    EXPECT("train --temperature 4", 2, "use 'distill kd'");
    EXPECT("kd --teacher missing-teacher.safetensors --limit 2000 --val 500 -q", 1, "missing-teacher.safetensors");
    EXPECT("kd --teacher cli_mlp.safetensors --alpha 1.5", 2, "--alpha expects a number in [0, 1]");
    EXPECT("train --model mlp-s --limit 2000 --val 2000 -q", 2, "--val 2000 leaves no training data (2000 samples)");
    write_npy_zeros("cli_logits.npy", 7, 10); /* a valid .npy of 7 rows: too few for the training set */
    EXPECT("kd --teacher-logits cli_logits.npy --student mlp-s --limit 2000 --val 500 -q", 1, "has 7 rows");
    remove("cli_logits.npy");
    /* the default --val comes from the training file's size before --limit: Fashion-MNIST holds out
     * 5000, which leaves nothing of --limit 5000 */
    EXPECT("train --model mlp-s --epochs 1 --limit 5000 -q -o cli_noval.safetensors", 2,
           "--val 5000 leaves no training data (5000 samples)");

    /* resume of a finished run does nothing and succeeds */
    EXPECT("train --model mlp-s --epochs 1 --limit 2000 --val 500 --batch 100 -q -o cli_mlp.safetensors --resume",
           0, "wrote");
    const char *made[] = {"cli_log.jsonl", "cli_mlp.safetensors", "cli_mlp.safetensors.ckpt", "cli_kd.safetensors",
                          "cli_kd.safetensors.ckpt", "cli_bad.yaml", "cli_shape.yaml", "cli_not_idx",
                          "cli_garbage.safetensors", "cli_run.yaml", "cli_badrun.yaml", "cli_kd2.safetensors",
                          "cli_kd2.safetensors.ckpt", "cli_kd2.safetensors.ckpt.kd1", "cli_kd2.safetensors.ckpt.kd2", "cli_pruned.safetensors",
                          "cli_sparse.safetensors", "cli_pipe.yaml", "cli_pipe_bad.yaml", "cli_pipe_kill.yaml",
                          "cli_qat.safetensors", "cli_qat.safetensors.ckpt", "cli_qat.int8.safetensors",
                          "cli_search.safetensors", "cli_search.safetensors.ckpt", "cli_search2.safetensors",
                          "cli_search2.safetensors.ckpt", "cli_logits.npy"};
    for (size_t i = 0; i < sizeof made / sizeof *made; i++) remove(made[i]);
    CHECK(system("rm -rf cli_pipe cli_pipe_bad cli_pipe_kill") == 0);
    TEST_DONE();
}
