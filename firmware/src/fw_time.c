/* fw_time.c: turns the board's tick counter into the protocol's counts, and
 * implements the per-layer profiling hooks the model calls (MCC_LAYER_BEGIN /
 * MCC_LAYER_END, compiled in with -DMCC_PROFILE_HOOKS).
 *
 * Ticks wrap modulo 2^32; every read folds the ticks elapsed since the
 * previous read into a 64-bit total, which stays right as long as the counter
 * is read at least once per wrap (171 s for a 25 MHz timer, 19.9 s for DWT at
 * 216 MHz): inference code reads it at every layer.
 */
#include "fw_format.h"
#include "fw_hal.h"
#include "fw_port.h"

/* Per-layer tick table sized for the model (model_glue.c). */
extern uint32_t fw_layer_ticks[];
extern const int fw_layer_capacity;

/* fw_div_u64 divides by 32 bits: a second's units must fit them (QEMU's 1e9 is the most in use). */
typedef char fw_units_per_second_fits_32_bits[FW_UNITS_PER_SECOND <= 0xffffffffu ? 1 : -1];

static uint64_t total_ticks;
static uint32_t previous_ticks;
static uint32_t layer_start;

static uint64_t now_ticks(void)
{
    uint32_t t = fw_counter_ticks();
    total_ticks += (uint32_t)(t - previous_ticks);
    previous_ticks = t;
    return total_ticks;
}

uint64_t fw_port_now(void) { return now_ticks() * FW_UNITS_PER_TICK; }

uint64_t fw_port_units_to_us(uint64_t units)
{
    /* Split so that units * 1e6 cannot overflow. */
    uint32_t part;
    const uint64_t seconds = fw_div_u64(units, FW_UNITS_PER_SECOND, &part);
    return seconds * 1000000u + fw_div_u64((uint64_t)part * 1000000u, FW_UNITS_PER_SECOND, NULL);
}

void mcc_profile_layer_begin(int i);
void mcc_profile_layer_end(int i);

void mcc_profile_layer_begin(int i)
{
    (void)i;
    layer_start = fw_counter_ticks();
}

void mcc_profile_layer_end(int i)
{
    uint32_t t = fw_counter_ticks();
    if (i >= 0 && i < fw_layer_capacity) {
        fw_layer_ticks[i] = t - layer_start;
    }
}

int fw_port_layer_count(int layer, uint64_t *count)
{
    if (layer < 0 || layer >= fw_layer_capacity) {
        return 0;
    }
    *count = (uint64_t)fw_layer_ticks[layer] * FW_UNITS_PER_TICK;
    return 1;
}
