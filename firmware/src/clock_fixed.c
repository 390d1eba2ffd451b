/* clock_fixed.c: no clock set-up. For machines that run at a fixed clock (the
 * QEMU MPS2 boards, whose 25 MHz SYSCLK feeds the CPU and the CMSDK UART) and
 * boards without a family file. */
#include "fw_hal.h"

fw_clocks fw_clock_init(void)
{
#ifdef FW_UART_CLOCK_HZ
    fw_clocks c = {FW_CLOCK_HZ, FW_UART_CLOCK_HZ};
#else
    fw_clocks c = {FW_CLOCK_HZ, 0u};
#endif
    return c;
}
