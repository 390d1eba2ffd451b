/* stm32_rcc.h: what the STM32 clock drivers share: how the RCC encodes its
 * prescalers (the same on F4, F7, H7 and L4; boards.py admits only these divider
 * values) and the polling of ready flags. */
#ifndef STM32_RCC_H
#define STM32_RCC_H

#include "fw_hal.h"

/* AHB prescaler (HPRE; also the H7's D1CPRE): /1 is 0, /2.../16 are 8...11,
 * /64.../512 are 12...15 (there is no /32). */
#define STM32_AHB_PRESCALER(d)                                                                     \
    ((d) == 1 ? 0u : (d) == 2 ? 8u : (d) == 4 ? 9u : (d) == 8 ? 10u : (d) == 16 ? 11u :            \
     (d) == 64 ? 12u : (d) == 128 ? 13u : (d) == 256 ? 14u : 15u)

/* APB prescalers (PPRE1/PPRE2; the H7's D1PPRE, D2PPRE1/2, D3PPRE): /1 is 0,
 * /2.../16 are 4...7. */
#define STM32_APB_PRESCALER(d) ((d) == 1 ? 0u : (d) == 2 ? 4u : (d) == 4 ? 5u : (d) == 8 ? 6u : 7u)

/* The clocks when the set-up gives up: the chip keeps its reset clock, which
 * also feeds the buses (every prescaler is /1 after reset). */
static inline fw_clocks stm32_reset_clocks(void)
{
    fw_clocks c = {FW_RESET_CLOCK_HZ, FW_RESET_CLOCK_HZ};
    return c;
}

static inline fw_clocks stm32_board_clocks(void)
{
    fw_clocks c = {FW_CLOCK_HZ, FW_UART_CLOCK_HZ};
    return c;
}

#endif /* STM32_RCC_H */
