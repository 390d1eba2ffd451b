/* fw_format.h: number formatting without printf (no stdio in the firmware).
 * Each function writes into dst (no terminating NUL) and returns the length. */
#ifndef FW_FORMAT_H
#define FW_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define FW_FMT_U64_CHARS 20    /* 18446744073709551615 */
#define FW_FMT_FLOAT_CHARS 18  /* -123456789.123456 is the longest: 17 */

/* n / d, and n % d in *rem when rem is not NULL. The firmware's only 64-bit
 * division: libgcc's general one (__aeabi_uldivmod) would add 700 B of flash. */
uint64_t fw_div_u64(uint64_t n, uint32_t d, uint32_t *rem);
/* (q - zero_point) * scale in float, the 33-bit difference rounded to float once. */
float fw_dequantize(int32_t q, int32_t zero_point, float scale);

size_t fw_fmt_u64(char *dst, uint64_t v);
size_t fw_fmt_i32(char *dst, int32_t v);
/* Eight lowercase hex digits. */
size_t fw_fmt_hex32(char *dst, uint32_t v);
/* Two lowercase hex digits. */
size_t fw_fmt_hex8(char *dst, uint8_t v);
/* [-]I.FFFFFF for 1e-6 <= |v| < 1e9 and 0, else [-]D.DDDDDDe[+-]XX; nan, inf, -inf. */
size_t fw_fmt_float(char *dst, float v);

#endif /* FW_FORMAT_H */
