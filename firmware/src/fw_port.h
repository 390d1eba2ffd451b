/* fw_port.h: everything the protocol interpreter (protocol.c) needs from the
 * rest of the firmware. protocol.c touches no hardware: on a board these are
 * implemented by main.c, fw_time.c, startup.c and the rendered model_glue.c;
 * the host fuzzing harness (tests/data/protocol_host.c) implements them with
 * stand-ins, so the same protocol.c is tested on the host.
 */
#ifndef FW_PORT_H
#define FW_PORT_H

#include <stddef.h>
#include <stdint.h>

/* Element types of model outputs: the same codes as MCC_DTYPE_* in mcc_common.h
 * (model_glue.c checks that at compile time). */
#define FW_DTYPE_INT8 1
#define FW_DTYPE_UINT8 2
#define FW_DTYPE_INT16 3
#define FW_DTYPE_INT32 4
#define FW_DTYPE_FLOAT32 5

/* What `profile` reports about the build. */
typedef struct {
    const char *board;     /* board name from its YAML file */
    const char *variant;   /* "qemu" or "board" */
    const char *unit;      /* what counts count: "instructions" or "cycles" */
    uint32_t clock_hz;     /* the board's core clock */
} fw_info;

const fw_info *fw_port_info(void);

/* Writes n bytes to the serial line (blocking). */
void fw_port_write(const char *s, size_t n);

/* A free-running count in fw_info.unit, extended to 64 bits. */
uint64_t fw_port_now(void);
uint64_t fw_port_units_to_us(uint64_t units);

/* Count of layer `layer` during the last invoke; 0 if the layer was not profiled. */
int fw_port_layer_count(int layer, uint64_t *count);

/* Stack high-water mark since boot and the stack's size, in bytes. */
size_t fw_port_stack_used(void);
size_t fw_port_stack_size(void);

/* The compiled model, through the model API (see model_glue.c). */
const char *fw_model_name(void);
int fw_model_invoke(void);
int fw_model_num_inputs(void);
void *fw_model_input(int i);
size_t fw_model_input_size(int i);
int fw_model_num_outputs(void);
void *fw_model_output(int i);
size_t fw_model_output_size(int i);
int fw_model_output_dtype(int i);
float fw_model_output_scale(int i);
int32_t fw_model_output_zero_point(int i);
int fw_model_num_layers(void);
const char *fw_model_layer_name(int i);

#endif /* FW_PORT_H */
