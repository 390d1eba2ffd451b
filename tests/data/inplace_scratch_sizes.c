/* Prints the scratch sizes the in-place kernels declare, one line per
 * "ring_rows in_w out_c" triple on the command line, for tests/test_inplace.py
 * to compare with the Python mirrors in mcucompile/kernels/inplace.py. */
#include <stdio.h>
#include <stdlib.h>

#include "mcc_inplace.h"

int main(int argc, char **argv)
{
    for (int i = 1; i + 2 < argc; i += 3) {
        mcc_depthwise_conv2d_inplace_params dw = {0};
        mcc_pool_inplace_params pool = {0};
        mcc_pointwise_inplace_params pw = {0};
        dw.ring_rows = pool.ring_rows = (int32_t)atoi(argv[i]);
        dw.in_w = pool.in_w = (int32_t)atoi(argv[i + 1]);
        pw.out_c = (int32_t)atoi(argv[i + 2]);
        printf("%zu %zu %zu\n", mcc_depthwise_conv2d_inplace_s8_scratch_bytes(&dw),
               mcc_pool_inplace_s8_scratch_bytes(&pool), mcc_pointwise_inplace_s8_scratch_bytes(&pw));
    }
    return 0;
}
