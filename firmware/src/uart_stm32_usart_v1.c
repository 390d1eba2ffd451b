/* uart_stm32_usart_v1.c: the STM32 USART with the SR/DR register layout
 * (F1, F2, F4 and L1 families; RM0402 "USART registers"), polled, 8N1 with
 * 16x oversampling. QEMU's netduinoplus2 (an STM32F405) emulates this USART,
 * which is where our tests run this driver. */
#include "fw_hal.h"
#include "stm32_gpio.h"

#define USART_SR (FW_UART_BASE + 0x00u)
#define USART_DR (FW_UART_BASE + 0x04u)
#define USART_BRR (FW_UART_BASE + 0x08u)
#define USART_CR1 (FW_UART_BASE + 0x0Cu)

#define SR_ORE (1u << 3)
#define SR_RXNE (1u << 5)
#define SR_TXE (1u << 7)
#define CR1_RE (1u << 2)
#define CR1_TE (1u << 3)
#define CR1_UE (1u << 13)

void fw_uart_init(uint32_t clock_hz)
{
    fw_stm32_uart_power_up();
    FW_REG32(USART_CR1) = 0u;
    /* With 16x oversampling BRR is the divider clock / baud (12.4 fixed point). */
    FW_REG32(USART_BRR) = (clock_hz + FW_UART_BAUD / 2u) / FW_UART_BAUD;
    FW_REG32(USART_CR1) = CR1_UE | CR1_TE | CR1_RE;
}

void fw_uart_putc(char c)
{
    while (!(FW_REG32(USART_SR) & SR_TXE)) {
    }
    FW_REG32(USART_DR) = (uint8_t)c;
}

int fw_uart_getc(void)
{
    /* After an overrun RXNE and ORE are both set and DR holds the last byte
     * received; reading SR then DR clears both, so the same read recovers. */
    while (!(FW_REG32(USART_SR) & (SR_RXNE | SR_ORE))) {
    }
    return (int)(FW_REG32(USART_DR) & 0xFFu);
}
