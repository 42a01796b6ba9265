/* `distill lm` as a user meets it through run files: --config FILE.yaml applies its options to
 * train, kd, eval and generate, the command line overrides them (a --loss list replaces the file's),
 * and a bad run file (unknown key, missing file) is a one-line error naming the file and the line.
 * Then the BPE tokenizer through the CLI: train, eval, generate, kd from a BPE teacher. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "cli_run.h"

static const char *dir = "test_lm_cli_tmp";

int main(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", dir, dir);
    if (system(cmd) != 0) return 1;
    cli_dir = dir;
    {   /* 12 KB of text with some structure */
        char p[512];
        snprintf(p, sizeof p, "%s/text.txt", dir);
        FILE *f = fopen(p, "w");
        for (int i = 0; f && i < 400; i++) fprintf(f, "and the lord said unto moses %d.\n", i % 17);
        if (f) fclose(f);
    }
    write_file("train.yaml", "# a tiny model\ntext: text.txt\nlayers: 1\ndim: 32\nheads: 2\nctx: 16\nsteps: 3\n"
                             "batch: 2\nquiet: true\nckpt_every: 0\noutput: teacher.safetensors\n");
    EXPECT("lm train --config train.yaml", 0, "3 steps");
    CHECK(strstr(out, "wrote teacher.safetensors") != NULL);
    /* the command line overrides the file, in either order and with --config=FILE */
    EXPECT("lm train --config train.yaml --steps 2 -o t2.safetensors", 0, "2 steps");
    CHECK(strstr(out, "wrote t2.safetensors") != NULL);
    EXPECT("lm train --steps 2 --config=train.yaml -o t2.safetensors", 0, "2 steps");

    /* kd: the loss list of the file, each item one --loss; a --loss on the command line replaces it */
    write_file("kd.yaml", "teacher: teacher.safetensors\ntext: text.txt\nlayers: 1\nsteps: 2\nbatch: 2\n"
                          "loss:\n  - fkl: {T: 2, weight: 1}\n  - rkl: {T: 1, weight: 0.5}\n  - ce: {weight: 0.5}\n"
                          "  - {type: cosine, weight: 0.1}\ninit-from-teacher: true\noutput: student.safetensors\n");
    EXPECT("lm kd --config kd.yaml", 0, "loss fkl:T=2,weight=1 rkl:T=1,weight=0.5 ce:weight=0.5 cosine:weight=0.1");
    CHECK(strstr(out, "student initialised from its layers") && strstr(out, "wrote student.safetensors"));
    EXPECT("lm kd --config kd.yaml --loss ce --loss fkl:T=3", 0, "loss ce:weight=1 fkl:T=3,weight=1\n");

    /* eval and generate */
    static const cli_case eval_generate_cases[] = {
        {"eval.yaml", "model: student.safetensors\ntext: text.txt\nquant: q8\n", "lm eval --config eval.yaml", 0, "student.safetensors q8:"},
        {NULL, NULL, "lm eval --config eval.yaml --quant q4", 0, "student.safetensors q4:"},
        {"gen.yaml", "model: student.safetensors\nprompt: \"and the\"\ntokens: 12\nseed: 3\nquiet: true\n", "lm generate --config gen.yaml", 0, "and the"},
    };
    EXPECT_CASES(eval_generate_cases);

    /* bad run files: the file and the line are named; an option of another subcommand */
    static const cli_case bad_run_files[] = {
        {"bad.yaml", "text: text.txt\nlayers: 1\nbogus: 3\n", "lm train --config bad.yaml", 2,
         "bad.yaml:3: 'bogus' is not an option of distill lm train"},
        {"flag.yaml", "text: text.txt\nquiet: 3\n", "lm train --config flag.yaml", 2,
         "flag.yaml:2: quiet is a flag: true or false"},
        {"list.yaml", "- a\n- b\n", "lm eval --config list.yaml", 2, "list.yaml: the file must be a mapping of key: value"},
        {"yaml.yaml", "text: [unclosed\n", "lm generate --config yaml.yaml", 2, "yaml.yaml: YAML error at line"},
        {NULL, NULL, "lm train --config missing.yaml", 2, "missing.yaml: no such file"},
        {NULL, NULL, "lm train --config", 2, "--config needs a file"},
        {"tt.yaml", "teacher: teacher.safetensors\n", "lm train --config tt.yaml", 2,
         "--teacher is an option of distill lm kd"},
        {"gbad.yaml", "model: student.safetensors\nsteps: 3\n", "lm generate --config gbad.yaml", 2,
         "gbad.yaml:2: 'steps' is not an option of distill lm generate"},
    };
    EXPECT_CASES(bad_run_files);

    /* --mix: more training text (a list in the run file), the held-out tail unchanged */
    write_file("synth.txt", "and the lord said unto moses and the lord said unto moses.\n");
    write_file("mix.yaml", "text: text.txt\nmix: [synth.txt, synth.txt]\nlayers: 1\ndim: 32\nheads: 2\nctx: 16\n"
                           "steps: 2\nbatch: 2\noutput: mix.safetensors\n");
    EXPECT("lm train --config mix.yaml", 0, "text text.txt + --mix: 13079 bytes, 648 held out");
    EXPECT("lm train --config mix.yaml --mix synth.txt", 0, "text text.txt + --mix: 13020 bytes, 648 held out");
    EXPECT("lm train --config mix.yaml --mix nothere.txt", 1, "nothere.txt");

    /* a BPE tokenizer from the run file: trained, stored, used by eval, generate and kd */
    write_file("bpe.yaml", "text: text.txt\nlayers: 1\ndim: 32\nheads: 2\nctx: 16\nsteps: 3\nbatch: 2\n"
                           "tokenizer: bpe\nvocab: 300\noutput: bpe.safetensors\n");
    EXPECT("lm train --config bpe.yaml", 0, "BPE tokenizer: 300 tokens learnt on the");
    CHECK(strstr(out, "wrote bpe.safetensors") != NULL);
    static const cli_case bpe_cases[] = {
        {NULL, NULL, "lm eval -m bpe.safetensors --text text.txt", 0, "bits/byte"},
        {NULL, NULL, "lm generate -m bpe.safetensors --prompt 'and the lord' --tokens 5 --seed 2", 0, "5 tokens ("},
        {NULL, NULL, "lm kd --teacher bpe.safetensors --text text.txt --layers 1 --steps 2 -b 2 -q -o bpe-s.safetensors", 0, "wrote bpe-s.safetensors"},
        {NULL, NULL, "lm eval -m bpe-s.safetensors --text text.txt --quant q8", 0, "bits/byte"},
        {NULL, NULL, "lm kd --teacher bpe.safetensors --text text.txt --layers 1 --dim 64 --init-from-teacher -q", 1, "--init-from-teacher needs the same vocab, dim and heads"},
        {NULL, NULL, "lm kd --config kd.yaml --tokenizer bpe", 2, "the student uses the teacher's tokenizer"},
        {NULL, NULL, "lm train --config train.yaml --vocab 300", 2, "add --tokenizer bpe"},
        {NULL, NULL, "lm train --config train.yaml --tokenizer words", 2, "--tokenizer expects bytes or bpe"},
    };
    EXPECT_CASES(bpe_cases);
    TEST_DONE();
}
