/* File I/O for every file Distill reads or writes (checkpoints, .npy, YAML, IDX data, logs, the
 * CLI's checks of its paths); in src/core because src/data reads through it as src/format does.
 * An atomic write (temp file in
 * the same directory, fsync, rename, fsync of the directory) so a crash never leaves a half-written
 * file under the real name, an append with every write checked (logs), and a read of a whole file
 * with its size checked. Only regular files are read or written. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "distill/fileio.h"

/* What a stat mode is, for messages. */
static const char *kd_file_kind(mode_t m) {
    if (S_ISDIR(m)) return "directory";
    if (S_ISCHR(m)) return "character device";
    if (S_ISBLK(m)) return "block device";
    if (S_ISFIFO(m)) return "FIFO";
    if (S_ISSOCK(m)) return "socket";
    if (S_ISLNK(m)) return "symbolic link";
    return S_ISREG(m) ? "regular file" : "special file";
}

int kd_is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int kd_open_input(const char *path, kd_error *err) {
    if (!path || !*path) {
        kd_error_set(err, KD_STATUS_BAD_ARG, "no input file named");
        return -1;
    }
    /* O_NONBLOCK so that opening a FIFO with no writer returns at once instead of blocking; the
     * flag is cleared again once the file is known to be regular. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) kd_error_set(err, KD_STATUS_NOT_FOUND, "%s: no such file", path);
        else kd_error_set(err, KD_STATUS_IO, "%s: cannot open (%s)", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        kd_error_set(err, KD_STATUS_IO, "%s: cannot stat (%s)", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        kd_error_set(err, KD_STATUS_IO, "%s: not a regular file (%s); give a file", path, kd_file_kind(sb.st_mode));
        close(fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        kd_error_set(err, KD_STATUS_IO, "%s: cannot open (%s)", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

long long kd_input_size(const char *path, kd_error *err) {
    int fd = kd_open_input(path, err);
    if (fd < 0) return -1;
    struct stat sb;
    long long size = fstat(fd, &sb) == 0 ? (long long)sb.st_size : -1;
    if (size < 0) kd_error_set(err, KD_STATUS_IO, "%s: cannot stat (%s)", path, strerror(errno));
    close(fd);
    return size;
}

FILE *kd_fopen_input(const char *path, kd_error *err) {
    int fd = kd_open_input(path, err);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        kd_error_set(err, KD_STATUS_IO, "%s: cannot open (%s)", path, strerror(errno));
        close(fd);
    }
    return f;
}

kd_status kd_check_output_path(const char *path, kd_error *err) {
    if (!path || !*path) return kd_error_set(err, KD_STATUS_BAD_ARG, "no output file named");
    struct stat sb;
    /* lstat: the rename would replace a symbolic link itself, not what it points at, so a link is
     * refused too: /dev/stdout is a link to /proc/self/fd/1, and writing over it replaced the
     * system's link with a file. */
    if (lstat(path, &sb) != 0) {
        if (errno != ENOENT)
            return kd_error_set(err, KD_STATUS_IO, "%s: cannot use as output (%s)", path, strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        return kd_error_set(err, KD_STATUS_IO, "%s: is a %s, not a regular file; refusing to replace it (name %s)",
                            path, kd_file_kind(sb.st_mode),
                            S_ISLNK(sb.st_mode) ? "the file it points to" : "a file to write");
    }
    /* The file is written as a temp file beside it and renamed: its directory must exist and be
     * writable, which is cheaper to learn now than after a long run. */
    char *dcopy = strdup(path);
    if (!dcopy) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path);
    const char *dir = dirname(dcopy);
    kd_status st = KD_STATUS_OK;
    if (stat(dir, &sb) != 0)
        st = kd_error_set(err, KD_STATUS_IO, "%s: cannot write into directory %s (%s)", path, dir, strerror(errno));
    else if (!S_ISDIR(sb.st_mode))
        st = kd_error_set(err, KD_STATUS_IO, "%s: cannot write: %s is not a directory", path, dir);
    else if (access(dir, W_OK | X_OK) != 0)
        st = kd_error_set(err, KD_STATUS_IO, "%s: cannot write into directory %s (%s)", path, dir, strerror(errno));
    free(dcopy);
    return st;
}

/* Write all of p to fd (retrying short writes and EINTR); 0, or -1 with errno set. */
static int write_all(int fd, const void *p, size_t len) {
    const char *c = p;
    while (len > 0) {
        ssize_t w = write(fd, c, len);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        if (w == 0) {
            errno = EIO; /* no progress */
            return -1;
        }
        c += w;
        len -= (size_t)w;
    }
    return 0;
}

kd_status kd_append_file(const char *path, const void *data, size_t len, kd_error *err) {
    if (!data && len) return kd_error_set(err, KD_STATUS_BAD_ARG, "kd_append_file: no data");
    kd_status st = kd_check_output_path(path, err);
    if (st) return st;
    /* O_NONBLOCK: a FIFO put at path since the check must not block the open; fstat then refuses it.
     * It does not change writes to a regular file. */
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return kd_error_set(err, KD_STATUS_IO, "%s: cannot open for writing (%s)", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return kd_error_set(err, KD_STATUS_IO, "%s: not a regular file; refusing to write to it", path);
    }
    if (write_all(fd, data, len) != 0) {
        st = kd_error_set(err, KD_STATUS_IO, "%s: write failed (%s)", path, strerror(errno));
        /* what did fit is cut off again, so a log of lines holds no half line */
        if (ftruncate(fd, sb.st_size) != 0) { /* best effort: the error above is the one to report */ }
        close(fd);
        return st;
    }
    if (close(fd) != 0) return kd_error_set(err, KD_STATUS_IO, "%s: close failed (%s)", path, strerror(errno));
    return KD_STATUS_OK;
}

kd_status kd_write_file_atomic(const char *path, const void *data, size_t len, kd_error *err) {
    if (!path || !*path || (!data && len))
        return kd_error_set(err, KD_STATUS_BAD_ARG, "kd_write_file_atomic: no path or no data");
    kd_status chk = kd_check_output_path(path, err);
    if (chk) return chk;
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path);
    /* Same directory as path, so the rename cannot cross file systems; the pid keeps two
     * processes writing the same path from sharing a temp file. */
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        kd_status st = kd_error_set(err, KD_STATUS_IO, "%s: cannot create temp file %s (%s)", path, tmp,
                                    strerror(errno));
        free(tmp);
        return st;
    }
    if (write_all(fd, data, len) != 0) {
        kd_status st = kd_error_set(err, KD_STATUS_IO, "%s: write failed (%s)", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return st;
    }
    if (fsync(fd) != 0) {
        kd_status st = kd_error_set(err, KD_STATUS_IO, "%s: fsync failed (%s)", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return st;
    }
    if (close(fd) != 0) {
        kd_status st = kd_error_set(err, KD_STATUS_IO, "%s: close failed (%s)", tmp, strerror(errno));
        unlink(tmp);
        free(tmp);
        return st;
    }
    if (rename(tmp, path) != 0) {
        kd_status st = kd_error_set(err, KD_STATUS_IO, "%s: cannot rename %s into place (%s)", path, tmp,
                                    strerror(errno));
        unlink(tmp);
        free(tmp);
        return st;
    }
    free(tmp);
    /* Make the rename itself durable. Best effort: some file systems refuse fsync on a directory,
     * and the data is already safe under one name or the other. */
    char *dcopy = strdup(path);
    if (dcopy) {
        int dfd = open(dirname(dcopy), O_RDONLY);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dcopy);
    }
    return KD_STATUS_OK;
}

kd_status kd_read_file(const char *path, char **data, size_t *len, kd_error *err) {
    return kd_read_file_max(path, SIZE_MAX - 1, NULL, data, len, err);
}

kd_status kd_read_file_max(const char *path, size_t max, const char *what, char **data, size_t *len, kd_error *err) {
    *data = NULL;
    *len = 0;
    kd_error e0 = {0};
    FILE *f = kd_fopen_input(path, &e0);
    if (!f) {
        if (err) *err = e0;
        return e0.status;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        kd_status st = kd_error_set(err, KD_STATUS_IO, "%s: cannot stat (%s)", path, strerror(errno));
        fclose(f);
        return st;
    }
    if (sb.st_size < 0 || (uintmax_t)sb.st_size >= (uintmax_t)SIZE_MAX) {
        fclose(f);
        return kd_error_set(err, KD_STATUS_IO, "%s: too large to read (%jd bytes)", path, (intmax_t)sb.st_size);
    }
    size_t n = (size_t)sb.st_size;
    if (n > max) { /* refused before a byte is read (a file that grows while read fails below) */
        fclose(f);
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: %zu bytes, more than %s may have (%zu)", path, n,
                            what ? what : "a file", max);
    }
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: cannot allocate %zu bytes", path, n);
    }
    /* A read error may show only at the probe for the end (a file that stats as empty but fails
     * to read, as /proc/self/mem does): ferror is asked after it. */
    errno = 0;
    size_t got = fread(buf, 1, n, f);
    int changed = got == n && fgetc(f) != EOF;
    int failed = ferror(f), eno = errno;
    changed = !failed && (changed || got != n);
    fclose(f);
    if (failed || changed) {
        free(buf);
        if (failed)
            return kd_error_set(err, KD_STATUS_IO, "%s: cannot read (%s) after %zu of %zu bytes", path,
                                strerror(eno ? eno : EIO), got, n);
        return kd_error_set(err, KD_STATUS_IO, "%s: file changed size while being read (%zu bytes expected)", path, n);
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return KD_STATUS_OK;
}
