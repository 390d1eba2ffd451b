/* stm32_usart_v2.h: the STM32 USART with the ISR/RDR/TDR register layout (F0,
 * F3, F7, H7, L4 and later families; RM0385 "USART registers"), which the
 * LPUART shares. Polled, 8N1; the drivers differ only in how BRR is computed
 * (uart_stm32_usart_v2.c, uart_stm32_lpuart.c). It defines fw_uart_putc and
 * fw_uart_getc: exactly one of those two drivers is compiled into a firmware. */
#ifndef STM32_USART_V2_H
#define STM32_USART_V2_H

#include "fw_hal.h"
#include "stm32_gpio.h"

#define USART_CR1 (FW_UART_BASE + 0x00u)
#define USART_BRR (FW_UART_BASE + 0x0Cu)
#define USART_ISR (FW_UART_BASE + 0x1Cu)
#define USART_ICR (FW_UART_BASE + 0x20u)
#define USART_RDR (FW_UART_BASE + 0x24u)
#define USART_TDR (FW_UART_BASE + 0x28u)

#define CR1_UE (1u << 0)
#define CR1_RE (1u << 2)
#define CR1_TE (1u << 3)
#define ISR_ORE (1u << 3)
#define ISR_RXNE (1u << 5) /* RXFNE on the H7: the same bit with the FIFO off */
#define ISR_TXE (1u << 7)  /* TXFNF on the H7 */
#define ICR_ORECF (1u << 3)

static void usart_v2_start(uint32_t brr)
{
    fw_stm32_uart_power_up();
    FW_REG32(USART_CR1) = 0u; /* BRR may only be written while the USART is disabled */
    FW_REG32(USART_BRR) = brr;
    FW_REG32(USART_CR1) = CR1_UE | CR1_TE | CR1_RE;
}

void fw_uart_putc(char c)
{
    while (!(FW_REG32(USART_ISR) & ISR_TXE)) {
    }
    FW_REG32(USART_TDR) = (uint8_t)c;
}

int fw_uart_getc(void)
{
    while (!(FW_REG32(USART_ISR) & ISR_RXNE)) {
        if (FW_REG32(USART_ISR) & ISR_ORE) {
            FW_REG32(USART_ICR) = ICR_ORECF; /* an overrun flag left set blocks reception */
        }
    }
    return (int)(FW_REG32(USART_RDR) & 0xFFu);
}

#endif /* STM32_USART_V2_H */
