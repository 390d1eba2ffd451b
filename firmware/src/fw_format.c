/* fw_format.c: decimal, hex and float formatting for the protocol's replies.
 * The firmware has no printf: newlib's would cost flash and, for floats,
 * heap. Floats are printed from their bits with integer arithmetic, so the
 * firmware links no double-precision library (about 3.5 KB of flash), and
 * 64-bit numbers are divided here, so it links no 64-bit division either. */
#include "fw_format.h"

#include <string.h>

static const char hex_digits[] = "0123456789abcdef";

uint64_t fw_div_u64(uint64_t n, uint32_t d, uint32_t *rem)
{
    const uint32_t hi = (uint32_t)(n >> 32);
    const uint32_t q_hi = hi / d;
    uint32_t lo = (uint32_t)n;
    uint32_t q = 0;
    uint32_t r;
    if (hi == 0u) {                             /* most numbers: one 32-bit divide */
        q = lo / d;
        r = lo - q * d;
    } else {
        /* The high word with the core's divide, then the low word a bit at a
         * time; r < d, so r:bit fits 33 bits and the comparison is made in 64. */
        uint64_t r64 = hi - q_hi * d;
        for (int i = 0; i < 32; i++) {
            r64 = (r64 << 1) | (lo >> 31);
            lo <<= 1;
            q <<= 1;
            if (r64 >= d) {
                r64 -= d;
                q |= 1u;
            }
        }
        r = (uint32_t)r64;
    }
    if (rem != NULL) {
        *rem = r;
    }
    return ((uint64_t)q_hi << 32) | q;
}

float fw_dequantize(int32_t q, int32_t zero_point, float scale)
{
    /* |q - zero_point| < 2^32: its magnitude converts from uint32_t in one
     * rounding (a single instruction with an FPU), which is the rounding of the
     * signed 33-bit value; an int64_t conversion would pull in soft-float code. */
    const int64_t diff = (int64_t)q - zero_point;
    const float magnitude = (float)(uint32_t)(diff < 0 ? -diff : diff);
    return scale * (diff < 0 ? -magnitude : magnitude);
}

size_t fw_fmt_u64(char *dst, uint64_t v)
{
    char tmp[FW_FMT_U64_CHARS];
    size_t n = 0;
    do {
        uint32_t digit;
        v = fw_div_u64(v, 10u, &digit);
        tmp[n++] = (char)('0' + (int)digit);
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

/* |value| = m * 2^e exactly; then the fixed form is round(m * 1e6 * 2^e),
 * at most 50 bits, and the scientific form keeps m in 60-odd bits while it
 * trades powers of two for powers of ten (each truncation below 2^-59 of the
 * value, far under the seven digits shown). Rounding is half up. */
size_t fw_fmt_float(char *dst, float value)
{
    uint32_t bits;
    memcpy(&bits, &value, 4);
    const uint32_t biased = (bits >> 23) & 0xffu;
    const uint32_t frac = bits & 0x7fffffu;
    size_t n = 0;
    if (biased == 0xffu && frac != 0u) {
        dst[0] = 'n'; dst[1] = 'a'; dst[2] = 'n';
        return 3;
    }
    uint64_t m = biased ? (frac | 0x800000u) : frac;
    int e = biased ? (int)biased - 150 : -149;
    if (m != 0u && (bits >> 31)) {
        dst[n++] = '-';                         /* -0.0 prints as 0.000000 */
    }
    if (biased == 0xffu) {
        dst[n] = 'i'; dst[n + 1] = 'n'; dst[n + 2] = 'f';
        return n + 3;
    }
    /* Fixed for 0 and 1e-6 <= |v| < 1e9: e <= 6 keeps m << e below 2^30. */
    const uint64_t p = m * 1000000u;
    const int fixed = m == 0u || (e >= 0 ? e <= 6 && (m << e) < 1000000000u
                                          : e > -64 && (p >> -e) != 0u);
    if (fixed) {
        const uint64_t scaled = m == 0u ? 0u
                              : e >= 0 ? p << e : (p + (UINT64_C(1) << (-e - 1))) >> -e;
        uint32_t decimals;
        n += fw_fmt_u64(dst + n, fw_div_u64(scaled, 1000000u, &decimals));
        return n + six_decimals(dst + n, decimals);
    }
    int exponent = 0;                           /* |v| = m * 2^e * 10^exponent */
    while (e > 0) {
        if (m >> 63) {
            m = fw_div_u64(m, 10u, NULL);
            exponent++;
        } else {
            m <<= 1;
            e--;
        }
    }
    while (e < 0) {
        if (m <= UINT64_MAX / 10u) {
            m *= 10u;
            exponent--;
        } else {
            m >>= 1;
            e++;
        }
    }
    while (m >= 100000000u) {                   /* eight digits left (m >= 2^59 here) */
        m = fw_div_u64(m, 10u, NULL);
        exponent++;
    }
    uint32_t digits = ((uint32_t)m + 5u) / 10u; /* seven, rounded */
    exponent += 7;
    if (digits >= 10000000u) {                  /* 9999999.5 rounded up to 10^7 */
        digits /= 10u;
        exponent++;
    }
    dst[n++] = (char)('0' + (int)(digits / 1000000u));
    n += six_decimals(dst + n, digits % 1000000u);
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
