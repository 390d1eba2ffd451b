/* stm32_gpio.h: GPIO and clock-enable helpers shared by the STM32 UART drivers.
 * The GPIO block is the same on every STM32 family here (F4, F7, H7, L4):
 * only where the ports are and which RCC register clocks them differ, and
 * those come from the family file (FW_GPIO_*). */
#ifndef STM32_GPIO_H
#define STM32_GPIO_H

#include <stdint.h>

/* Sets `bit` of the RCC clock-enable register `reg` and waits for it to take effect. */
void fw_stm32_clock_enable(uint32_t reg, uint32_t bit);

/* Routes pin `pin` of port `port` (0 = A) to alternate function `af`, with a
 * pull-up (an idle UART line is high) and high output speed. */
void fw_stm32_pin_af(uint32_t port, uint32_t pin, uint32_t af);

/* Clocks the board's UART and routes its TX and RX pins (FW_UART_*). */
void fw_stm32_uart_power_up(void);

#endif /* STM32_GPIO_H */
