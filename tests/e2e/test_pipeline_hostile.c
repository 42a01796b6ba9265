/* Hostile and careless YAML through the CLI (issue 12 items 4, 6, 10): a run file's bad value names
 * the file and line, a FIFO or a 200,000-level file is refused at once; a pipeline file is checked
 * whole before its first stage (sections, keys, values, the files it names); a stage whose output
 * was damaged or whose recipe changed (the file edited, an input file changed) is redone rather
 * than trusted, and any failure fails the run. Tiny models, 2000 images, one epoch. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli_run.h"

#define STUDENT "student: {student: mlp-s, epochs: 1, limit: 2000, val: 500, batch: 100, quiet: true}\n"
#define TEACHER(model) "teacher: {model: " model ", epochs: 1, limit: 2000, val: 500, batch: 100, quiet: true}\n"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Run files: errors name the file and line (the commands' own range checks); a FIFO and a
 * hostile nesting are refused at once. */
static void test_run_files(void) {
    static const cli_case cases[] = {
        {"run.yaml", "model: mlp-s\nepochs: 1\nlr: -1\n", "train --config run.yaml", 2,
         "run.yaml:3: --lr expects a number in"},
        {"run.yaml", "model: mlp-s\nthreads: 2\nepochs: 0\n", "train --config run.yaml", 2,
         "run.yaml:3: --epochs expects an integer"},
        {"run.yaml", "epochs: 1\nmodel: mlp-q\n", "train --config run.yaml", 1,
         "run.yaml:2: 'mlp-q' is neither a built-in model"},
        {"run.yaml", "model: mlp-s\ndata: nowhere/x\n", "train --config run.yaml", 1,
         "run.yaml:2: nowhere/x: no such data set"},
        {"run.yaml", "model: mlp-s\nepochz: 1\n", "train --config run.yaml", 2,
         "run.yaml:2: 'epochz' is not an option of distill train (did you mean 'epochs'?)"},
        {"run.yaml", "model: mlp-s\nepochs: 1\nlog: \"\xff\"\n", "train --config run.yaml", 2,
         "run.yaml: YAML error at line 3, column 7"},
    };
    EXPECT_CASES(cases);
    CHECK(mkfifo("ph/fifo.yaml", 0600) == 0);
    EXPECT("train --config fifo.yaml", 2, "fifo.yaml: not a regular file (FIFO)");
    size_t depth = 200000;
    char *deep = malloc(2 * depth + 2);
    CHECK(deep != NULL);
    if (!deep) return;
    for (size_t i = 0; i < depth; i++) deep[i] = '[', deep[depth + i] = ']';
    deep[2 * depth] = '\n';
    deep[2 * depth + 1] = 0;
    write_file("deep.yaml", deep);
    free(deep);
    double t0 = now();
    EXPECT("pipeline deep.yaml", 2, "deep.yaml:1: nested deeper than 64 levels");
    CHECK_MSG(now() - t0 < 2.0, "a 200,000-level pipeline file took %.2f s", now() - t0);
}

/* The whole pipeline file is checked before anything runs: nothing is trained, nothing written. */
static void test_pipeline_checked_first(void) {
    static const cli_case cases[] = {
        {"p.yaml", "out: o\nthreads: 1\nteacher-file: t.safetensors\nteachr: {model: mlp-s}\n" STUDENT, "pipeline p.yaml", 2,
         "p.yaml:4: unknown section 'teachr' (did you mean 'teacher'?)"},
        {"p.yaml", "out: o\nthreads: 1\nteacher-file: t.safetensors\n", "pipeline p.yaml", 2,
         "p.yaml: no 'student:' section (it is required)"},
        {"p.yaml", "out: o\nteacher-file: missing.safetensors\n" STUDENT, "pipeline p.yaml", 1,
         "p.yaml:2: teacher-file: missing.safetensors: no such file"},
        {"p.yaml", "out: o\nteacher-file: .\n" STUDENT, "pipeline p.yaml", 1, "not a regular file (directory)"},
        {"p.yaml", "out: o\nteacher-file: t.safetensors\n" TEACHER("mlp-s") STUDENT, "pipeline p.yaml", 2,
         "give teacher-file: or a teacher: section, not both"},
        {"p.yaml", "out: o\nthreads: 1\nteacher-file: t.safetensors\n" STUDENT "quantize: {calib-imagez: 200}\n",
         "pipeline p.yaml", 2, "p.yaml:5: 'calib-imagez' is not an option of distill quantize (did you mean "
         "'calib-images'?)"},
        {"p.yaml", "out: o\nthreads: 1\nteacher-file: t.safetensors\n" STUDENT "quantize: {calib-images: -3}\n",
         "pipeline p.yaml", 2, "p.yaml:5: --calib-images expects an integer in [1, 10000000], got '-3'"},
        {"p.yaml", "out: o\nthreads: 0\nteacher-file: t.safetensors\n" STUDENT, "pipeline p.yaml", 2,
         "p.yaml:2: --threads expects an integer in [1, 256], got '0'"},
        {"p.yaml", "out: o\nthreads: 1\nteacher-file: t.safetensors\nstudent: {student: mlp-s, epochs: -1}\n",
         "pipeline p.yaml", 2, "p.yaml:4: --epochs expects an integer"},
        {"p.yaml", "out: o\nthreads: 1\nteacher-file: t.safetensors\nstudent: [epochs, 1]\n", "pipeline p.yaml", 2,
         "p.yaml:4: student must be a mapping of option: value"},
    };
    EXPECT_CASES(cases);
    CHECK_MSG(access("ph/o", F_OK) != 0, "a pipeline with a bad file ran a stage");
    /* a stage that fails at run time fails the run, naming the stage */
    write_file("p.yaml", "out: o\nthreads: 1\ndata: no-such-data\nteacher-file: t.safetensors\n" STUDENT);
    int rc = run("pipeline p.yaml");
    CHECK_MSG(rc != 0 && strstr(out, "the student stage failed"), "exit %d:\n%s", rc, out);
    CHECK(system("rm -rf ph/o") == 0);
}

/* Stale stages: a damaged output, an edited file and a changed input file are not trusted. */
static void test_pipeline_stale(void) {
    write_file("p.yaml", "out: o\nthreads: 1\n" TEACHER("mlp-s") STUDENT);
    EXPECT("pipeline p.yaml", 0, "| teacher | ");
    CHECK_MSG(strstr(out, "| 101770 |") && strstr(out, "| student (KD) |"), "report:\n%s", out);
    EXPECT("pipeline p.yaml", 0, "student: o/student.safetensors exists, skipped");
    /* the student's output truncated, then replaced by garbage: redone */
    CHECK(truncate("ph/o/student.safetensors", 100) == 0);
    EXPECT("pipeline p.yaml", 0, "student: o/student.safetensors: it does not match its record (changed or damaged), "
                                 "redoing");
    CHECK_MSG(strstr(out, "teacher: o/teacher.safetensors exists, skipped"), "%s", out);
    write_file("o/student.safetensors", "garbage");
    EXPECT("pipeline p.yaml", 0, "| student (KD) |");
    CHECK_MSG(strstr(out, "student: o/student.safetensors: it does not match its record"), "%s", out);
    /* the file edited (another teacher): the teacher and everything after it are redone */
    write_file("p.yaml", "out: o\nthreads: 1\n" TEACHER("mlp-800") STUDENT);
    EXPECT("pipeline p.yaml", 0, "teacher: o/teacher.safetensors: recipe changed, redoing");
    CHECK_MSG(strstr(out, "student: o/student.safetensors: recipe changed, redoing") && strstr(out, "| 1276810 |"),
              "the edit did not redo the stages:\n%s", out);
    /* an input file changed (the teacher-file damaged): the student is redone, fails, the run fails */
    CHECK(system("cp ph/o/teacher.safetensors ph/t2.safetensors") == 0);
    write_file("p.yaml", "out: o\nthreads: 1\nteacher-file: t2.safetensors\n" STUDENT);
    EXPECT("pipeline p.yaml", 0, "student: o/student.safetensors: recipe changed, redoing");
    write_file("t2.safetensors", "garbage");
    int rc = run("pipeline p.yaml");
    CHECK_MSG(rc == 1 && strstr(out, "recipe changed, redoing") && strstr(out, "the student stage failed"),
              "exit %d:\n%s", rc, out);
}

int main(void) {
    CHECK(system("rm -rf ph && mkdir ph") == 0);
    cli_dir = "ph";
    EXPECT("train --model mlp-s --epochs 1 --limit 2000 --val 500 --batch 100 -q -j 1 -o t.safetensors", 0,
           "wrote t.safetensors");
    test_run_files();
    test_pipeline_checked_first();
    test_pipeline_stale();
    TEST_DONE();
}
