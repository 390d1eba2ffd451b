/* startup.c: vector table, reset, stack painting and fault reporting for
 * ARMv7-M / ARMv7E-M cores (Cortex-M3, M4, M7).
 *
 * Memory layout (link.ld): the stack sits at the bottom of SRAM, below .data
 * and .bss, so an overflow runs off the start of SRAM and faults instead of
 * silently corrupting the model's arena.
 */
#include <stdint.h>

#include "fw_format.h"
#include "fw_hal.h"
#include "fw_port.h"

/* Linker-script symbols: their addresses are the values. */
extern uint32_t __stack_start[], __stack_end[];
extern uint32_t __data_start[], __data_end[], __data_load[];
extern uint32_t __bss_start[], __bss_end[];

int main(void);
void Reset_Handler(void);
void fw_fault_entry(void);
void fw_fault_report(const uint32_t *frame);

/* Handlers a driver may provide; otherwise they report an unexpected exception. */
void SysTick_Handler(void) __attribute__((weak, alias("fw_fault_entry")));
void fw_uart_irq_handler(void) __attribute__((weak, alias("fw_fault_entry")));

#define SCB_VTOR 0xE000ED08u
#define SCB_CPACR 0xE000ED88u
#define STACK_PAINT 0xC5C5C5C5u

#define FAULT ((uintptr_t)&fw_fault_entry)
/* Device interrupt n: the UART's receive interrupt or "unexpected". */
#define IRQ(n) (FW_UART_RX_IRQ == (n) ? (uintptr_t)&fw_uart_irq_handler : FAULT)

/* 16 system exceptions and 32 device interrupts (the mps2 machines have 32;
 * the firmware enables no other device interrupt on any board; boards.py
 * checks uart.rx_irq against MAX_DEVICE_IRQS = 32). */
__attribute__((section(".vectors"), used))
const uintptr_t fw_vectors[16 + 32] = {
    (uintptr_t)__stack_end,       /* initial main stack pointer */
    (uintptr_t)&Reset_Handler,
    FAULT, FAULT, FAULT, FAULT, FAULT, /* NMI, HardFault, MemManage, BusFault, UsageFault */
    0, 0, 0, 0,                   /* reserved */
    FAULT, FAULT, 0, FAULT,       /* SVCall, DebugMonitor, reserved, PendSV */
    (uintptr_t)&SysTick_Handler,
    IRQ(0), IRQ(1), IRQ(2), IRQ(3), IRQ(4), IRQ(5), IRQ(6), IRQ(7),
    IRQ(8), IRQ(9), IRQ(10), IRQ(11), IRQ(12), IRQ(13), IRQ(14), IRQ(15),
    IRQ(16), IRQ(17), IRQ(18), IRQ(19), IRQ(20), IRQ(21), IRQ(22), IRQ(23),
    IRQ(24), IRQ(25), IRQ(26), IRQ(27), IRQ(28), IRQ(29), IRQ(30), IRQ(31),
};

void Reset_Handler(void)
{
#if defined(__ARM_FP)
    /* Full access to coprocessors 10 and 11 (the FPU) before any float instruction. */
    FW_REG32(SCB_CPACR) |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    for (uint32_t *src = __data_load, *dst = __data_start; dst < __data_end;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = __bss_start; dst < __bss_end;) {
        *dst++ = 0;
    }
    FW_REG32(SCB_VTOR) = (uint32_t)(uintptr_t)fw_vectors;
    fw_stack_paint();
    main();
    for (;;) {
        __asm__ volatile("wfi");
    }
}

/* Fills the unused stack below the current stack pointer with a pattern;
 * fw_port_stack_used() later finds how far down it was overwritten. */
void fw_stack_paint(void)
{
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (volatile uint32_t *w = __stack_start; w < sp - 16;) { /* keep clear of this frame */
        *w++ = STACK_PAINT;
    }
}

size_t fw_port_stack_used(void)
{
    const volatile uint32_t *w = __stack_start;
    while (w < __stack_end && *w == STACK_PAINT) {
        w++;
    }
    return (size_t)((const uint8_t *)__stack_end - (const volatile uint8_t *)w);
}

size_t fw_port_stack_size(void)
{
    return (size_t)((const uint8_t *)__stack_end - (const uint8_t *)__stack_start);
}

/* Every fault and unexpected exception lands here: hand the stacked frame
 * (MSP or PSP, from EXC_RETURN bit 2) to fw_fault_report. */
__attribute__((naked)) void fw_fault_entry(void)
{
    __asm__ volatile(
        "tst lr, #4\n\t"
        "ite eq\n\t"
        "mrseq r0, msp\n\t"
        "mrsne r0, psp\n\t"
        "b fw_fault_report\n\t");
}

static void fault_puts(const char *s)
{
    while (*s) {
        fw_uart_putc(*s++);
    }
}

/* Prints "e-[fault: <exception> pc=0x........]" and stops: the host sees a dead device. */
/* `used`: only the handler's assembly calls it, which -flto does not see. */
__attribute__((used)) void fw_fault_report(const uint32_t *frame)
{
    static const char *const names[] = {
        "thread", "reset", "NMI", "HardFault", "MemManage", "BusFault", "UsageFault",
    };
    uint32_t ipsr;
    char b[FW_FMT_U64_CHARS];
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    ipsr &= 0x1ffu;
    fault_puts("\r\ne-[fault: ");
    if (ipsr < sizeof names / sizeof names[0]) {
        fault_puts(names[ipsr]);
    } else {
        fault_puts(ipsr >= 16 ? "unexpected IRQ " : "unexpected exception ");
        b[fw_fmt_u64(b, ipsr >= 16 ? ipsr - 16 : ipsr)] = '\0';
        fault_puts(b);
    }
    fault_puts(" pc=0x");
    b[fw_fmt_hex32(b, frame[6])] = '\0';
    fault_puts(b);
    fault_puts("]\r\n");
    __asm__ volatile("cpsid i" ::: "memory");
    for (;;) {
        __asm__ volatile("wfi");
    }
}
