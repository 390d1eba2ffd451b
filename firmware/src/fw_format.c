/* fw_format.c: decimal, hex and float formatting for the protocol's replies.
 * The firmware has no printf: newlib's would cost flash and, for floats,
 * heap. Floats are printed from double arithmetic, which is exact enough for
 * six significant decimals of a float (bit-exact checks use raw bytes). */
#include "fw_format.h"

static const char hex_digits[] = "0123456789abcdef";

size_t fw_fmt_u64(char *dst, uint64_t v)
{
    char tmp[FW_FMT_U64_CHARS];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0u);
    for (size_t i = 0; i < n; i++) {
        dst[i] = tmp[n - 1 - i];
    }
    return n;
}

size_t fw_fmt_i32(char *dst, int32_t v)
{
    if (v < 0) {
        dst[0] = '-';
        /* -(INT32_MIN) does not fit an int32_t: negate in 64 bits. */
        return 1 + fw_fmt_u64(dst + 1, (uint64_t)(-(int64_t)v));
    }
    return fw_fmt_u64(dst, (uint64_t)v);
}

size_t fw_fmt_hex32(char *dst, uint32_t v)
{
    for (int i = 0; i < 8; i++) {
        dst[i] = hex_digits[(v >> (28 - 4 * i)) & 0xfu];
    }
    return 8;
}

size_t fw_fmt_hex8(char *dst, uint8_t v)
{
    dst[0] = hex_digits[v >> 4];
    dst[1] = hex_digits[v & 0xfu];
    return 2;
}

/* "." and six digits of frac (0..999999). */
static size_t six_decimals(char *dst, uint32_t frac)
{
    dst[0] = '.';
    for (int i = 6; i >= 1; i--) {
        dst[i] = (char)('0' + (int)(frac % 10u));
        frac /= 10u;
    }
    return 7;
}

size_t fw_fmt_float(char *dst, float value)
{
    size_t n = 0;
    double v = value;
    if (v != v) {
        dst[0] = 'n'; dst[1] = 'a'; dst[2] = 'n';
        return 3;
    }
    if (v < 0) {
        dst[n++] = '-';
        v = -v;
    }
    if (v > 3.5e38) { /* larger than any finite float */
        dst[n] = 'i'; dst[n + 1] = 'n'; dst[n + 2] = 'f';
        return n + 3;
    }
    if (v == 0.0 || (v >= 1e-6 && v < 1e9)) {
        uint64_t scaled = (uint64_t)(v * 1e6 + 0.5); /* < 1e15: exact in a double */
        n += fw_fmt_u64(dst + n, scaled / 1000000u);
        return n + six_decimals(dst + n, (uint32_t)(scaled % 1000000u));
    }
    int exponent = 0;
    while (v >= 10.0) {
        v /= 10.0;
        exponent++;
    }
    while (v < 1.0) {
        v *= 10.0;
        exponent--;
    }
    uint64_t scaled = (uint64_t)(v * 1e6 + 0.5); /* 1000000 .. 10000000 */
    if (scaled >= 10000000u) {                   /* 9.9999996 rounded up to 10 */
        scaled /= 10u;
        exponent++;
    }
    dst[n++] = (char)('0' + (int)(scaled / 1000000u));
    n += six_decimals(dst + n, (uint32_t)(scaled % 1000000u));
    dst[n++] = 'e';
    dst[n++] = exponent < 0 ? '-' : '+';
    if (exponent < 0) {
        exponent = -exponent;
    }
    if (exponent < 10) {
        dst[n++] = '0';
    }
    return n + fw_fmt_u64(dst + n, (uint64_t)exponent);
}
