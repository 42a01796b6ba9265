/* Running the `distill` command from an end-to-end test (tests/e2e/test_cli.c, test_lm_cli.c):
 * run() captures its output (stderr merged) in `out` and returns its exit code; EXPECT checks
 * both; write_file writes a fixture; EXPECT_CASES runs a table of them. Set cli_dir to run and
 * write inside a directory. */
#ifndef KD_CLI_RUN_H
#define KD_CLI_RUN_H
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "test.h"

static char out[65536];
static const char *cli_dir = NULL;

/* A shell command line, in cli_dir if set, its output captured in `out`. */
static inline int run_sh(const char *line) {
    char cmd[4096];
    if (cli_dir) snprintf(cmd, sizeof cmd, "cd %s && %s 2>&1", cli_dir, line);
    else snprintf(cmd, sizeof cmd, "%s 2>&1", line);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static inline int run(const char *args) {
    char line[3072];
    snprintf(line, sizeof line, "%s %s", KD_CLI_PATH, args);
    return run_sh(line);
}

#define EXPECT(args, code, needle)                                                                  \
    do {                                                                                            \
        int rc_ = run(args);                                                                        \
        CHECK_MSG(rc_ == (code), "`distill %s` exited %d, expected %d; output:\n%s", args, rc_, code, out); \
        CHECK_MSG(strstr(out, needle) != NULL, "`distill %s`: '%s' not in output:\n%s", args, needle, out); \
    } while (0)

static inline void write_file(const char *name, const char *text) {
    char p[1024];
    if (cli_dir) snprintf(p, sizeof p, "%s/%s", cli_dir, name);
    else snprintf(p, sizeof p, "%s", name);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* A float32 NumPy .npy of rows x cols zeros (teacher logits), in cli_dir if set. */
static inline void write_npy_zeros(const char *name, int rows, int cols) {
    char p[1024], hdr[128], pad[64];
    if (cli_dir) snprintf(p, sizeof p, "%s/%s", cli_dir, name);
    else snprintf(p, sizeof p, "%s", name);
    int n = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", rows, cols);
    int sp = (64 - (10 + n + 1) % 64) % 64;
    memset(pad, ' ', sizeof pad);
    FILE *f = fopen(p, "wb");
    if (!f) return;
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc((n + sp + 1) & 0xff, f);
    fputc((n + sp + 1) >> 8, f);
    fwrite(hdr, 1, (size_t)n, f);
    fwrite(pad, 1, (size_t)sp, f);
    fputc('\n', f);
    float z = 0;
    for (int i = 0; i < rows * cols; i++) fwrite(&z, sizeof z, 1, f);
    fclose(f);
}

/* One EXPECT of a table: `file` (if not NULL) is written with `text` first. */
typedef struct cli_case {
    const char *file, *text, *args;
    int code;
    const char *needle;
} cli_case;

static inline void expect_cases(const cli_case *c, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (c[i].file) write_file(c[i].file, c[i].text);
        EXPECT(c[i].args, c[i].code, c[i].needle);
    }
}
#define EXPECT_CASES(table) expect_cases(table, sizeof table / sizeof table[0])

#endif
