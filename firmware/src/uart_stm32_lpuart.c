/* uart_stm32_lpuart.c: STM32 LPUART (the USART v2 registers): BRR =
 * 256 * clock / baud, 20 bits (RM0432 "LPUART baud rate generation"; the
 * board file is checked for 3 * baud <= clock <= 4096 * baud). */
#include "stm32_usart_v2.h"

void fw_uart_init(uint32_t clock_hz)
{
    uint64_t brr = (256ull * clock_hz + FW_UART_BAUD / 2u) / FW_UART_BAUD;
    usart_v2_start((uint32_t)brr);
}
