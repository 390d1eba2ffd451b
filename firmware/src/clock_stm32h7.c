/* clock_stm32h7.c: clock set-up of the STM32H742/H743/H750/H753 (RM0433,
 * "Power control" and "Reset and clock control"): HSI (64 MHz) or HSE ->
 * PLL1 (DIVM1, DIVN1, DIVP1, DIVQ1, DIVR1) -> sys_ck -> D1CPRE -> CPU clock
 * -> HPRE -> AXI/AHB -> D1PPRE (APB3), D2PPRE1 (APB1), D2PPRE2 (APB2),
 * D3PPRE (APB4).
 *
 * Order: the supply configuration (LDO), which must be written once after
 * reset before the voltage scale can change; the voltage scale; the
 * oscillator and PLL1; the flash wait states, raised before the clock is; the
 * domain prescalers; the switch of sys_ck to PLL1. */
#include "fw_hal.h"
#include "stm32_rcc.h"

#define RCC_BASE 0x58024400u
#define RCC_CR (RCC_BASE + 0x00u)
#define RCC_CFGR (RCC_BASE + 0x10u)
#define RCC_D1CFGR (RCC_BASE + 0x18u)
#define RCC_D2CFGR (RCC_BASE + 0x1Cu)
#define RCC_D3CFGR (RCC_BASE + 0x20u)
#define RCC_PLLCKSELR (RCC_BASE + 0x28u)
#define RCC_PLLCFGR (RCC_BASE + 0x2Cu)
#define RCC_PLL1DIVR (RCC_BASE + 0x30u)
#define PWR_BASE 0x58024800u
#define PWR_CSR1 (PWR_BASE + 0x04u)
#define PWR_CR3 (PWR_BASE + 0x0Cu)
#define PWR_D3CR (PWR_BASE + 0x18u)
#define FLASH_ACR 0x52002000u

#define CR_HSEON (1u << 16)
#define CR_HSERDY (1u << 17)
#define CR_HSEBYP (1u << 18)
#define CR_PLL1ON (1u << 24)
#define CR_PLL1RDY (1u << 25)
#define CR3_BYPASS (1u << 0)
#define CR3_LDOEN (1u << 1)
#define CR3_SCUEN (1u << 2)
#define CSR1_ACTVOSRDY (1u << 13)
#define D3CR_VOSRDY (1u << 13)
#define D3CR_VOS_SHIFT 14u
#define CFGR_SW_MASK 7u
#define CFGR_SW_PLL1 3u
#define CFGR_SWS_MASK (7u << 3)
#define CFGR_SWS_PLL1 (3u << 3)

/* PLL1's input range (PLL1RGE) from the frequency after DIVM1. */
#define PLL_INPUT_HZ ((uint32_t)FW_CLOCK_SOURCE_HZ / (uint32_t)FW_PLL_M)
#define PLL1RGE (PLL_INPUT_HZ >= 8000000u ? 3u : PLL_INPUT_HZ >= 4000000u ? 2u : PLL_INPUT_HZ >= 2000000u ? 1u : 0u)
/* PLLCFGR: PLL1RGE in [3:2], the wide VCO (VCOSEL = 0), integer mode, and the
 * outputs that are used enabled (DIVP1EN, DIVQ1EN, DIVR1EN in bits 16-18). */
#define PLLCFGR_VALUE                                                                              \
    ((PLL1RGE << 2) | (1u << 16) | ((uint32_t)FW_PLL_Q_USED << 17) | ((uint32_t)FW_PLL_R_USED << 18))
/* PLL1DIVR holds each factor minus one: N in [8:0], P in [15:9], Q in [22:16], R in [30:24]. */
#define PLL1DIVR_VALUE                                                                             \
    (((uint32_t)FW_PLL_N - 1u) | (((uint32_t)FW_PLL_P - 1u) << 9) | (((uint32_t)FW_PLL_Q - 1u) << 16) | \
     (((uint32_t)FW_PLL_R - 1u) << 24))
#define PLLSRC (FW_CLOCK_SOURCE_EXTERNAL ? 2u : 0u) /* 0: HSI, 2: HSE */
/* VOS in PWR_D3CR: scale 1 is 0b11, 2 is 0b10, 3 is 0b01. */
#define VOS_VALUE (4u - (uint32_t)FW_VOLTAGE_SCALE)
/* WRHIGHFREQ: the flash programming delay. It only paces writes to the flash,
 * which this firmware never makes; 2 is the setting for the fastest AXI clocks. */
#define FLASH_WRHIGHFREQ 2u

fw_clocks fw_clock_init(void)
{
    /* Supply from the LDO (the NUCLEO-H743ZI2's configuration), then wait
     * until the regulator runs at the voltage of the current scale. */
    FW_REG32(PWR_CR3) = (FW_REG32(PWR_CR3) & ~(CR3_BYPASS | CR3_SCUEN | CR3_LDOEN)) | CR3_LDOEN;
    if (!fw_wait_bits(PWR_CSR1, CSR1_ACTVOSRDY, CSR1_ACTVOSRDY, FW_WAIT_TRIES)) {
        return stm32_reset_clocks();
    }
    FW_REG32(PWR_D3CR) = (FW_REG32(PWR_D3CR) & ~(3u << D3CR_VOS_SHIFT)) | (VOS_VALUE << D3CR_VOS_SHIFT);
    if (!fw_wait_bits(PWR_D3CR, D3CR_VOSRDY, D3CR_VOSRDY, FW_WAIT_TRIES)) {
        return stm32_reset_clocks();
    }
#if FW_CLOCK_SOURCE_EXTERNAL
    FW_REG32(RCC_CR) |= FW_CLOCK_HSE_BYPASS ? CR_HSEBYP : 0u;
    FW_REG32(RCC_CR) |= CR_HSEON;
    if (!fw_wait_bits(RCC_CR, CR_HSERDY, CR_HSERDY, FW_WAIT_TRIES)) {
        return stm32_reset_clocks();
    }
#endif
    FW_REG32(RCC_PLLCKSELR) = (FW_REG32(RCC_PLLCKSELR) & ~((0x3Fu << 4) | 3u)) |
                              ((uint32_t)FW_PLL_M << 4) | PLLSRC;
    FW_REG32(RCC_PLLCFGR) = (FW_REG32(RCC_PLLCFGR) & ~0x0007000Fu) | PLLCFGR_VALUE;
    FW_REG32(RCC_PLL1DIVR) = PLL1DIVR_VALUE;
    FW_REG32(RCC_CR) |= CR_PLL1ON;
    if (!fw_wait_bits(RCC_CR, CR_PLL1RDY, CR_PLL1RDY, FW_WAIT_TRIES)) {
        return stm32_reset_clocks();
    }
    FW_REG32(FLASH_ACR) = (uint32_t)FW_FLASH_WAIT_STATES | (FLASH_WRHIGHFREQ << 4);
    if (!fw_wait_bits(FLASH_ACR, 0x3Fu, (uint32_t)FW_FLASH_WAIT_STATES | (FLASH_WRHIGHFREQ << 4), FW_WAIT_TRIES)) {
        return stm32_reset_clocks();
    }
    FW_REG32(RCC_D1CFGR) = (STM32_AHB_PRESCALER(FW_DIV_CPU) << 8) | (STM32_APB_PRESCALER(FW_DIV_APB3) << 4) |
                           STM32_AHB_PRESCALER(FW_DIV_AHB);
    FW_REG32(RCC_D2CFGR) = (STM32_APB_PRESCALER(FW_DIV_APB2) << 8) | (STM32_APB_PRESCALER(FW_DIV_APB1) << 4);
    FW_REG32(RCC_D3CFGR) = STM32_APB_PRESCALER(FW_DIV_APB4) << 4;
    FW_REG32(RCC_CFGR) = (FW_REG32(RCC_CFGR) & ~CFGR_SW_MASK) | CFGR_SW_PLL1;
    if (!fw_wait_bits(RCC_CFGR, CFGR_SWS_MASK, CFGR_SWS_PLL1, FW_WAIT_TRIES)) {
        FW_REG32(RCC_D1CFGR) = 0u; /* back to the HSI with undivided buses */
        FW_REG32(RCC_D2CFGR) = 0u;
        FW_REG32(RCC_D3CFGR) = 0u;
        return stm32_reset_clocks();
    }
    return stm32_board_clocks();
}
