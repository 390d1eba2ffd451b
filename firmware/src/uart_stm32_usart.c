/* uart_stm32_usart.c: STM32F7 USART, polled (RM0385: RCC, GPIO and USART
 * chapters). Runs from the clock the chip starts on (HSI, FW_UART_CLOCK_HZ):
 * the firmware does not configure the PLL yet.
 *
 * NOT YET TESTED ON HARDWARE: register-level code written from the reference
 * manual; it compiles and links, and the QEMU variant does not use it.
 */
#include "fw_hal.h"

#define RCC_BASE 0x40023800u
#define RCC_AHB1ENR (RCC_BASE + 0x30u)
#define RCC_APB1ENR (RCC_BASE + 0x40u)
#define RCC_APB2ENR (RCC_BASE + 0x44u)

#define GPIO_BASE(port) (0x40020000u + 0x400u * (uint32_t)(port))
#define GPIO_MODER(port) (GPIO_BASE(port) + 0x00u)
#define GPIO_OSPEEDR(port) (GPIO_BASE(port) + 0x08u)
#define GPIO_AFR(port, pin) (GPIO_BASE(port) + 0x20u + 4u * ((uint32_t)(pin) / 8u))

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
#define ISR_RXNE (1u << 5)
#define ISR_TXE (1u << 7)

/* The USART's clock-enable bit: which bus register and bit, by base address. */
static void enable_usart_clock(void)
{
    switch (FW_UART_BASE) {
    case 0x40011000u: FW_REG32(RCC_APB2ENR) |= 1u << 4; break;  /* USART1 */
    case 0x40011400u: FW_REG32(RCC_APB2ENR) |= 1u << 5; break;  /* USART6 */
    case 0x40004400u: FW_REG32(RCC_APB1ENR) |= 1u << 17; break; /* USART2 */
    case 0x40004800u: FW_REG32(RCC_APB1ENR) |= 1u << 18; break; /* USART3 */
    case 0x40004C00u: FW_REG32(RCC_APB1ENR) |= 1u << 19; break; /* UART4 */
    case 0x40005000u: FW_REG32(RCC_APB1ENR) |= 1u << 20; break; /* UART5 */
    case 0x40007800u: FW_REG32(RCC_APB1ENR) |= 1u << 30; break; /* UART7 */
    case 0x40007C00u: FW_REG32(RCC_APB1ENR) |= 1u << 31; break; /* UART8 */
    default: break;
    }
}

static void pin_alternate(uint32_t port, uint32_t pin)
{
    FW_REG32(RCC_AHB1ENR) |= 1u << port;
    FW_REG32(GPIO_MODER(port)) = (FW_REG32(GPIO_MODER(port)) & ~(3u << (2u * pin))) | (2u << (2u * pin));
    FW_REG32(GPIO_OSPEEDR(port)) |= 2u << (2u * pin);
    uint32_t shift = 4u * (pin % 8u);
    FW_REG32(GPIO_AFR(port, pin)) = (FW_REG32(GPIO_AFR(port, pin)) & ~(0xFu << shift)) |
                                    ((uint32_t)FW_UART_PIN_AF << shift);
}

void fw_uart_init(void)
{
    pin_alternate(FW_UART_TX_PORT, FW_UART_TX_PIN);
    pin_alternate(FW_UART_RX_PORT, FW_UART_RX_PIN);
    enable_usart_clock();
    FW_REG32(USART_CR1) = 0;
    FW_REG32(USART_BRR) = (FW_UART_CLOCK_HZ + FW_UART_BAUD / 2u) / FW_UART_BAUD; /* 16x oversampling */
    FW_REG32(USART_CR1) = CR1_UE | CR1_RE | CR1_TE;
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
            FW_REG32(USART_ICR) = ISR_ORE; /* an overrun would block reception */
        }
    }
    return (int)(FW_REG32(USART_RDR) & 0xffu);
}
