/* counter_cmsdk_timer.c: a CMSDK APB timer as a free-running 32-bit counter.
 * It counts down from RELOAD at its PCLK; with RELOAD = 0xFFFFFFFF one period
 * is 2^32 ticks, so differences of the up-count below are right modulo 2^32.
 * Under QEMU the timer runs on the virtual clock, which `-icount shift=0`
 * advances by exactly 1 ns per instruction. */
#include "fw_hal.h"

#define TIMER_CTRL (FW_COUNTER_BASE + 0x00u)
#define TIMER_VALUE (FW_COUNTER_BASE + 0x04u)
#define TIMER_RELOAD (FW_COUNTER_BASE + 0x08u)
#define CTRL_ENABLE 1u

void fw_counter_init(void)
{
    FW_REG32(TIMER_CTRL) = 0u;
    FW_REG32(TIMER_RELOAD) = 0xFFFFFFFFu;
    FW_REG32(TIMER_VALUE) = 0xFFFFFFFFu;
    FW_REG32(TIMER_CTRL) = CTRL_ENABLE; /* no interrupt */
}

uint32_t fw_counter_ticks(void) { return 0xFFFFFFFFu - FW_REG32(TIMER_VALUE); }
