/* Files of every kind for the tests of hostile inputs and outputs (tests/unit/test_fileio.c,
 * tests/e2e/test_hostile_io.c): a Unix socket bound at a path, and the kind of what is at a path. */
#ifndef KD_TEST_FILE_KINDS_H
#define KD_TEST_FILE_KINDS_H
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A socket file at path (the socket itself closed: the file stays). 0 or -1. */
static int make_socket(const char *path) {
    struct sockaddr_un a = {0};
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0) return -1;
    int rc = bind(s, (struct sockaddr *)&a, sizeof a);
    close(s);
    return rc;
}

/* S_IFREG, S_IFIFO, S_IFDIR, S_IFSOCK, S_IFLNK... of path itself (not followed), 0 if nothing. */
static mode_t file_kind(const char *path) {
    struct stat sb;
    return lstat(path, &sb) == 0 ? sb.st_mode & S_IFMT : 0;
}
#endif
