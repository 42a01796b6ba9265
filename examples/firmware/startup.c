/* Bare-metal start-up for the Arm MPS2 AN386 board (Cortex-M4, as qemu-system-arm -M mps2-an386
 * emulates it) and the firmware's platform services through ARM semihosting (fw_io.h).
 *
 * The vector table sits at 0x00000000 (the ZBT SSRAM1 that plays the flash, link.ld): the core
 * reads the initial stack pointer and the reset handler from it. Reset_Handler copies .data from
 * flash to SRAM, clears .bss, fills the unused stack with a pattern (to measure its high-water mark
 * afterwards), enables the FPU (the code is built for -mfloat-abi=hard) and calls main; main's
 * return value ends the program through semihosting SYS_EXIT, which makes qemu exit too. */
#include <stddef.h>
#include <stdint.h>

#include "fw_io.h"

int main(void);

extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[];
extern uint32_t __stack_bottom[], __stack_top[];

#define STACK_PATTERN 0xA5A5A5A5u

/* ---- semihosting (Arm "Semihosting for AArch32 and AArch64", v2): bkpt 0xab on M-profile ---- */

#define SYS_WRITE0 0x04
#define SYS_EXIT 0x18
#define ADP_Stopped_ApplicationExit 0x20026     /* qemu exits with status 0 */
#define ADP_Stopped_RunTimeErrorUnknown 0x20023 /* qemu exits with status 1 */

static uint32_t semihost(uint32_t op, uint32_t arg) {
    register uint32_t r0 __asm__("r0") = op;
    register uint32_t r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void fw_write(const char *s) { semihost(SYS_WRITE0, (uint32_t)(uintptr_t)s); }

void fw_exit(int code) {
    /* AArch32 SYS_EXIT takes the reason itself in r1 (no status code: 0 or 1 is enough here) */
    semihost(SYS_EXIT, code == 0 ? ADP_Stopped_ApplicationExit : ADP_Stopped_RunTimeErrorUnknown);
    for (;;) {
    }
}

size_t fw_stack_used(void) {
    const uint32_t *p = __stack_bottom;
    while (p < __stack_top && *p == STACK_PATTERN) p++;
    return (size_t)((const char *)__stack_top - (const char *)p);
}

/* ---- reset and faults ---- */

void Reset_Handler(void) {
    for (uint32_t *s = __data_load, *d = __data_start; d < __data_end;) *d++ = *s++;
    for (uint32_t *d = __bss_start; d < __bss_end;) *d++ = 0;
    /* paint the stack below this frame (leaving 256 bytes of margin for it) */
    uint32_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (volatile uint32_t *d = __stack_bottom; (uint32_t)(uintptr_t)d < sp - 256;) *d++ = STACK_PATTERN;
    /* CPACR: full access to CP10 and CP11 (the FPU) before any floating-point instruction */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    fw_exit(main());
}

static void Fault_Handler(void) {
    fw_write("error: fault (hard fault, memory management, bus or usage fault, or an unexpected interrupt)\n");
    fw_exit(1);
}

/* 16 system exception vectors; the board's interrupts stay disabled, so none are listed */
__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(uintptr_t)__stack_top, /* initial main stack pointer */
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    0, 0, 0, 0,    /* reserved */
    Fault_Handler, /* SVCall */
    Fault_Handler, /* DebugMonitor */
    0,             /* reserved */
    Fault_Handler, /* PendSV */
    Fault_Handler, /* SysTick */
};
