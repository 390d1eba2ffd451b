/* fw_hal.h: the drivers a board needs. One implementation of each is compiled,
 * chosen by the board file: uart_<uart.kind>.c and counter_<counter.kind>.c.
 * Addresses, clocks and pins come from the rendered fw_config.h. */
#ifndef FW_HAL_H
#define FW_HAL_H

#include <stdint.h>

#include "fw_config.h"

#define FW_REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

void fw_uart_init(void);
void fw_uart_putc(char c);
/* Blocks until a byte arrives (sleeping where the UART can wake the core). */
int fw_uart_getc(void);

void fw_counter_init(void);
/* Free-running tick count that wraps modulo 2^32 (FW_UNITS_PER_TICK units each). */
uint32_t fw_counter_ticks(void);

/* Stack painting (startup.c). */
void fw_stack_paint(void);

#endif /* FW_HAL_H */
