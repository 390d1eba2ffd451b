/* main.c: the device-under-test loop. Brings up the clocks, the UART and the
 * counter, then feeds every received byte to the protocol interpreter. */
#include <string.h>

#include "fw_hal.h"
#include "fw_port.h"
#include "protocol.h"

/* The input buffer sized for the model's inputs (model_glue.c). */
extern uint8_t fw_input_buffer[];
extern const size_t fw_input_capacity;

/* clock_hz is the clock actually reached (fw_clock_init), so that `profile`
 * tells a board whose oscillator did not start from one that runs at speed. */
static fw_info info = {
    FW_BOARD_NAME,
    FW_VARIANT,
    FW_UNIT_NAME,
    FW_CLOCK_HZ,
};

const fw_info *fw_port_info(void) { return &info; }

void fw_port_write(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fw_uart_putc(s[i]);
    }
}

static fw_protocol protocol;

int main(void)
{
#if FW_L1_CACHES
    fw_caches_enable();
#endif
    fw_clocks clocks = fw_clock_init();
    info.clock_hz = clocks.core_hz;
    fw_uart_init(clocks.uart_hz);
    fw_counter_init();
    fw_protocol_init(&protocol, fw_input_buffer, fw_input_capacity);
    fw_protocol_boot(&protocol);
    for (;;) {
        fw_protocol_feed(&protocol, fw_uart_getc());
    }
}
