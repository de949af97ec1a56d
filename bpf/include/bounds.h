/* bounds.h — lengths the verifier can follow on every supported kernel.
 *
 * Helpers such as bpf_xdp_load_bytes() take a length the verifier must see as
 * 1..max on the very register passed. C checks (`n > 0 && n <= max`) are not
 * enough everywhere: clang may fold them into one range check on a copy of the
 * register, or keep the value on the stack from before the check, and older
 * verifiers (Debian 12's 6.1) do not carry the bound back to the register the
 * helper gets ("R4 min value is negative", "invalid access to memory ... size=0").
 *
 * PL_LEN_1_TO(n, max) writes the bound in BPF assembly, which clang can neither
 * drop nor move: ((n - 1) & (max - 1)) + 1 is n itself for 1..max, and the
 * verifier reads the range 1..max off those three instructions. `max` must be
 * a power of two and `n` already 1..max (a larger n would wrap).
 *
 * Include with:  #include "include/bounds.h"
 */
#ifndef PACKETLAB_BOUNDS_H
#define PACKETLAB_BOUNDS_H

#define PL_LEN_1_TO(n, max)                                                                 \
    do {                                                                                    \
        _Static_assert(((max) & ((max) - 1)) == 0, "PL_LEN_1_TO: max must be a power of two"); \
        asm volatile("%[v] += -1\n\t%[v] &= %[mask]\n\t%[v] += 1" : [v] "+r"(n) : [mask] "i"((max) - 1)); \
    } while (0)

#endif
