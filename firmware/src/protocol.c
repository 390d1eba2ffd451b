/* protocol.c: the serial command interpreter (see firmware/PROTOCOL.md).
 *
 * Plain C99 with no hardware access: all effects go through fw_port.h, so the
 * host test suite compiles this file with sanitizers and fuzzes it.
 *
 * Robustness rules: a command is at most FW_CMD_MAX characters and is only
 * stored up to that; it is parsed into (pointer, length) tokens without
 * modifying or terminating it; numbers are parsed with explicit bounds; and
 * a `db` line is validated completely before any byte of it is stored.
 */
#include "protocol.h"

#include <string.h>

#include "fw_format.h"
#include "fw_port.h"

#define MAX_TOKENS 4

typedef struct {
    const char *s;
    size_t n;
} token;

/* ---------------------------------------------------------------- output */

static void put_n(const char *s, size_t n) { fw_port_write(s, n); }
static void put(const char *s) { put_n(s, strlen(s)); }
static void end_line(void) { put("\r\n"); }

static void put_u64(uint64_t v)
{
    char b[FW_FMT_U64_CHARS];
    put_n(b, fw_fmt_u64(b, v));
}

static void put_token(token t) { put_n(t.s, t.n); }

static void line(const char *s)
{
    put(s);
    end_line();
}

static void line_u64(const char *prefix, uint64_t v)
{
    put(prefix);
    put_u64(v);
    end_line();
}

static void line_str(const char *prefix, const char *s)
{
    put(prefix);
    put(s ? s : "?");
    put("]");
    end_line();
}

static void put_error(const char *message)
{
    put("e-[");
    put(message);
    put("]");
    end_line();
}

/* ---------------------------------------------------------------- parsing */

static int token_is(token t, const char *word)
{
    size_t i = 0;
    while (i < t.n && word[i] != '\0' && t.s[i] == word[i]) {
        i++;
    }
    return i == t.n && word[i] == '\0';
}

/* Splits cmd into at most MAX_TOKENS tokens; returns the count, or MAX_TOKENS + 1 if more. */
static int tokenize(const char *cmd, size_t len, token *out)
{
    int count = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && cmd[i] == ' ') {
            i++;
        }
        if (i == len) {
            break;
        }
        size_t start = i;
        while (i < len && cmd[i] != ' ') {
            i++;
        }
        if (count == MAX_TOKENS) {
            return MAX_TOKENS + 1;
        }
        out[count].s = cmd + start;
        out[count].n = i - start;
        count++;
    }
    return count;
}

/* A decimal number in [lo, hi]; returns 0 on anything else (sign, letters, overflow). */
static int parse_uint(token t, uint32_t lo, uint32_t hi, uint32_t *value)
{
    uint64_t v = 0;
    if (t.n == 0 || t.n > 10) {
        return 0;
    }
    for (size_t i = 0; i < t.n; i++) {
        if (t.s[i] < '0' || t.s[i] > '9') {
            return 0;
        }
        v = v * 10u + (uint64_t)(t.s[i] - '0');
    }
    if (v < lo || v > hi) {
        return 0;
    }
    *value = (uint32_t)v;
    return 1;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* ---------------------------------------------------------------- model helpers */

static size_t model_input_bytes(void)
{
    size_t total = 0;
    for (int i = 0; i < fw_model_num_inputs(); i++) {
        total += fw_model_input_size(i);
    }
    return total;
}

/* Copies the db buffer into the model's inputs, in input order. */
static int copy_inputs(const fw_protocol *p)
{
    size_t offset = 0;
    for (int i = 0; i < fw_model_num_inputs(); i++) {
        size_t n = fw_model_input_size(i);
        void *dst = fw_model_input(i);
        if (dst == NULL || offset + n > p->loaded) {
            return 0;
        }
        memcpy(dst, p->buffer + offset, n);
        offset += n;
    }
    return 1;
}

static size_t dtype_bytes(int dtype)
{
    switch (dtype) {
    case FW_DTYPE_INT8:
    case FW_DTYPE_UINT8:
        return 1;
    case FW_DTYPE_INT16:
        return 2;
    case FW_DTYPE_INT32:
    case FW_DTYPE_FLOAT32:
        return 4;
    default:
        return 0;
    }
}

/* Element k of an output as float: TFLite's dequantization (q - zero_point) * scale,
 * which its reference kernel computes in double and rounds to float. In float
 * it is the same number while |q - zero_point| < 2^24 (every int8, uint8 and
 * int16 output): the double product of two 24-bit values is exact, and one
 * float multiplication rounds it the same way. Float32 outputs as they are. */
static float output_value(const uint8_t *data, int dtype, size_t k, float scale, int32_t zero_point)
{
    int32_t q;
    switch (dtype) {
    case FW_DTYPE_INT8: {
        int8_t v;
        memcpy(&v, data + k, 1);
        q = v;
        break;
    }
    case FW_DTYPE_UINT8:
        q = data[k];
        break;
    case FW_DTYPE_INT16: {
        int16_t v;
        memcpy(&v, data + 2 * k, 2);
        q = v;
        break;
    }
    case FW_DTYPE_INT32:
        memcpy(&q, data + 4 * k, 4);
        break;
    default: { /* FW_DTYPE_FLOAT32 */
        float f;
        memcpy(&f, data + 4 * k, 4);
        return f;
    }
    }
    return fw_dequantize(q, zero_point, scale);
}

/* ---------------------------------------------------------------- commands */

static void cmd_profile(void)
{
    const fw_info *info = fw_port_info();
    line("m-profile-[mcucompile-fw-1]");
    line_str("m-model-[", fw_model_name());
    line_str("m-board-[", info->board);
    line_str("m-variant-[", info->variant);
    line_str("m-counter-[", info->unit);
    line_u64("m-clock-hz-", info->clock_hz);
    line_u64("m-input-bytes-", model_input_bytes());
    line_u64("m-outputs-", (uint64_t)fw_model_num_outputs());
    line_u64("m-layers-", (uint64_t)fw_model_num_layers());
}

static void cmd_db(fw_protocol *p, const token *args, int nargs)
{
    if (nargs == 0) {
        put_error("db needs a subcommand: db load N, db print or db <hex bytes>");
        return;
    }
    if (token_is(args[0], "load")) {
        uint32_t n;
        size_t want = model_input_bytes();
        if (nargs != 2 || !parse_uint(args[1], 1, 0xffffffffu, &n)) {
            put_error("db load needs one byte count, e.g. db load 1960");
            return;
        }
        if (n != want) {
            put("e-[db load: the model input is ");
            put_u64(want);
            put(" bytes, not ");
            put_u64(n);
            line("]");
            return;
        }
        if (want > p->capacity) {
            put_error("db load: the firmware's input buffer is smaller than the model input");
            return;
        }
        p->expected = want;
        p->loaded = 0;
        put("m-[Expecting ");
        put_u64(want);
        line(" bytes]");
        return;
    }
    if (token_is(args[0], "print")) {
        if (nargs != 1) {
            put_error("db print takes no arguments");
            return;
        }
        for (size_t i = 0; i < p->loaded; i++) {
            char h[2];
            put(i % 8u == 0 ? "m-buffer-" : "-");
            put_n(h, fw_fmt_hex8(h, p->buffer[i]));
            if (i % 8u == 7u || i + 1 == p->loaded) {
                end_line();
            }
        }
        return;
    }
    /* db <hex>: check everything first, then store. */
    if (nargs != 1) {
        put_error("db takes one string of hex digits (no spaces)");
        return;
    }
    token hex = args[0];
    if (p->expected == 0) {
        put_error("db: no load in progress: send db load N first");
        return;
    }
    if (p->loaded == p->expected) {
        put_error("db: the buffer is already full: send db load N to start again");
        return;
    }
    if (hex.n % 2u != 0) {
        put_error("db: odd number of hex digits");
        return;
    }
    for (size_t i = 0; i < hex.n; i++) {
        if (hex_value(hex.s[i]) < 0) {
            put("e-[db: not a hex digit: '");
            put_n(hex.s + i, 1);
            line("']");
            return;
        }
    }
    size_t nbytes = hex.n / 2u;
    if (nbytes > p->expected - p->loaded) {
        put("e-[db: ");
        put_u64(nbytes);
        put(" bytes but only ");
        put_u64(p->expected - p->loaded);
        line(" more expected]");
        return;
    }
    for (size_t i = 0; i < nbytes; i++) {
        p->buffer[p->loaded++] = (uint8_t)(hex_value(hex.s[2 * i]) * 16 + hex_value(hex.s[2 * i + 1]));
    }
    if (p->loaded == p->expected) {
        line("m-load-done");
    }
}

static void print_results(void)
{
    if (fw_model_num_outputs() < 1) {
        put_error("The model has no outputs");
        return;
    }
    int dtype = fw_model_output_dtype(0);
    size_t size = dtype_bytes(dtype);
    const uint8_t *data = (const uint8_t *)fw_model_output(0);
    if (size == 0 || data == NULL) {
        put_error("Output 0 has a type the firmware cannot print: use results-raw");
        return;
    }
    float scale = fw_model_output_scale(0);
    int32_t zero_point = fw_model_output_zero_point(0);
    size_t count = fw_model_output_size(0) / size;
    put("m-results-[");
    for (size_t k = 0; k < count; k++) {
        char b[FW_FMT_FLOAT_CHARS];
        if (k > 0) {
            put(",");
        }
        put_n(b, fw_fmt_float(b, output_value(data, dtype, k, scale, zero_point)));
    }
    line("]");
}

static void inference_failed(int status)
{
    char b[12];
    put("e-[Inference failed: status ");
    put_n(b, fw_fmt_i32(b, (int32_t)status));
    line("]");
}

static void cmd_infer(fw_protocol *p, const token *args, int nargs)
{
    uint32_t n = 1, warmup = 0;
    if (nargs > 2 || (nargs >= 1 && !parse_uint(args[0], 1, FW_MAX_ITERATIONS, &n)) ||
        (nargs == 2 && !parse_uint(args[1], 0, FW_MAX_ITERATIONS, &warmup))) {
        put_error("infer N W: N inferences (1..1000000) after W warm-ups (0..1000000)");
        return;
    }
    if (p->expected == 0 || p->loaded != p->expected) {
        put_error("Input not loaded: send db load N and the db lines first");
        return;
    }
    p->have_results = 0;
    line_u64("m-warmup-start-", warmup);
    for (uint32_t i = 0; i < warmup; i++) {
        int status = copy_inputs(p) ? fw_model_invoke() : -1;
        if (status != 0) {
            inference_failed(status);
            return;
        }
    }
    line("m-warmup-done");
    line_u64("m-infer-start-", n);
    line_u64("m-lap-us-", fw_port_units_to_us(fw_port_now()));
    uint64_t min = UINT64_MAX, max = 0, total = 0, last = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!copy_inputs(p)) {
            inference_failed(-1);
            return;
        }
        uint64_t t0 = fw_port_now();
        int status = fw_model_invoke();
        uint64_t t1 = fw_port_now();
        if (status != 0) {
            inference_failed(status);
            return;
        }
        last = t1 - t0;
        total += last;
        min = last < min ? last : min;
        max = last > max ? last : max;
    }
    line_u64("m-lap-us-", fw_port_units_to_us(fw_port_now()));
    line("m-infer-done");
    p->have_results = 1;
    p->last = last;
    p->min = min;
    p->max = max;
    p->total = total;
    p->iterations = n;
    print_results();
}

static void cmd_results_raw(void)
{
    for (int i = 0; i < fw_model_num_outputs(); i++) {
        const uint8_t *data = (const uint8_t *)fw_model_output(i);
        size_t n = data ? fw_model_output_size(i) : 0;
        put("m-results-raw-");
        put_u64((uint64_t)i);
        put("-[");
        for (size_t k = 0; k < n; k++) {
            char h[2];
            put_n(h, fw_fmt_hex8(h, data[k]));
        }
        line("]");
    }
}

static void cmd_cycles(const fw_protocol *p)
{
    line_u64("m-cycles-", p->last);
    line_u64("m-cycles-min-", p->min);
    line_u64("m-cycles-max-", p->max);
    line_u64("m-cycles-total-", p->total);
    line_u64("m-iterations-", p->iterations);
}

static void cmd_layers(void)
{
    int layers = fw_model_num_layers();
    int profiled = 0;
    line_u64("m-layers-", (uint64_t)(layers > 0 ? layers : 0));
    for (int i = 0; i < layers; i++) {
        uint64_t count;
        if (!fw_port_layer_count(i, &count)) {
            continue;
        }
        profiled++;
        put("m-layer-");
        put_u64((uint64_t)i);
        put("-");
        put_u64(count);
        line_str("-[", fw_model_layer_name(i));
    }
    if (profiled < layers) {
        put("e-[Only ");
        put_u64((uint64_t)profiled);
        put(" of ");
        put_u64((uint64_t)layers);
        line(" layers profiled]");
    }
}

static void cmd_help(void)
{
    line("mcucompile device firmware: end each command with a percent sign");
    line("name            the device's name");
    line("profile         model, board, counter unit, input size");
    line("timestamp       microseconds since boot");
    line("db load N       start loading N input bytes");
    line("db HEX          load bytes (at most 31 per command)");
    line("db print        show the loaded bytes");
    line("infer N W       N timed inferences after W warm-ups");
    line("results         output 0, dequantized");
    line("results-raw     every output's bytes in hex");
    line("cycles          counts of the last infer");
    line("layers          per-layer counts of the last inference");
    line("stack           stack high-water mark");
}

static int check_no_args(const char *name, int nargs)
{
    if (nargs != 0) {
        put("e-[");
        put(name);
        line(" takes no arguments]");
        return 0;
    }
    return 1;
}

static int check_results(const fw_protocol *p)
{
    if (!p->have_results) {
        put_error("No results: run infer first");
        return 0;
    }
    return 1;
}

static void dispatch(fw_protocol *p)
{
    token tokens[MAX_TOKENS];
    int count = tokenize(p->cmd, p->len, tokens);
    if (count == 0) {
        return;
    }
    if (count > MAX_TOKENS) {
        put_error("Too many arguments");
        return;
    }
    token name = tokens[0];
    const token *args = tokens + 1;
    int nargs = count - 1;

    if (token_is(name, "db")) {
        cmd_db(p, args, nargs);
    } else if (token_is(name, "infer")) {
        cmd_infer(p, args, nargs);
    } else if (token_is(name, "name")) {
        if (check_no_args("name", nargs)) {
            line("m-name-dut-[mcucompile]");
        }
    } else if (token_is(name, "profile")) {
        if (check_no_args("profile", nargs)) {
            cmd_profile();
        }
    } else if (token_is(name, "timestamp")) {
        if (check_no_args("timestamp", nargs)) {
            line_u64("m-lap-us-", fw_port_units_to_us(fw_port_now()));
        }
    } else if (token_is(name, "results")) {
        if (check_no_args("results", nargs) && check_results(p)) {
            print_results();
        }
    } else if (token_is(name, "results-raw")) {
        if (check_no_args("results-raw", nargs) && check_results(p)) {
            cmd_results_raw();
        }
    } else if (token_is(name, "cycles")) {
        if (check_no_args("cycles", nargs) && check_results(p)) {
            cmd_cycles(p);
        }
    } else if (token_is(name, "layers")) {
        if (check_no_args("layers", nargs) && check_results(p)) {
            cmd_layers();
        }
    } else if (token_is(name, "stack")) {
        if (check_no_args("stack", nargs)) {
            line_u64("m-stack-used-", fw_port_stack_used());
            line_u64("m-stack-size-", fw_port_stack_size());
        }
    } else if (token_is(name, "help")) {
        if (check_no_args("help", nargs)) {
            cmd_help();
        }
    } else {
        put("e-[Unknown command: ");
        put_token(name);
        line("]");
    }
}

/* ---------------------------------------------------------------- entry points */

void fw_protocol_init(fw_protocol *p, uint8_t *buffer, size_t capacity)
{
    memset(p, 0, sizeof *p);
    p->buffer = buffer;
    p->capacity = capacity;
}

void fw_protocol_boot(fw_protocol *p)
{
    (void)p;
    line("m-init-done");
    line("m-ready");
}

void fw_protocol_feed(fw_protocol *p, int byte)
{
    int c = byte & 0xff;
    if (c == '\r' || c == '\n') {
        return;
    }
    if (c == FW_CMD_TERMINATOR) {
        if (p->too_long) {
            put_error("Command too long: at most 80 characters per command");
        } else if (p->bad_byte) {
            put_error("Invalid byte in command: only printable ASCII is allowed");
        } else {
            dispatch(p);
        }
        line("m-ready");
        p->len = 0;
        p->too_long = 0;
        p->bad_byte = 0;
        return;
    }
    if (c == '\t') {
        c = ' ';
    }
    if (c < 0x20 || c > 0x7e) {
        p->bad_byte = 1;
        return;
    }
    if (p->len == FW_CMD_MAX) {
        p->too_long = 1;
        return;
    }
    p->cmd[p->len++] = (char)c;
}
