/* Hostile files given to the `distill` command (issue 12 items 2, 8, 9, 10): a FIFO as each kind of
 * input is refused at once with a message naming it (no hang: every run has a deadline, and a
 * reader blocked on a FIFO is detected); a FIFO, a directory and a Unix socket as each output are
 * refused before any work (the inputs given do not even exist) and left as they were; a symbolic
 * link (as /dev/stdout is) is not replaced; a log on a full disk fails the run; export --fp32 names
 * a missing file; bench says why a .kdm cannot be read; a long path keeps the error's reason; an
 * output naming one of the command's inputs, or another output, is refused.
 * FIFOs as IDX data and as run/pipeline YAML files are tested with their readers (data, YAML). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "file_kinds.h"
#include "test.h"

static char out[65536]; /* the last run's output */

#define DEADLINE_S 30 /* far beyond what a refusal takes, even under sanitizers on a busy machine */

/* Run `distill ARGS` (output in `out`) as user uid (-1: this one) with a deadline. If it still runs
 * after 2 s, `fifo` (if given) is opened for writing every 0.5 s: that succeeds only while the
 * command has it open for reading, which a refusal does for microseconds only (kd_open_input's
 * non-blocking open, fstat, close), and it unblocks a command stuck in open() so a regression fails
 * fast. Returns the exit code, -2 if the deadline killed it, -1 if it could not run; *fifo_opened
 * says whether a reader was seen. */
static int run_limited(const char *args, const char *fifo, int uid, int *fifo_opened) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "exec %s %s", KD_CLI_PATH, args);
    int fd = open("hio/run.out", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        if (uid >= 0 && (setgid((gid_t)uid) || setuid((uid_t)uid))) _exit(125);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(fd);
    int status = 0, done = 0, seen = 0;
    for (int i = 0; i < DEADLINE_S * 200 && !(done = waitpid(pid, &status, WNOHANG) == pid); i++) {
        if (fifo && i >= 400 && i % 100 == 0) { /* after 2 s, every 0.5 s */
            int w = open(fifo, O_WRONLY | O_NONBLOCK);
            if (w >= 0) {
                seen = 1;
                close(w);
            }
        }
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    if (fifo_opened) *fifo_opened = seen;
    FILE *f = fopen("hio/run.out", "r");
    size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
    out[n] = 0;
    if (f) fclose(f);
    if (!done) return -2;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Whatever is at path, file or empty directory, removed. */
static void remove_any(const char *path) {
    if (unlink(path) != 0) rmdir(path);
}

/* A tiny data set (64 random 28x28 images, labels 0-9) as raw IDX files, and a text. */
static void write_fixtures(void) {
    FILE *f = fopen("hio/img", "wb");
    unsigned char hdr[16] = {0, 0, 8, 3, 0, 0, 0, 64, 0, 0, 0, 28, 0, 0, 0, 28};
    if (f) {
        fwrite(hdr, 1, 16, f);
        unsigned s = 1;
        for (int i = 0; i < 64 * 784; i++) fputc((int)((s = s * 1103515245u + 12345u) >> 24), f);
        fclose(f);
    }
    if ((f = fopen("hio/lbl", "wb"))) {
        unsigned char lh[8] = {0, 0, 8, 1, 0, 0, 0, 64};
        fwrite(lh, 1, 8, f);
        for (int i = 0; i < 64; i++) fputc(i % 10, f);
        fclose(f);
    }
    if ((f = fopen("hio/t.txt", "w"))) {
        for (int i = 0; i < 40; i++) fputs("In the beginning God created the heaven and the earth. ", f);
        fclose(f);
    }
}

#define DATA "--data hio/img,hio/lbl --val 16 --batch 16 --epochs 1 -q"
#define LM_SMALL "--layers 1 --dim 16 --heads 2 --ctx 16 --steps 2 -q"

/* Each input as a FIFO (the other inputs real): a prompt error naming it, the FIFO left alone. */
static void test_fifo_inputs(void) {
    static const struct {
        const char *fifo, *args;
    } cases[] = {
        {"hio/in.safetensors", "eval hio/in.safetensors --data hio/img,hio/lbl"},                /* fp32 checkpoint */
        {"hio/in.safetensors", "predict hio/in.safetensors --data hio/img,hio/lbl"},
        {"hio/in.safetensors", "prune hio/in.safetensors --sparsity 0.5 -o hio/o.safetensors"},
        {"hio/in.safetensors", "quantize hio/in.safetensors --data hio/img,hio/lbl"},
        {"hio/in.safetensors", "kd --teacher hio/in.safetensors --student mlp-s " DATA " -o hio/o.safetensors"},
        {"hio/in.safetensors", "train --model hio/in.safetensors " DATA " -o hio/o.safetensors"},
        {"hio/in.yaml", "info hio/in.yaml"},                                                     /* model YAML */
        {"hio/in.yaml", "train --model hio/in.yaml " DATA " -o hio/o.safetensors"},
        {"hio/in.npy", "kd --teacher-logits hio/in.npy --student mlp-s " DATA " -o hio/o.safetensors"},
        {"hio/in.int8.safetensors", "export hio/in.int8.safetensors -o hio/o.kdm"},             /* int8 model */
        {"hio/in.kdm", "export hio/in.kdm -o hio/o.kdm"},                                       /* .kdm */
        {"hio/in.kdm", "bench hio/in.kdm --data hio/img,hio/lbl -n 10"},
        {"hio/in.safetensors", "export hio/m.int8.safetensors --fp32 hio/in.safetensors -o hio/o.kdm"},
        {"hio/in.txt", "lm train --text hio/in.txt " LM_SMALL " -o hio/o-lm.safetensors"},       /* LM text */
        {"hio/in.txt", "lm train --text hio/t.txt --mix hio/in.txt " LM_SMALL " -o hio/o-lm.safetensors"},
        {"hio/in.txt", "lm eval -m hio/lm.safetensors --text hio/in.txt"},
        {"hio/in.safetensors", "lm eval -m hio/in.safetensors --text hio/t.txt"},               /* LM checkpoint */
        {"hio/in.safetensors", "lm generate -m hio/in.safetensors --tokens 4"},
        {"hio/in.safetensors", "lm kd --teacher hio/in.safetensors --text hio/t.txt --steps 2 -q -o hio/o-lm.safetensors"},
        /* training state for --resume (also an output: refused before it is read) */
        {"hio/in.ckpt", "train --model mlp-s " DATA " --resume -o hio/in"},
        {"hio/in.ckpt", "lm train --text hio/t.txt " LM_SMALL " --resume -o hio/in"},
        {"hio/in.ckpt.kd1", "kd --teacher hio/m.safetensors --student mlp-s --loss fitnet " DATA " --resume -o hio/in"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *fifo = cases[i].fifo;
        remove_any(fifo);
        int made = mkfifo(fifo, 0644);
        CHECK(made == 0);
        if (made) continue;
        int opened = 0, rc = run_limited(cases[i].args, fifo, -1, &opened);
        CHECK_MSG(rc > 0 && strstr(out, fifo) && strstr(out, "FIFO") && !opened,
                  "`distill %s` with %s a FIFO: exit %d%s%s; output:\n%s", cases[i].args, fifo, rc,
                  rc == -2 ? " (hung: killed at the deadline)" : "",
                  opened ? " (it held the FIFO open to read it)" : "", out);
        CHECK_MSG(file_kind(fifo) == S_IFIFO, "%s is no longer a FIFO", fifo);
        remove_any(fifo);
    }
}

/* Each output as a FIFO, a directory and a socket: refused before any work (the inputs do not
 * exist, so a command that reached them first would name them instead) and left as it was. */
static void test_outputs(void) {
    static const struct {
        const char *path, *args;
    } cases[] = {
        {"hio/X", "train --data hio/none -o hio/X"},
        {"hio/o1.ckpt", "train --data hio/none -o hio/o1"},
        {"hio/X", "train --data hio/none -o hio/o2.safetensors --log hio/X"},
        {"hio/X", "kd --teacher hio/none.safetensors --data hio/none -o hio/X"},
        {"hio/o3.ckpt.kd2", "kd --teacher hio/none.safetensors --loss hinton --loss fitnet -o hio/o3"},
        {"hio/o4.int8.safetensors", "kd --teacher hio/none.safetensors --student hio/none.safetensors --qat 8 "
                                    "-o hio/o4.safetensors"},
        {"hio/X", "eval hio/none.safetensors --save-logits hio/X"},
        {"hio/X", "prune hio/none.safetensors --sparsity 0.5 -o hio/X"},
        {"hio/X", "quantize hio/none.safetensors -o hio/X"},
        {"hio/X", "export hio/none.safetensors -o hio/X"},
        {"hio/X", "export hio/none.safetensors --format c -o hio/X"},
        {"hio/X", "lm train --text hio/none.txt -o hio/X"},
        {"hio/o5.ckpt", "lm train --text hio/none.txt -o hio/o5"},
        {"hio/X", "lm kd --teacher hio/none.safetensors -o hio/X"},
        {"hio/X", "lm generate -m hio/none.safetensors --out hio/X"},
    };
    static const char *const kinds[] = {"FIFO", "directory", "socket"};
    static const mode_t modes[] = {S_IFIFO, S_IFDIR, S_IFSOCK};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int k = 0; k < 3; k++) {
            const char *p = cases[i].path;
            remove_any(p);
            int made = k == 0 ? mkfifo(p, 0644) : k == 1 ? mkdir(p, 0755) : make_socket(p);
            CHECK(made == 0);
            if (made) continue;
            int rc = run_limited(cases[i].args, k == 0 ? p : NULL, -1, NULL);
            CHECK_MSG(rc == 1 && strstr(out, p) && strstr(out, kinds[k]) && strstr(out, "refusing"),
                      "`distill %s` with %s a %s: exit %d%s; output:\n%s", cases[i].args, p, kinds[k], rc,
                      rc == -2 ? " (hung: killed at the deadline)" : "", out);
            CHECK_MSG(file_kind(p) == modes[k], "%s is no longer a %s", p, kinds[k]);
            remove_any(p);
        }
    /* a symbolic link, as /dev/stdout is (to /proc/self/fd/1): not replaced by a file */
    remove_any("hio/stdout");
    int linked = symlink("/proc/self/fd/1", "hio/stdout") == 0;
    CHECK(linked);
    if (linked) {
        int rc = run_limited("export cnn-s --data hio/img,hio/lbl --calib-images 16 -o hio/stdout", NULL, -1, NULL);
        CHECK_MSG(rc == 1 && strstr(out, "hio/stdout: is a symbolic link"), "export -o a link: exit %d:\n%s", rc, out);
        CHECK_MSG(file_kind("hio/stdout") == S_IFLNK, "hio/stdout was replaced");
        remove_any("hio/stdout");
    }
    /* a missing directory is found before the work, not after it */
    int rc = run_limited("train --data hio/none -o hio/nodir/m.safetensors", NULL, -1, NULL);
    CHECK_MSG(rc == 1 && strstr(out, "hio/nodir/m.safetensors: cannot write into directory hio/nodir"),
              "output in a missing directory: exit %d:\n%s", rc, out);
}

/* Whole-file contents, to see that a refused run left a file as it was. */
static char *slurp(const char *path, long *len) {
    FILE *f = fopen(path, "rb");
    char *b = NULL;
    *len = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (*len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (b = malloc((size_t)*len + 1)) && fread(b, 1, (size_t)*len, f) != (size_t)*len) {
        free(b);
        b = NULL;
    }
    if (f) fclose(f);
    return b;
}

/* An output that names one of the command's own inputs (the model, the teacher; also spelt
 * differently) or another output is refused before any work, and the input is left as it was:
 * `eval M --save-logits M` replaced the model by its logits, `kd --teacher T -o T` the teacher. */
static void test_output_is_input(void) {
    static const struct {
        const char *args, *why;
    } cases[] = {
        {"eval hio/m.safetensors --data hio/img,hio/lbl --save-logits hio/m.safetensors", "both an input and an output"},
        {"kd --teacher hio/m.safetensors --model mlp-s " DATA " -o hio/m.safetensors", "both an input and an output"},
        {"quantize hio/m.safetensors --data hio/img,hio/lbl -o hio/../hio/m.safetensors", "both an input and an output"},
        {"prune hio/m.safetensors --sparsity 0.5 -o ./hio/m.safetensors", "both an input and an output"},
        {"train --model mlp-s " DATA " -o hio/o6.safetensors --log hio/o6.safetensors", "named for two outputs"},
    };
    long len0, len1;
    char *before = slurp("hio/m.safetensors", &len0);
    CHECK(before != NULL);
    for (size_t i = 0; before && i < sizeof cases / sizeof *cases; i++) {
        int rc = run_limited(cases[i].args, NULL, -1, NULL);
        CHECK_MSG(rc == 1 && strstr(out, cases[i].why), "`distill %s`: exit %d:\n%s", cases[i].args, rc, out);
        char *after = slurp("hio/m.safetensors", &len1);
        CHECK_MSG(after && len1 == len0 && memcmp(before, after, (size_t)len0) == 0,
                  "`distill %s` changed hio/m.safetensors", cases[i].args);
        free(after);
    }
    CHECK_MSG(file_kind("hio/o6.safetensors") == 0, "train with -o and --log the same file wrote it");
    free(before);
}

/* --log on a full disk (a 64 KB tmpfs, filled): the run fails naming the log (it exited 0 with an
 * empty log). Needs the right to mount (root); skipped otherwise. */
static void test_log_full_disk(void) {
    mkdir("hio_full", 0755);
    umount2("hio_full", MNT_DETACH); /* a mount a crashed run left */
    if (mount("tmpfs", "hio_full", "tmpfs", 0, "size=64k") != 0) {
        printf("skipped: --log on a full disk needs a tmpfs mount (%s)\n", strerror(errno));
        rmdir("hio_full");
        return;
    }
    FILE *f = fopen("hio_full/filler", "wb");
    char block[4096] = {0};
    while (f && fwrite(block, 1, sizeof block, f) == sizeof block) {}
    if (f) fclose(f); /* the last block may fail here: the disk is full either way */
    int rc = run_limited("train --model mlp-s " DATA " -o hio/full.safetensors --log hio_full/log.jsonl", NULL, -1,
                         NULL);
    CHECK_MSG(rc == 1 && strstr(out, "hio_full/log.jsonl") && strstr(out, "No space left on device") &&
              strstr(out, "epoch 1"), "--log on a full disk: exit %d:\n%s", rc, out);
    CHECK_MSG(file_kind("hio/full.safetensors") == 0, "the run went on after its log failed");
    umount2("hio_full", MNT_DETACH);
    rmdir("hio_full");
}

/* bench on a .kdm it may not read says so (it said "no such file"). As root, run as nobody. */
static void test_bench_unreadable(void) {
    int uid = geteuid() == 0 ? 65534 : -1;
    if (run_limited("bench --help", NULL, uid, NULL) != 0) {
        printf("skipped: bench on an unreadable file: cannot run distill as uid %d here\n", uid);
        return;
    }
    int copied = system("cp hio/m.kdm hio/locked.kdm && chmod 000 hio/locked.kdm") == 0;
    CHECK(copied);
    if (!copied) return;
    int rc = run_limited("bench hio/locked.kdm --data hio/img,hio/lbl -n 10", NULL, uid, NULL);
    CHECK_MSG(rc == 1 && strstr(out, "hio/locked.kdm: cannot open (Permission denied)"),
              "bench on an unreadable .kdm: exit %d:\n%s", rc, out);
    remove("hio/locked.kdm");
}

int main(void) {
    CHECK(system("rm -rf hio && mkdir hio && chmod 755 hio") == 0);
    write_fixtures();
    /* a checkpoint, its int8 model and .kdm, and a small language model */
    CHECK(run_limited("train --model mlp-s " DATA " -o hio/m.safetensors", NULL, -1, NULL) == 0);
    CHECK(run_limited("quantize hio/m.safetensors --data hio/img,hio/lbl --calib-images 16 -o hio/m.int8.safetensors",
                      NULL, -1, NULL) == 0);
    CHECK(run_limited("export hio/m.int8.safetensors -o hio/m.kdm", NULL, -1, NULL) == 0);
    CHECK(run_limited("lm train --text hio/t.txt " LM_SMALL " -o hio/lm.safetensors", NULL, -1, NULL) == 0);

    test_fifo_inputs();
    test_outputs();
    test_output_is_input();
    test_log_full_disk();
    test_bench_unreadable();

    /* export --fp32 naming a missing file exited 0 */
    int rc = run_limited("export hio/m.int8.safetensors --fp32 hio/missing.safetensors -o hio/o.kdm", NULL, -1, NULL);
    CHECK_MSG(rc == 1 && strstr(out, "hio/missing.safetensors: no such file"), "export --fp32 missing: %d\n%s", rc, out);
    /* a 600- and a 4000-character output path: the error keeps its reason at the end */
    static const int lens[] = {600, 4000};
    for (int t = 0; t < 2; t++) {
        char path[4100] = "hio/";
        size_t n = strlen(path);
        for (; n < (size_t)lens[t]; n++) path[n] = n % 100 == 99 ? '/' : 'd';
        path[n] = 0;
        char args[4300];
        snprintf(args, sizeof args, "export hio/m.int8.safetensors -o %s", path);
        rc = run_limited(args, NULL, -1, NULL);
        CHECK_MSG(rc == 1 && strstr(out, "(No such file or directory)\n") && strstr(out, "error: hio/dd"),
                  "a %d-character output path: exit %d:\n%.300s...", lens[t], rc, out);
    }
    CHECK(system("rm -rf hio") == 0);
    TEST_DONE();
}
