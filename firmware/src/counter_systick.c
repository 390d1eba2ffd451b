/* counter_systick.c: SysTick as a 32-bit counter. SysTick is a 24-bit down
 * counter at the core clock; its interrupt counts the wraps (every 2^24
 * ticks), and the two are combined into (wraps << 24) | elapsed, which wraps
 * modulo 2^32 like the other counters.
 *
 * The read has to cope with a wrap the interrupt has not counted yet: if the
 * SysTick exception is pending (ICSR.PENDSTSET) and the value read is in the
 * upper half, the counter was read after the reload, so one more wrap has
 * happened than `wraps` says. */
#include "fw_hal.h"

#define SYST_CSR 0xE000E010u
#define SYST_RVR 0xE000E014u
#define SYST_CVR 0xE000E018u
#define SCB_ICSR 0xE000ED04u
#define ICSR_PENDSTSET (1u << 26)
#define CSR_ENABLE (1u << 0)
#define CSR_TICKINT (1u << 1)
#define CSR_CLKSOURCE_CPU (1u << 2)
#define RELOAD 0x00FFFFFFu

static volatile uint32_t wraps;

void SysTick_Handler(void);
void SysTick_Handler(void) { wraps++; }

void fw_counter_init(void)
{
    FW_REG32(SYST_RVR) = RELOAD;
    FW_REG32(SYST_CVR) = 0u;
    FW_REG32(SYST_CSR) = CSR_CLKSOURCE_CPU | CSR_TICKINT | CSR_ENABLE;
}

uint32_t fw_counter_ticks(void)
{
    uint32_t w, value, pending;
    do {
        w = wraps;
        value = FW_REG32(SYST_CVR);
        pending = FW_REG32(SCB_ICSR) & ICSR_PENDSTSET;
    } while (w != wraps);
    if (pending && value > RELOAD / 2u) {
        w++;
    }
    return (w << 24) | (RELOAD - value);
}
