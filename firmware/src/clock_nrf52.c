/* clock_nrf52.c: nRF52840 clock set-up (nRF52840 Product Specification:
 * CLOCK, NVMC). The CPU always runs at 64 MHz; what the board chooses is the
 * HFCLK source: the 32 MHz crystal (hfxo) makes the UARTE's baud rate exact,
 * the internal oscillator (hfint) is what runs after reset. Also turns on the
 * flash instruction cache. */
#include "fw_hal.h"

#define CLOCK_TASKS_HFCLKSTART 0x40000000u
#define CLOCK_EVENTS_HFCLKSTARTED 0x40000100u
#define NVMC_ICACHECNF 0x4001E540u
#define ICACHECNF_CACHEEN 1u

fw_clocks fw_clock_init(void)
{
    FW_REG32(NVMC_ICACHECNF) = ICACHECNF_CACHEEN;
#if FW_CLOCK_SOURCE_EXTERNAL
    FW_REG32(CLOCK_EVENTS_HFCLKSTARTED) = 0u;
    FW_REG32(CLOCK_TASKS_HFCLKSTART) = 1u;
    /* Without the crystal HFCLK stays on HFINT: still 64 MHz, only less exact. */
    (void)fw_wait_bits(CLOCK_EVENTS_HFCLKSTARTED, 1u, 1u, FW_WAIT_TRIES);
#endif
    fw_clocks c = {FW_CLOCK_HZ, 0u};
    return c;
}
