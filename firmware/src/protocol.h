/* protocol.h: the serial command interpreter of firmware/PROTOCOL.md.
 *
 * Feed it every received byte; at each '%' it runs the command and writes the
 * reply (ending with "m-ready") through fw_port_write(). It keeps its state in
 * an fw_protocol the caller owns, never reads past its buffers, and answers
 * every command, however malformed.
 */
#ifndef FW_PROTOCOL_H
#define FW_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#define FW_CMD_MAX 80          /* characters between two '%' (EEMBC's EE_CMD_SIZE) */
#define FW_CMD_TERMINATOR '%'
#define FW_MAX_ITERATIONS 1000000u

typedef struct {
    /* The command being received. */
    char cmd[FW_CMD_MAX];
    size_t len;
    int too_long;              /* more than FW_CMD_MAX characters: discard up to '%' */
    int bad_byte;              /* a byte outside printable ASCII was received */

    /* The `db` input buffer: the model inputs, concatenated. */
    uint8_t *buffer;
    size_t capacity;
    size_t expected;           /* bytes announced by `db load`; 0 before any */
    size_t loaded;

    /* Timing of the last successful `infer`. */
    int have_results;
    uint64_t last, min, max, total;
    uint32_t iterations;
} fw_protocol;

/* buffer must hold the model's inputs (capacity bytes). */
void fw_protocol_init(fw_protocol *p, uint8_t *buffer, size_t capacity);

/* Prints the boot lines "m-init-done" and "m-ready". */
void fw_protocol_boot(fw_protocol *p);

/* One received byte (0..255). */
void fw_protocol_feed(fw_protocol *p, int byte);

#endif /* FW_PROTOCOL_H */
