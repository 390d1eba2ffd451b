/* uart_stm32_usart_v2.c: STM32 USART (ISR/RDR/TDR layout) with 16x
 * oversampling: BRR = clock / baud. */
#include "stm32_usart_v2.h"

void fw_uart_init(uint32_t clock_hz)
{
    usart_v2_start((clock_hz + FW_UART_BAUD / 2u) / FW_UART_BAUD);
}
