/* fw_hal.h: the drivers a board needs. One implementation of each is compiled,
 * chosen by the board file: clock_<driver>.c (from its family, or clock_fixed.c),
 * uart_<uart.kind>.c and counter_<counter.kind>.c; cache_cm7.c where the chip
 * has the Cortex-M7 L1 caches. Addresses, clocks and pins come from the
 * rendered fw_config.h. */
#ifndef FW_HAL_H
#define FW_HAL_H

#include <stdint.h>

#include "fw_config.h"

#define FW_REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* The clocks after fw_clock_init. */
typedef struct {
    uint32_t core_hz; /* the core clock */
    uint32_t uart_hz; /* the clock the UART's baud-rate generator divides (0: not used) */
} fw_clocks;

/* Brings the chip to the board's clock: oscillator, PLL, regulator mode, flash
 * wait states, bus prescalers. Every wait is bounded: if an oscillator or the
 * PLL does not start, the chip stays on its reset clock and the clocks returned
 * say so (the firmware then still talks, and `profile` shows the real clock). */
fw_clocks fw_clock_init(void);

/* Invalidates and enables the Cortex-M7 L1 instruction and data caches. */
void fw_caches_enable(void);

void fw_uart_init(uint32_t clock_hz);
void fw_uart_putc(char c);
/* Blocks until a byte arrives (sleeping where the UART can wake the core). */
int fw_uart_getc(void);

void fw_counter_init(void);
/* Free-running tick count that wraps modulo 2^32 (FW_UNITS_PER_TICK units each). */
uint32_t fw_counter_ticks(void);

/* Stack painting (startup.c). */
void fw_stack_paint(void);

/* Polls until (reg & mask) == value; 0 if that did not happen within `tries`
 * reads (fw_wait.c). The clock drivers bound every wait for hardware with it. */
int fw_wait_bits(uint32_t reg, uint32_t mask, uint32_t value, uint32_t tries);

/* Reads of a register a clock driver polls before it gives up: at least 10 ms
 * (a crystal oscillator starts in a few ms) at the fastest reset clock here,
 * 64 MHz, and well under a second at the slowest, 4 MHz. */
#define FW_WAIT_TRIES 200000u

#endif /* FW_HAL_H */
