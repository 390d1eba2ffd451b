/* uart_nrf52_uarte.c: nRF52 UARTE (UART with EasyDMA), polled, one byte per
 * DMA transfer (nRF52840 Product Specification: UARTE, GPIO). 8N1, no flow
 * control; the baud rate is a BAUDRATE register code (FW_UARTE_BAUD_CODE),
 * exact only as far as HFCLK is (clock_nrf52.c starts the crystal). */
#include "fw_hal.h"

#define UARTE_TASKS_STARTRX (FW_UART_BASE + 0x000u)
#define UARTE_TASKS_STARTTX (FW_UART_BASE + 0x008u)
#define UARTE_EVENTS_ENDRX (FW_UART_BASE + 0x110u)
#define UARTE_EVENTS_ENDTX (FW_UART_BASE + 0x120u)
#define UARTE_ENABLE (FW_UART_BASE + 0x500u)
#define UARTE_PSEL_RTS (FW_UART_BASE + 0x508u)
#define UARTE_PSEL_TXD (FW_UART_BASE + 0x50Cu)
#define UARTE_PSEL_CTS (FW_UART_BASE + 0x510u)
#define UARTE_PSEL_RXD (FW_UART_BASE + 0x514u)
#define UARTE_BAUDRATE (FW_UART_BASE + 0x524u)
#define UARTE_RXD_PTR (FW_UART_BASE + 0x534u)
#define UARTE_RXD_MAXCNT (FW_UART_BASE + 0x538u)
#define UARTE_TXD_PTR (FW_UART_BASE + 0x544u)
#define UARTE_TXD_MAXCNT (FW_UART_BASE + 0x548u)
#define UARTE_CONFIG (FW_UART_BASE + 0x56Cu)

#define GPIO_PORT(port) (FW_GPIO_BASE + FW_GPIO_STRIDE * (uint32_t)(port))
#define GPIO_OUTSET(port) (GPIO_PORT(port) + 0x508u)
#define GPIO_PIN_CNF(port, pin) (GPIO_PORT(port) + 0x700u + 4u * (uint32_t)(pin))

#define PSEL(port, pin) (((uint32_t)(port) << 5) | (uint32_t)(pin))
#define PSEL_DISCONNECTED 0xFFFFFFFFu
#define ENABLE_UARTE 8u
#define PIN_OUTPUT 1u
#define PIN_INPUT_PULLUP (3u << 2) /* input, buffer connected, pull-up: the idle line is high */

/* EasyDMA reads and writes RAM only. The receive buffer has room to spare:
 * MAXCNT is 1, and a byte that arrives while the driver re-arms reception
 * must not land on another variable. */
static volatile uint8_t rx_buffer[4];
static volatile uint8_t tx_byte;

void fw_uart_init(uint32_t clock_hz)
{
    (void)clock_hz; /* the UARTE takes a rate code, not a divider */
    FW_REG32(GPIO_OUTSET(FW_UART_TX_PORT)) = 1u << FW_UART_TX_PIN; /* idle high */
    FW_REG32(GPIO_PIN_CNF(FW_UART_TX_PORT, FW_UART_TX_PIN)) = PIN_OUTPUT;
    FW_REG32(GPIO_PIN_CNF(FW_UART_RX_PORT, FW_UART_RX_PIN)) = PIN_INPUT_PULLUP;
    FW_REG32(UARTE_PSEL_TXD) = PSEL(FW_UART_TX_PORT, FW_UART_TX_PIN);
    FW_REG32(UARTE_PSEL_RXD) = PSEL(FW_UART_RX_PORT, FW_UART_RX_PIN);
    FW_REG32(UARTE_PSEL_RTS) = PSEL_DISCONNECTED;
    FW_REG32(UARTE_PSEL_CTS) = PSEL_DISCONNECTED;
    FW_REG32(UARTE_BAUDRATE) = FW_UARTE_BAUD_CODE;
    FW_REG32(UARTE_CONFIG) = 0u; /* 8N1, no flow control */
    FW_REG32(UARTE_ENABLE) = ENABLE_UARTE;
    FW_REG32(UARTE_RXD_PTR) = (uint32_t)(uintptr_t)rx_buffer;
    FW_REG32(UARTE_RXD_MAXCNT) = 1u;
    FW_REG32(UARTE_EVENTS_ENDRX) = 0u;
    FW_REG32(UARTE_TASKS_STARTRX) = 1u;
}

void fw_uart_putc(char c)
{
    tx_byte = (uint8_t)c;
    FW_REG32(UARTE_TXD_PTR) = (uint32_t)(uintptr_t)&tx_byte;
    FW_REG32(UARTE_TXD_MAXCNT) = 1u;
    FW_REG32(UARTE_EVENTS_ENDTX) = 0u;
    FW_REG32(UARTE_TASKS_STARTTX) = 1u;
    while (FW_REG32(UARTE_EVENTS_ENDTX) == 0u) {
    }
}

int fw_uart_getc(void)
{
    while (FW_REG32(UARTE_EVENTS_ENDRX) == 0u) {
    }
    int c = rx_buffer[0];
    /* Clear the event, then re-arm: bytes arriving meanwhile wait in the
     * UARTE's receive FIFO and are moved to the buffer by STARTRX. */
    FW_REG32(UARTE_EVENTS_ENDRX) = 0u;
    FW_REG32(UARTE_TASKS_STARTRX) = 1u;
    return c;
}
