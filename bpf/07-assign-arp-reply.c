/* 07-assign-arp-reply.c — assignment 07.A2: answer ARP in XDP.
 *
 * Your code is spliced into bpf/07-xdp-arp-reply.c in place of its `arp-reply` region.
 * The program has already checked that the frame is an Ethernet/IPv4 ARP *request*
 * for the address in arp_config, and that all of it is inside the packet. Turn it into
 * the reply, in place, and send it back out of the interface it came from.
 *
 *   struct arp_eth_ipv4 { u8 sha[6]; u8 spa[4]; u8 tha[6]; u8 tpa[4]; };  (sender/target MAC/IPv4)
 *   struct arp_config   { u8 mac[6]; u8 pad[2]; u8 ip[4]; };              (our MAC and address)
 *   arp_replies         a per-CPU array with one u64: count each reply you send
 *
 * Check it from the lab: check_arp_reply("bpf/07-assign-arp-reply.c").
 */
static __always_inline int arp_reply(struct ethhdr *eth, struct arphdr *arp, struct arp_eth_ipv4 *body,
                                     struct arp_config *cfg)
{
    /* TODO 1: the ARP opcode becomes a reply (ARPOP_REPLY, in network byte order). */
    /* TODO 2: the asker (sha, spa) becomes the target (tha, tpa); we (cfg) become the sender.
     *         Mind the order: copy the asker's fields before you overwrite them. */
    /* TODO 3: the Ethernet header goes back to where the frame came from, from our MAC. */
    /* TODO 4: count the reply in arp_replies[0]. */
    return XDP_PASS;  /* TODO 5: which action sends the frame back out of the same interface? */
}
