/* uart_cmsdk.c: the Arm CMSDK APB UART (MPS2 boards, QEMU's mps2-an385/386/500).
 * Registers: Cortex-M System Design Kit TRM (DDI 0479), APB UART.
 *
 * Transmit polls. Receive sleeps: with interrupts masked (PRIMASK), WFI still
 * wakes when the UART's receive interrupt becomes pending, so there is no
 * window in which a byte can arrive unnoticed; QEMU then idles instead of
 * spinning a host CPU.
 */
#include "fw_hal.h"

#define UART_DATA (FW_UART_BASE + 0x00u)
#define UART_STATE (FW_UART_BASE + 0x04u)
#define UART_CTRL (FW_UART_BASE + 0x08u)
#define UART_INTSTATUS (FW_UART_BASE + 0x0Cu)
#define UART_BAUDDIV (FW_UART_BASE + 0x10u)

#define STATE_TX_FULL (1u << 0)
#define STATE_RX_FULL (1u << 1)
#define CTRL_TX_EN (1u << 0)
#define CTRL_RX_EN (1u << 1)
#define CTRL_RX_INT_EN (1u << 3)
#define INT_RX (1u << 1)

#define NVIC_ISER0 0xE000E100u

void fw_uart_init(uint32_t clock_hz)
{
    /* The divider must be >= 16; boards.py checks clock_hz / baud. */
    FW_REG32(UART_BAUDDIV) = clock_hz / FW_UART_BAUD;
#if FW_UART_RX_IRQ >= 0
    FW_REG32(UART_CTRL) = CTRL_TX_EN | CTRL_RX_EN | CTRL_RX_INT_EN;
    FW_REG32(NVIC_ISER0 + 4u * (FW_UART_RX_IRQ / 32)) = 1u << (FW_UART_RX_IRQ % 32);
#else
    FW_REG32(UART_CTRL) = CTRL_TX_EN | CTRL_RX_EN;
#endif
}

/* Taken when interrupts are unmasked after a byte arrived: acknowledge it;
 * the byte itself stays in DATA for fw_uart_getc. */
void fw_uart_irq_handler(void);
void fw_uart_irq_handler(void)
{
    FW_REG32(UART_INTSTATUS) = INT_RX;
}

void fw_uart_putc(char c)
{
    while (FW_REG32(UART_STATE) & STATE_TX_FULL) {
    }
    FW_REG32(UART_DATA) = (uint8_t)c;
}

int fw_uart_getc(void)
{
    for (;;) {
#if FW_UART_RX_IRQ >= 0
        __asm__ volatile("cpsid i" ::: "memory");
        if (FW_REG32(UART_STATE) & STATE_RX_FULL) {
            __asm__ volatile("cpsie i" ::: "memory");
            break;
        }
        __asm__ volatile("wfi");
        __asm__ volatile("cpsie i" ::: "memory"); /* fw_uart_irq_handler runs here */
#else
        if (FW_REG32(UART_STATE) & STATE_RX_FULL) {
            break;
        }
#endif
    }
    return (int)(FW_REG32(UART_DATA) & 0xffu);
}
