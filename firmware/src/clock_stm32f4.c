/* clock_stm32f4.c: clock set-up of the STM32F4 and STM32F7 families, which
 * share their RCC (RM0402 / RM0385, "Reset and clock control"): HSI or HSE ->
 * main PLL (M, N, P, Q, R) -> SYSCLK -> AHB -> APB1, APB2.
 *
 * Order (RM0385 5.1.4, RM0402 5.1.1 and 6.3): the power interface's clock,
 * the regulator's voltage scale (only while the PLL is off), the oscillator,
 * the PLL; on the F7 above 180 MHz the regulator's over-drive; then the flash
 * wait states, raised before the clock is; the bus prescalers; and last the
 * switch of SYSCLK to the PLL. */
#include "fw_hal.h"
#include "stm32_rcc.h"

#define RCC_CR 0x40023800u
#define RCC_PLLCFGR 0x40023804u
#define RCC_CFGR 0x40023808u
#define RCC_APB1ENR 0x40023840u
#define PWR_CR1 0x40007000u  /* PWR_CR on the F4 */
#define PWR_CSR1 0x40007004u /* PWR_CSR on the F4 */
#define FLASH_ACR 0x40023C00u

#define CR_HSEON (1u << 16)
#define CR_HSERDY (1u << 17)
#define CR_HSEBYP (1u << 18)
#define CR_PLLON (1u << 24)
#define CR_PLLRDY (1u << 25)
#define APB1ENR_PWREN (1u << 28)
#define PWR_CR1_VOS_SHIFT 14u
#define PWR_CR1_ODEN (1u << 16)   /* F7 over-drive */
#define PWR_CR1_ODSWEN (1u << 17)
#define PWR_CSR1_ODRDY (1u << 16)
#define PWR_CSR1_ODSWRDY (1u << 17)
#define CFGR_SW_PLL 2u
#define CFGR_SWS_MASK (3u << 2)
#define CFGR_SWS_PLL (2u << 2)

/* PLLCFGR: M in [5:0], N in [14:6], P = 2, 4, 6, 8 as 0..3 in [17:16], the
 * source in bit 22, Q in [27:24], R in [30:28] (where the chip has one: FW_PLL_R
 * is 0 otherwise, the reset value of those bits). Q and R are always valid
 * dividers, also when their outputs (USB, I2S) are unused. */
#define PLLCFGR_VALUE                                                                              \
    ((uint32_t)FW_PLL_M | ((uint32_t)FW_PLL_N << 6) | (((uint32_t)FW_PLL_P / 2u - 1u) << 16) |     \
     ((uint32_t)FW_CLOCK_SOURCE_EXTERNAL << 22) | ((uint32_t)FW_PLL_Q << 24) |                      \
     ((uint32_t)FW_PLL_R << 28))

/* The regulator's scale in PWR_CR1.VOS: scale 1 is 0b11, 2 is 0b10, 3 is 0b01. */
#define VOS_VALUE (4u - (uint32_t)FW_VOLTAGE_SCALE)

fw_clocks fw_clock_init(void)
{
    FW_REG32(RCC_APB1ENR) |= APB1ENR_PWREN;
    (void)FW_REG32(RCC_APB1ENR);
    FW_REG32(PWR_CR1) = (FW_REG32(PWR_CR1) & ~(3u << PWR_CR1_VOS_SHIFT)) | (VOS_VALUE << PWR_CR1_VOS_SHIFT);

#if FW_CLOCK_SOURCE_EXTERNAL
    FW_REG32(RCC_CR) |= FW_CLOCK_HSE_BYPASS ? CR_HSEBYP : 0u;
    FW_REG32(RCC_CR) |= CR_HSEON;
    if (!fw_wait_bits(RCC_CR, CR_HSERDY, CR_HSERDY, FW_WAIT_TRIES)) {
        return stm32_reset_clocks(); /* no crystal / no clock on OSC_IN: stay on the HSI */
    }
#endif
    FW_REG32(RCC_PLLCFGR) = PLLCFGR_VALUE;
    FW_REG32(RCC_CR) |= CR_PLLON;
    if (!fw_wait_bits(RCC_CR, CR_PLLRDY, CR_PLLRDY, FW_WAIT_TRIES)) {
        return stm32_reset_clocks();
    }
#if FW_REGULATOR_OVERDRIVE
    FW_REG32(PWR_CR1) |= PWR_CR1_ODEN;
    if (!fw_wait_bits(PWR_CSR1, PWR_CSR1_ODRDY, PWR_CSR1_ODRDY, FW_WAIT_TRIES)) {
        return stm32_reset_clocks();
    }
    FW_REG32(PWR_CR1) |= PWR_CR1_ODSWEN;
    if (!fw_wait_bits(PWR_CSR1, PWR_CSR1_ODSWRDY, PWR_CSR1_ODSWRDY, FW_WAIT_TRIES)) {
        return stm32_reset_clocks();
    }
#endif
    /* Wait states before the faster clock; the flash takes them when they read back. */
    FW_REG32(FLASH_ACR) = (uint32_t)FW_FLASH_WAIT_STATES | FW_FLASH_ACCELERATOR;
    if (!fw_wait_bits(FLASH_ACR, 0xFu, FW_FLASH_WAIT_STATES, FW_WAIT_TRIES)) {
        return stm32_reset_clocks();
    }
    FW_REG32(RCC_CFGR) = (STM32_AHB_PRESCALER(FW_DIV_AHB) << 4) | (STM32_APB_PRESCALER(FW_DIV_APB1) << 10) |
                         (STM32_APB_PRESCALER(FW_DIV_APB2) << 13);
    FW_REG32(RCC_CFGR) |= CFGR_SW_PLL;
    if (!fw_wait_bits(RCC_CFGR, CFGR_SWS_MASK, CFGR_SWS_PLL, FW_WAIT_TRIES)) {
        FW_REG32(RCC_CFGR) = 0u; /* back to the HSI with undivided buses */
        return stm32_reset_clocks();
    }
    return stm32_board_clocks();
}
