/* stm32_gpio.c: STM32 GPIO alternate functions and peripheral clock enables
 * (RM0385 / RM0402 / RM0432 / RM0433: GPIO registers; RCC clock-enable registers). */
#include "fw_hal.h"
#include "stm32_gpio.h"

#define GPIO_PORT(port) (FW_GPIO_BASE + FW_GPIO_STRIDE * (uint32_t)(port))
#define GPIO_MODER(port) (GPIO_PORT(port) + 0x00u)
#define GPIO_OSPEEDR(port) (GPIO_PORT(port) + 0x08u)
#define GPIO_PUPDR(port) (GPIO_PORT(port) + 0x0Cu)
#define GPIO_AFR(port, pin) (GPIO_PORT(port) + 0x20u + 4u * ((uint32_t)(pin) / 8u))

#define MODE_ALTERNATE 2u
#define SPEED_HIGH 2u
#define PULL_UP 1u

void fw_stm32_clock_enable(uint32_t reg, uint32_t bit)
{
    FW_REG32(reg) |= 1u << bit;
    /* The reference manuals ask for a short delay between enabling a clock and
     * using the peripheral: reading the register back provides it. */
    (void)FW_REG32(reg);
}

static void set_field(uint32_t reg, uint32_t shift, uint32_t width_mask, uint32_t value)
{
    FW_REG32(reg) = (FW_REG32(reg) & ~(width_mask << shift)) | (value << shift);
}

void fw_stm32_pin_af(uint32_t port, uint32_t pin, uint32_t af)
{
    fw_stm32_clock_enable(FW_GPIO_ENABLE_REG, port);
    set_field(GPIO_AFR(port, pin), 4u * (pin % 8u), 0xFu, af);
    set_field(GPIO_OSPEEDR(port), 2u * pin, 3u, SPEED_HIGH);
    set_field(GPIO_PUPDR(port), 2u * pin, 3u, PULL_UP);
    /* Last: the pin leaves its reset mode with its alternate function already chosen. */
    set_field(GPIO_MODER(port), 2u * pin, 3u, MODE_ALTERNATE);
}

void fw_stm32_uart_power_up(void)
{
    fw_stm32_clock_enable(FW_UART_ENABLE_REG, FW_UART_ENABLE_BIT);
    fw_stm32_pin_af(FW_UART_TX_PORT, FW_UART_TX_PIN, FW_UART_PIN_AF);
    fw_stm32_pin_af(FW_UART_RX_PORT, FW_UART_RX_PIN, FW_UART_PIN_AF);
}
