/* File I/O shared by every container format and the data readers (src/core/fileio.c): an atomic write, so a
 * crash never leaves a half-written file under the real name, an append (logs), and a read of a
 * whole file. Inputs and outputs are regular files only: FIFOs, devices, sockets and directories
 * are refused (a FIFO would block forever, a device never ends or is not ours to replace). */
#ifndef DISTILL_FILEIO_H
#define DISTILL_FILEIO_H
#include <stddef.h>
#include <stdio.h>

#include "distill/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Open path for reading. Anything but a regular file is refused before a byte is read: a FIFO
 * would block forever, a device never ends. Returns a file descriptor, or -1 with err set
 * (KD_STATUS_NOT_FOUND when the file does not exist, KD_STATUS_IO otherwise). */
int kd_open_input(const char *path, kd_error *err);
/* 1 when path names a directory (following symlinks), else 0: how a data spec tells a folder from a file. */
int kd_is_dir(const char *path);
/* The size in bytes of an input file (opened as kd_open_input opens it), or -1 with err (may be
 * NULL) set when it cannot be read. */
long long kd_input_size(const char *path, kd_error *err);
/* kd_open_input as a stdio stream ("rb"); NULL with err set. */
FILE *kd_fopen_input(const char *path, kd_error *err);
/* An output may only replace nothing or a regular file: a device (/dev/full), a FIFO, a socket, a
 * directory or a symbolic link (/dev/stdout is one; the rename would replace the link) at path is
 * refused with a clear error, and so is a path whose directory does not exist or is not writable. Commands call it on every output
 * path before they start work, so a long run is not wasted. */
kd_status kd_check_output_path(const char *path, kd_error *err);

/* Write `len` bytes atomically to path (temp + fsync + rename); refuses what
 * kd_check_output_path refuses. */
kd_status kd_write_file_atomic(const char *path, const void *data, size_t len, kd_error *err);
/* Append `len` bytes to path (created 0644 if absent), as a log is written: refuses what
 * kd_check_output_path refuses, and reports a failed write or close (a full disk) as KD_STATUS_IO. */
kd_status kd_append_file(const char *path, const void *data, size_t len, kd_error *err);
/* Read a whole file (malloc'd, NUL-terminated for convenience). */
kd_status kd_read_file(const char *path, char **data, size_t *len, kd_error *err);
/* kd_read_file of a file that may hold at most max bytes: a larger one is refused (BAD_FILE, "PATH:
 * N bytes, more than WHAT may have (MAX)") before anything is allocated. */
kd_status kd_read_file_max(const char *path, size_t max, const char *what, char **data, size_t *len, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
