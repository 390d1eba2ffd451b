/* clock_stm32l4.c: clock set-up of the STM32L4+ family (RM0432, "Power
 * control" and "Reset and clock control"): HSI16 or HSE -> main PLL (M, N, R)
 * -> SYSCLK -> AHB -> APB1, APB2. The chip starts on MSI at 4 MHz in range 1.
 *
 * Above 80 MHz the regulator must be in range 1 boost mode (PWR_CR5.R1MODE =
 * 0), and the switch to the PLL goes through an AHB prescaler of 2 for at
 * least 1 us (RM0432, "Dynamic voltage scaling management" and the RCC's
 * "Clock transition"), so the core never jumps to its highest frequency at once.
 * Port G (the NUCLEO-L4R5ZI's LPUART1 pins) is powered by VDDIO2, which is
 * isolated until PWR_CR2.IOSV declares it valid. */
#include "fw_hal.h"
#include "stm32_rcc.h"

#define RCC_BASE 0x40021000u
#define RCC_CR (RCC_BASE + 0x00u)
#define RCC_CFGR (RCC_BASE + 0x08u)
#define RCC_PLLCFGR (RCC_BASE + 0x0Cu)
#define RCC_APB1ENR1 (RCC_BASE + 0x58u)
#define PWR_CR1 0x40007000u
#define PWR_CR2 0x40007004u
#define PWR_SR2 0x40007014u
#define PWR_CR5 0x40007080u
#define FLASH_ACR 0x40022000u

#define CR_HSION (1u << 8)
#define CR_HSIRDY (1u << 10)
#define CR_HSEON (1u << 16)
#define CR_HSERDY (1u << 17)
#define CR_HSEBYP (1u << 18)
#define CR_PLLON (1u << 24)
#define CR_PLLRDY (1u << 25)
#define APB1ENR1_PWREN (1u << 28)
#define PWR_CR1_VOS_SHIFT 9u
#define PWR_CR2_IOSV (1u << 9)
#define PWR_SR2_VOSF (1u << 10)
#define PWR_CR5_R1MODE (1u << 8)
#define CFGR_SW_PLL 3u
#define CFGR_SWS_MASK (3u << 2)
#define CFGR_SWS_PLL (3u << 2)
#define CFGR_HPRE_SHIFT 4u

/* PLLCFGR: the source in [1:0] (2: HSI16, 3: HSE), M - 1 in [7:4], N in
 * [14:8], Q enable (bit 20) and Q = 2, 4, 6, 8 as 0..3 in [22:21], R enable
 * (bit 24) and R as 0..3 in [26:25]. P stays off. */
#define PLLCFGR_VALUE                                                                              \
    ((FW_CLOCK_SOURCE_EXTERNAL ? 3u : 2u) | (((uint32_t)FW_PLL_M - 1u) << 4) | ((uint32_t)FW_PLL_N << 8) | \
     ((uint32_t)FW_PLL_Q_USED << 20) | (((uint32_t)FW_PLL_Q / 2u - 1u) << 21) | (1u << 24) |         \
     (((uint32_t)FW_PLL_R / 2u - 1u) << 25))
#define CFGR_VALUE(hpre)                                                                           \
    (((uint32_t)(hpre) << CFGR_HPRE_SHIFT) | (STM32_APB_PRESCALER(FW_DIV_APB1) << 8) |            \
     (STM32_APB_PRESCALER(FW_DIV_APB2) << 11))

#if FW_REGULATOR_BOOST
/* At least 1 us at 120 MHz (a few cycles per iteration). */
static void settle(void)
{
    for (volatile uint32_t i = 0; i < 200u; i++) {
    }
}
#endif

fw_clocks fw_clock_init(void)
{
    FW_REG32(RCC_APB1ENR1) |= APB1ENR1_PWREN;
    (void)FW_REG32(RCC_APB1ENR1);
    FW_REG32(PWR_CR2) |= PWR_CR2_IOSV;
    FW_REG32(PWR_CR1) = (FW_REG32(PWR_CR1) & ~(3u << PWR_CR1_VOS_SHIFT)) |
                        ((uint32_t)FW_VOLTAGE_SCALE << PWR_CR1_VOS_SHIFT); /* range 1 is 0b01, 2 is 0b10 */
    if (!fw_wait_bits(PWR_SR2, PWR_SR2_VOSF, 0u, FW_WAIT_TRIES)) {
        return stm32_reset_clocks();
    }
#if FW_REGULATOR_BOOST
    FW_REG32(PWR_CR5) &= ~PWR_CR5_R1MODE;
#endif
#if FW_CLOCK_SOURCE_EXTERNAL
    FW_REG32(RCC_CR) |= FW_CLOCK_HSE_BYPASS ? CR_HSEBYP : 0u;
    FW_REG32(RCC_CR) |= CR_HSEON;
    if (!fw_wait_bits(RCC_CR, CR_HSERDY, CR_HSERDY, FW_WAIT_TRIES)) {
        return stm32_reset_clocks();
    }
#else
    FW_REG32(RCC_CR) |= CR_HSION;
    if (!fw_wait_bits(RCC_CR, CR_HSIRDY, CR_HSIRDY, FW_WAIT_TRIES)) {
        return stm32_reset_clocks();
    }
#endif
    FW_REG32(RCC_PLLCFGR) = PLLCFGR_VALUE;
    FW_REG32(RCC_CR) |= CR_PLLON;
    if (!fw_wait_bits(RCC_CR, CR_PLLRDY, CR_PLLRDY, FW_WAIT_TRIES)) {
        return stm32_reset_clocks();
    }
    FW_REG32(FLASH_ACR) = (uint32_t)FW_FLASH_WAIT_STATES | FW_FLASH_ACCELERATOR;
    if (!fw_wait_bits(FLASH_ACR, 0xFu, FW_FLASH_WAIT_STATES, FW_WAIT_TRIES)) {
        return stm32_reset_clocks();
    }
#if FW_REGULATOR_BOOST
    /* Through AHB / 2 first, as the boost-mode transition requires. */
    FW_REG32(RCC_CFGR) = CFGR_VALUE(STM32_AHB_PRESCALER(2));
#else
    FW_REG32(RCC_CFGR) = CFGR_VALUE(STM32_AHB_PRESCALER(FW_DIV_AHB));
#endif
    FW_REG32(RCC_CFGR) |= CFGR_SW_PLL;
    if (!fw_wait_bits(RCC_CFGR, CFGR_SWS_MASK, CFGR_SWS_PLL, FW_WAIT_TRIES)) {
        FW_REG32(RCC_CFGR) = 0u; /* back to MSI with undivided buses */
        return stm32_reset_clocks();
    }
#if FW_REGULATOR_BOOST
    settle();
    FW_REG32(RCC_CFGR) = CFGR_VALUE(STM32_AHB_PRESCALER(FW_DIV_AHB)) | CFGR_SW_PLL;
#endif
    return stm32_board_clocks();
}
