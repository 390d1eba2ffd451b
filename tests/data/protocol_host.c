/* protocol_host.c: runs firmware/src/protocol.c on the host, for
 * tests/test_protocol_parser.py (built with -fsanitize=address,undefined).
 *
 * Implements fw_port.h with a small stand-in model whose behaviour the test
 * knows: inputs int8[5] and uint8[3]; outputs int8[4] (scale 0.5, zero point
 * -3): out0[k] = in0[k] ^ in1[k % 3], and float32[2]: {sum(in0), sum(in1) / 2}.
 * Like a real arena, invoke overwrites its inputs, so the firmware must copy
 * them again before every inference. in0[0] == 127 makes invoke fail with
 * status 7. Layer 1 of 3 is not profiled.
 *
 * Framing on stdin/stdout: each request is a 4-byte little-endian length and
 * that many bytes, fed to a freshly initialised interpreter (after its boot
 * lines); each reply is a 4-byte length and everything it wrote.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fw_port.h"
#include "protocol.h"

static int8_t in0[5];
static uint8_t in1[3];
static int8_t out0[4];
static float out1[2];
static uint64_t clock_units;

static char *reply;
static size_t reply_len, reply_cap;

static const fw_info info = {"hostboard", "host", "instructions", 25000000u};

const fw_info *fw_port_info(void) { return &info; }

void fw_port_write(const char *s, size_t n)
{
    if (reply_len + n > reply_cap) {
        reply_cap = (reply_len + n) * 2;
        reply = realloc(reply, reply_cap);
        if (!reply) {
            abort();
        }
    }
    memcpy(reply + reply_len, s, n);
    reply_len += n;
}

uint64_t fw_port_now(void) { return clock_units += 1000u; }
uint64_t fw_port_units_to_us(uint64_t units) { return units / 1000u; }

int fw_port_layer_count(int layer, uint64_t *count)
{
    if (layer == 1 || layer < 0 || layer > 2) {
        return 0;
    }
    *count = 100u + (uint64_t)layer;
    return 1;
}

size_t fw_port_stack_used(void) { return 1234u; }
size_t fw_port_stack_size(void) { return 8192u; }

const char *fw_model_name(void) { return "standin"; }

int fw_model_invoke(void)
{
    if (in0[0] == 127) {
        return 7;
    }
    float s0 = 0.0f, s1 = 0.0f;
    for (int k = 0; k < 4; k++) {
        out0[k] = (int8_t)(in0[k] ^ (int8_t)in1[k % 3]);
    }
    for (int k = 0; k < 5; k++) {
        s0 += in0[k];
    }
    for (int k = 0; k < 3; k++) {
        s1 += in1[k];
    }
    out1[0] = s0;
    out1[1] = s1 / 2.0f;
    memset(in0, 0x55, sizeof in0); /* as an arena reusing input memory would */
    memset(in1, 0xAA, sizeof in1);
    return 0;
}

int fw_model_num_inputs(void) { return 2; }
void *fw_model_input(int i) { return i == 0 ? (void *)in0 : i == 1 ? (void *)in1 : NULL; }
size_t fw_model_input_size(int i) { return i == 0 ? sizeof in0 : i == 1 ? sizeof in1 : 0u; }
int fw_model_num_outputs(void) { return 2; }
void *fw_model_output(int i) { return i == 0 ? (void *)out0 : i == 1 ? (void *)out1 : NULL; }
size_t fw_model_output_size(int i) { return i == 0 ? sizeof out0 : i == 1 ? sizeof out1 : 0u; }
int fw_model_output_dtype(int i) { return i == 0 ? FW_DTYPE_INT8 : FW_DTYPE_FLOAT32; }
float fw_model_output_scale(int i) { return i == 0 ? 0.5f : 0.0f; }
int32_t fw_model_output_zero_point(int i) { return i == 0 ? -3 : 0; }
int fw_model_num_layers(void) { return 3; }

const char *fw_model_layer_name(int i)
{
    static const char *const names[] = {"alpha", "beta-2", NULL};
    return (i >= 0 && i < 3) ? names[i] : NULL;
}

static int read_exact(void *dst, size_t n)
{
    return fread(dst, 1, n, stdin) == n;
}

int main(void)
{
    for (;;) {
        unsigned char header[4];
        if (!read_exact(header, 4)) {
            return 0;
        }
        size_t n = (size_t)header[0] | (size_t)header[1] << 8 | (size_t)header[2] << 16 |
                   (size_t)header[3] << 24;
        unsigned char *request = malloc(n ? n : 1);
        if (!request || !read_exact(request, n)) {
            return 2;
        }
        /* Exactly the model's input size, so ASan catches any write past it. */
        uint8_t *buffer = malloc(8);
        fw_protocol *p = malloc(sizeof *p);
        if (!buffer || !p) {
            return 2;
        }
        memset(in0, 0, sizeof in0);
        memset(in1, 0, sizeof in1);
        memset(out0, 0, sizeof out0);
        memset(out1, 0, sizeof out1);
        clock_units = 0;
        reply_len = 0;
        fw_protocol_init(p, buffer, 8);
        fw_protocol_boot(p);
        for (size_t i = 0; i < n; i++) {
            fw_protocol_feed(p, request[i]);
        }
        unsigned char out_header[4] = {
            (unsigned char)reply_len, (unsigned char)(reply_len >> 8),
            (unsigned char)(reply_len >> 16), (unsigned char)(reply_len >> 24),
        };
        fwrite(out_header, 1, 4, stdout);
        fwrite(reply, 1, reply_len, stdout);
        fflush(stdout);
        free(request);
        free(buffer);
        free(p);
    }
}
