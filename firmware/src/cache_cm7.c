/* cache_cm7.c: enables the Cortex-M7 L1 instruction and data caches
 * (ARMv7-M Architecture Reference Manual B2.2, "Cache maintenance"; Cortex-M7
 * TRM, L1 caches). Both must be invalidated before they are turned on: after
 * reset their contents are undefined. Peripherals stay uncached (the default
 * memory map makes them Device memory), so the drivers need no maintenance. */
#include "fw_hal.h"

#define SCB_CCR 0xE000ED14u
#define SCB_CCSIDR 0xE000ED80u   /* geometry of the cache CSSELR selects */
#define SCB_CSSELR 0xE000ED84u
#define SCB_ICIALLU 0xE000EF50u  /* invalidate the whole instruction cache */
#define SCB_DCISW 0xE000EF60u    /* invalidate one data-cache line by set and way */

#define CCR_DC (1u << 16)
#define CCR_IC (1u << 17)

static inline void barriers(void)
{
    __asm__ volatile("dsb\n\tisb" ::: "memory");
}

void fw_caches_enable(void)
{
    barriers();
    FW_REG32(SCB_ICIALLU) = 0u;
    barriers();
    FW_REG32(SCB_CCR) |= CCR_IC;
    barriers();

    FW_REG32(SCB_CSSELR) = 0u; /* level 1, data cache */
    barriers();
    uint32_t ccsidr = FW_REG32(SCB_CCSIDR);
    uint32_t sets = ((ccsidr >> 13) & 0x7FFFu) + 1u;
    uint32_t ways = ((ccsidr >> 3) & 0x3FFu) + 1u;
    uint32_t set_shift = (ccsidr & 0x7u) + 4u;                       /* log2(line bytes) */
    uint32_t way_shift = ways > 1u ? (uint32_t)__builtin_clz(ways - 1u) : 0u; /* way in the top bits */
    for (uint32_t set = 0; set < sets; set++) {
        for (uint32_t way = 0; way < ways; way++) {
            FW_REG32(SCB_DCISW) = (set << set_shift) | (way_shift ? way << way_shift : 0u);
        }
    }
    barriers();
    FW_REG32(SCB_CCR) |= CCR_DC;
    barriers();
}
