/* 11c-assign-reply-headers.c — assignment 11c.A2: the reply's Ethernet, IPv4 and UDP headers.
 *
 * Your code is spliced into bpf/11c-dhcp-fastpath.c in place of its `reply-headers` region.
 * build_reply() has already resized the frame to the reply's length (the 802.1Q tag, if any,
 * stays between Ethernet and IPv4: eth and ip point at the right places) and rewritten the
 * BOOTP message (op 2, yiaddr, options; ciaddr is 0 in an OFFER). It calls reply_headers()
 * with the request's headers still in place, then fills in the UDP checksum itself.
 *
 *   bp->ciaddr, bp->flags, bp->chaddr   as the client sent them (network byte order)
 *   yiaddr                               the address the lease gives the client
 *   pool->server_id, pool->server_mac    our IPv4 address and MAC
 *   DH_BOOTP_LEN                         the BOOTP message's length (300)
 *
 * Addressing, RFC 2131 4.1: ciaddr set -> unicast to ciaddr at chaddr; else the BROADCAST bit
 * (0x8000 in flags) set -> 255.255.255.255 at ff:ff:ff:ff:ff:ff; else yiaddr at chaddr.
 *
 * Check it from the lab: check_reply_headers("bpf/11c-assign-reply-headers.c").
 */
static __always_inline void reply_headers(struct ethhdr *eth, struct iphdr *ip, struct udphdr *udp,
                                          struct bootp *bp, __be32 yiaddr, struct pool *pool)
{
    /* TODO 1: choose the destination address and MAC (RFC 2131 4.1 above); the source MAC is ours. */
    /* TODO 2: a fresh IPv4 header from us: version 4, ihl 5, tos 0, id 0, no fragment bits, ttl 64,
     *         UDP, total length for an IPv4 + UDP header and the BOOTP message (network byte order). */
    /* TODO 3: the IPv4 header checksum, over the finished header: pl_ipv4_csum(ip). */
    /* TODO 4: UDP from port 67 (server) to 68 (client), its length (header + BOOTP message). */
}
