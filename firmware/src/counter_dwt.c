/* counter_dwt.c: the DWT cycle counter (CYCCNT), 32 bits at the core clock.
 * QEMU does not implement it (it reads 0): the QEMU variant uses a timer. */
#include "fw_hal.h"

#define DEMCR 0xE000EDFCu
#define DEMCR_TRCENA (1u << 24)
#define DWT_CTRL 0xE0001000u
#define DWT_CYCCNT 0xE0001004u
#define DWT_LAR 0xE0001FB0u
#define DWT_CTRL_CYCCNTENA 1u

void fw_counter_init(void)
{
    FW_REG32(DEMCR) |= DEMCR_TRCENA;
    FW_REG32(DWT_LAR) = 0xC5ACCE55u; /* Cortex-M7 locks the DWT until this key is written */
    FW_REG32(DWT_CYCCNT) = 0u;
    FW_REG32(DWT_CTRL) |= DWT_CTRL_CYCCNTENA;
}

uint32_t fw_counter_ticks(void) { return FW_REG32(DWT_CYCCNT); }
