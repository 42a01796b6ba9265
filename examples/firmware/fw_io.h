/* The firmware's two platform services, so main.c runs unchanged on the device and on the host:
 * on the Cortex-M (startup.c) they are ARM semihosting calls; on the host (host_io.c), stdio. */
#ifndef FW_IO_H
#define FW_IO_H
#include <stddef.h>

void fw_write(const char *s);  /* write a NUL-terminated string to the console */
void fw_exit(int code);        /* end the program: 0 success, anything else failure */
size_t fw_stack_used(void);    /* bytes of stack touched so far (0 where not measured) */

#endif
