/* The file layer under every format (src/format/fileio.c) and error messages (src/core/status.c):
 * outputs refuse what is not a regular file (FIFO, directory, socket, symbolic link) and a missing
 * directory; the append of logs reports a failed write; a read error is an error, not an empty
 * file; a message too long for kd_error keeps its end (the reason). Issue 12 items 2, 9, 10. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "distill/fileio.h"
#include "file_kinds.h"
#include "test.h"

/* A message longer than kd_error's 512 bytes: its start (the path) and its end (the reason) kept. */
static void test_long_messages(void) {
    static const size_t lens[] = {600, 4000};
    for (size_t t = 0; t < 2; t++) {
        char *path = malloc(lens[t] + 1);
        for (size_t i = 0; i < lens[t]; i++) path[i] = i % 50 == 49 ? '/' : (char)('a' + i % 26);
        path[lens[t]] = 0;
        kd_error e;
        CHECK(kd_error_set(&e, KD_STATUS_IO, "%s: cannot open (%s)", path, "Permission denied") == KD_STATUS_IO);
        size_t n = strlen(e.msg);
        const char *end = ": cannot open (Permission denied)";
        CHECK_MSG(n < sizeof e.msg && n > sizeof e.msg - 8, "%zu-char path: message of %zu bytes", lens[t], n);
        CHECK_MSG(n > strlen(end) && !strcmp(e.msg + n - strlen(end), end),
                  "%zu-char path: the reason was cut: ...%s", lens[t], e.msg + (n > 60 ? n - 60 : 0));
        CHECK(!strncmp(e.msg, path, 100) && strstr(e.msg, "...") != NULL);
        CHECK(e.status == KD_STATUS_IO);
        free(path);
    }
    /* a message that fits is unchanged */
    kd_error e;
    kd_error_set(&e, KD_STATUS_BAD_FILE, "%s: truncated at byte %d", "x.safetensors", 12);
    CHECK(!strcmp(e.msg, "x.safetensors: truncated at byte 12"));
    /* cuts fall between UTF-8 characters: every continuation byte follows a lead byte */
    char u[1401];
    for (int i = 0; i < 700; i++) memcpy(u + 2 * i, "\xc3\xa9", 2); /* é */
    u[1400] = 0;
    kd_error_set(&e, KD_STATUS_IO, "x%s: no", u);
    int bad = 0;
    for (size_t i = 0; e.msg[i]; i++) {
        unsigned char c = (unsigned char)e.msg[i], prev = i ? (unsigned char)e.msg[i - 1] : 0;
        if ((c & 0xc0) == 0x80 && prev != 0xc3) bad++;
        if (c == 0xc3 && ((unsigned char)e.msg[i + 1] & 0xc0) != 0x80) bad++;
    }
    CHECK_MSG(bad == 0, "%d split UTF-8 characters", bad);
    CHECK(strlen(e.msg) > 4 && !strcmp(e.msg + strlen(e.msg) - 4, ": no"));
}

/* Outputs: only nothing or a regular file, in a writable directory; what is refused is left as it
 * was, by the check, the atomic write and the append alike. */
static void test_outputs(void) {
    kd_error err;
    const char *names[] = {"fileio_fifo", "fileio_dir", "fileio_sock", "fileio_link"};
    for (int i = 0; i < 4; i++) {
        unlink(names[i]);
        rmdir(names[i]);
    }
    CHECK(mkfifo(names[0], 0644) == 0 && mkdir(names[1], 0755) == 0 && make_socket(names[2]) == 0 &&
          symlink("/proc/self/fd/1", names[3]) == 0);
    const char *what[] = {"FIFO", "directory", "socket", "symbolic link"};
    for (int i = 0; i < 4; i++) {
        mode_t k = file_kind(names[i]);
        CHECK_MSG(kd_check_output_path(names[i], &err) == KD_STATUS_IO && strstr(err.msg, names[i]) &&
                  strstr(err.msg, what[i]), "%s: %s", names[i], err.msg);
        CHECK(kd_write_file_atomic(names[i], "x", 1, &err) == KD_STATUS_IO && strstr(err.msg, what[i]));
        CHECK(kd_append_file(names[i], "x\n", 2, &err) == KD_STATUS_IO && strstr(err.msg, what[i]));
        CHECK_MSG(file_kind(names[i]) == k, "%s changed kind", names[i]);
    }
    for (int i = 0; i < 4; i++) {
        unlink(names[i]);
        rmdir(names[i]);
    }
    CHECK(kd_check_output_path("fileio_nodir/x.safetensors", &err) == KD_STATUS_IO &&
          strstr(err.msg, "fileio_nodir") && strstr(err.msg, "No such file"));
    CHECK(kd_check_output_path("fileio_new.safetensors", &err) == KD_STATUS_OK);

    /* the append: creates, appends, and len 0 only creates */
    unlink("fileio_log");
    CHECK(kd_append_file("fileio_log", "", 0, &err) == KD_STATUS_OK && file_kind("fileio_log") == S_IFREG);
    CHECK(kd_append_file("fileio_log", "one\n", 4, &err) == KD_STATUS_OK);
    CHECK(kd_append_file("fileio_log", "two\n", 4, &err) == KD_STATUS_OK);
    char *d = NULL;
    size_t n = 0;
    CHECK(kd_read_file("fileio_log", &d, &n, &err) == KD_STATUS_OK && n == 8 && !strcmp(d, "one\ntwo\n"));
    free(d);
    /* a write that fails (here a file-size limit, as a full disk would) is an error naming the file */
    struct rlimit old, lim;
    if (getrlimit(RLIMIT_FSIZE, &old) == 0) {
        lim = old;
        lim.rlim_cur = 16;
        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
            kd_status st = kd_append_file("fileio_log", "a line longer than the limit\n", 29, &err);
            setrlimit(RLIMIT_FSIZE, &old);
            CHECK_MSG(st == KD_STATUS_IO && strstr(err.msg, "fileio_log") && strstr(err.msg, "write failed"),
                      "append past the file-size limit: status %d, %s", st, st ? err.msg : "");
            struct stat sb;
            CHECK_MSG(stat("fileio_log", &sb) == 0 && sb.st_size == 8, "a half line was left: %lld bytes",
                      (long long)sb.st_size);
        }
        signal(SIGXFSZ, SIG_DFL);
    }
    unlink("fileio_log");
}

/* A file that stats as empty and fails to read (/proc/self/mem: EIO at offset 0) was read as an
 * empty file; the read error is now reported with its reason. */
static void test_read_error(void) {
    if (access("/proc/self/mem", F_OK) != 0) {
        printf("skipped: no /proc/self/mem for a read error\n");
        return;
    }
    kd_error err;
    char *d = NULL;
    size_t n = 0;
    kd_status st = kd_read_file("/proc/self/mem", &d, &n, &err);
    CHECK_MSG(st == KD_STATUS_IO && strstr(err.msg, "/proc/self/mem") && strstr(err.msg, "Input/output error"),
              "read of /proc/self/mem: status %d %s", st, st ? err.msg : "(read as empty)");
    CHECK(d == NULL);
    free(d);
}

int main(void) {
    test_long_messages();
    test_outputs();
    test_read_error();
    TEST_DONE();
}
