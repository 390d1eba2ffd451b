/* fw_wait.c: bounded polling of a hardware flag, shared by the clock drivers. */
#include "fw_hal.h"

int fw_wait_bits(uint32_t reg, uint32_t mask, uint32_t value, uint32_t tries)
{
    while (tries--) {
        if ((FW_REG32(reg) & mask) == value) {
            return 1;
        }
    }
    return 0;
}
