/* csum.h — Internet checksums updated in place, shared by every program in bpf/ that rewrites headers.
 *
 * The Internet checksum (RFC 1071) of a header is ~S, where S is the ones'-complement
 * sum (16-bit words, carries added back in) of the bytes it covers — for TCP, UDP and
 * ICMPv6 including a pseudo-header with the addresses and the protocol number.
 * Ones'-complement has two zeros, +0 (0x0000) and -0 (0xffff), and a sum of words that
 * are not all zero is never +0. So a checksum computed from scratch is 0x0000 when
 * the covered words sum to -0, and 0xffff only when every covered word is zero.
 *
 * Contract. Every value is passed as it lies in the packet (network byte order): the
 * ones'-complement sum does not depend on byte order (RFC 1071, section 2(B)).
 *
 *   pl_csum_fold(sum)          a 32-bit sum of 16-bit words folded to 16 bits with
 *                              end-around carry (not complemented); 0 only for sum 0.
 *   pl_csum_replace2(check, old, new)
 *   pl_csum_replace4(check, old, new)
 *                              RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), for a changed
 *                              16-bit or 32-bit field: exactly that, no special case.
 *                              For the IPv4 header, TCP, ICMP and ICMPv6 checksums. The
 *                              result equals a recomputation from scratch whenever the
 *                              covered bytes after the change are not all zero — always
 *                              true for IPv4 (the version nibble), TCP and ICMPv6 (the
 *                              protocol number in the pseudo-header). It is never turned
 *                              from 0x0000 into 0xffff: for these checksums 0x0000 is the
 *                              right value whenever eqn. 3 gives it, except for an ICMPv4
 *                              message of all zero bytes — see pl_icmp_csum_zero_message().
 *   pl_udp_csum_replace2(check, old, new)
 *   pl_udp_csum_replace4(check, old, new)
 *                              the UDP checksum (RFC 768): a received 0 means "no
 *                              checksum" and stays 0 (nothing is written); otherwise eqn. 3,
 *                              and a result of 0x0000 is sent as 0xffff (a computed zero is
 *                              transmitted as all ones). Calls compose: apply one per field.
 *   pl_icmp_csum_zero_message(check, msg, len, data_end)
 *                              ICMPv4 only, after pl_csum_replace*(): ICMPv4 has no pseudo-
 *                              header, so its message can be all zero bytes (an echo reply
 *                              with id 0, sequence 0 and a zero payload). Eqn. 3 then gives
 *                              0x0000, which does not verify; the only right value is
 *                              0xffff. Writes 0xffff in exactly that case; reads the message
 *                              only when the checksum is 0x0000 (one reply in 65536), at most
 *                              PL_CSUM_MAX_SCAN bytes (a longer message is left as it is).
 *   pl_ipv4_csum(ip)           the checksum of a 20-byte IPv4 header (ihl 5) computed from
 *                              scratch; ip->check itself is not read, so it need not be 0.
 *
 * Include with:  #include "include/csum.h"   (bpf/ is on the include path).
 */
#ifndef PACKETLAB_CSUM_H
#define PACKETLAB_CSUM_H

#include <uapi/linux/types.h>
#include <uapi/linux/ip.h>

#ifndef PL_CSUM_MAX_SCAN
#define PL_CSUM_MAX_SCAN 4096      /* bytes pl_icmp_csum_zero_message() reads at most */
#endif

/* --8<-- [start:replace] */
static __always_inline __u16 pl_csum_fold(__u32 sum)
{
    sum = (sum & 0xffff) + (sum >> 16);     /* the carries, added back in ... */
    sum = (sum & 0xffff) + (sum >> 16);     /* ... and the carry that adding them can make */
    return (__u16)sum;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for a 16-bit field m -> m'. */
static __always_inline void pl_csum_replace2(__sum16 *check, __be16 old, __be16 new)
{
    __u32 s = (__u16)~*check;
    s += (__u16)~old;
    s += (__u16)new;
    *check = (__u16)~pl_csum_fold(s);
}

/* The same for a 32-bit field (an IPv4 address): two 16-bit words at once. */
static __always_inline void pl_csum_replace4(__sum16 *check, __be32 old, __be32 new)
{
    __u32 s = (__u16)~*check;
    s += (__u16)~(old & 0xffff);
    s += (__u16)~(old >> 16);
    s += new & 0xffff;
    s += new >> 16;
    *check = (__u16)~pl_csum_fold(s);
}
/* --8<-- [end:replace] */

/* --8<-- [start:udp] */
/* UDP: 0 in a received header means "no checksum" and stays 0; a computed 0 is sent as 0xffff. */
static __always_inline void pl_udp_csum_replace2(__sum16 *check, __be16 old, __be16 new)
{
    if (*check == 0)
        return;
    pl_csum_replace2(check, old, new);
    if (*check == 0)
        *check = 0xffff;
}

static __always_inline void pl_udp_csum_replace4(__sum16 *check, __be32 old, __be32 new)
{
    if (*check == 0)
        return;
    pl_csum_replace4(check, old, new);
    if (*check == 0)
        *check = 0xffff;
}
/* --8<-- [end:udp] */

/* --8<-- [start:icmp] */
/* ICMPv4 after pl_csum_replace*(): an all-zero message sums to +0, so its checksum is ~(+0) = 0xffff. */
static __always_inline void pl_icmp_csum_zero_message(__sum16 *check, const void *msg, __u32 len,
                                                      const void *data_end)
{
    if (*check != 0 || len > PL_CSUM_MAX_SCAN)
        return;
    __u32 i = 0;
    for (int n = 0; n < PL_CSUM_MAX_SCAN / 8; n++) {    /* 8 bytes a step: few enough for the verifier */
        if (i + 8 > len)
            break;
        const __u64 *p = msg + i;
        if ((const void *)(p + 1) > data_end || *p)
            return;                         /* truncated, or a non-zero byte: 0x0000 is right */
        i += 8;
    }
    for (int n = 0; n < 7; n++) {                       /* the last len % 8 bytes */
        if (i >= len)
            break;
        const __u8 *p = msg + i;
        if ((const void *)(p + 1) > data_end || *p)
            return;
        i += 1;
    }
    *check = 0xffff;
}
/* --8<-- [end:icmp] */

/* An IPv4 header's checksum from scratch (20 bytes, no options). */
static __always_inline __sum16 pl_ipv4_csum(const struct iphdr *ip)
{
    const __u16 *w = (const __u16 *)ip;
    __u32 s = 0;
#pragma unroll
    for (int i = 0; i < (int)(sizeof(*ip) / 2); i++)
        if (i != 5)                         /* word 5 is the checksum field itself */
            s += w[i];
    return (__sum16)~pl_csum_fold(s);
}

#endif /* PACKETLAB_CSUM_H */
