/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * PacketFS XDP programs: the layouts shared with the Rust loader (pfs-ebpf,
 * src/abi.rs mirrors every struct here; a test compares sizes and offsets) and,
 * for the BPF target only, the packet parser both programs use.
 * Normative: specs/xdp.md.
 *
 * IPv4 only, Ethernet without VLAN tags. Ports in map keys are in host byte order.
 */
#ifndef PFS_XDP_H
#define PFS_XDP_H

#include <linux/types.h>

/* ---- limits ---- */
#define PFS_MAX_RULES 4096          /* counter rules (pfs_count_counters entries) */
#define PFS_MAX_PORTS 1024          /* distinct ports (pfs_count_ports, pfs_redirect_ports) */
#define PFS_MAX_SLOTS_PER_PORT 4    /* distinct payload offsets with byte rules, per port */
#define PFS_BYTE_SLOTS 64           /* (port, offset) pairs with byte rules, all ports */
#define PFS_MAX_PAYLOAD_OFFSET 4095 /* largest payload offset a byte rule may test */
#define PFS_MAX_QUEUES 64           /* pfs_xsks entries (rx queue index) */

/* ---- count.c ---- */

/* pfs_count_ports: HASH, key __u16 UDP destination port -> struct pfs_port_cfg. */
struct pfs_port_slot {
	__u16 offset; /* payload offset of the byte tested */
	__u16 slot;   /* which 256-entry block of pfs_count_bytes */
};

struct pfs_port_cfg {
	__u32 port_rule;   /* rule index + 1 of the port-only rule; 0 = none */
	__u32 n_slots;     /* used entries of slots[] (0..=PFS_MAX_SLOTS_PER_PORT) */
	struct pfs_port_slot slots[PFS_MAX_SLOTS_PER_PORT];
};

/*
 * pfs_count_bytes: ARRAY of PFS_BYTE_SLOTS * 256 __u32, index slot * 256 + byte
 * value -> rule index + 1 of the rule (port, offset, value); 0 = none.
 * pfs_count_counters: PERCPU_ARRAY of PFS_MAX_RULES struct pfs_counter.
 * pfs_count_stats: PERCPU_ARRAY of PFS_STATS struct pfs_counter (indices below).
 */
struct pfs_counter {
	__u64 packets;
	__u64 bytes; /* frame bytes as XDP sees them: Ethernet header to the end */
};

#define PFS_STAT_MATCHED 0 /* IPv4 UDP matching at least one rule (action applied) */
#define PFS_STAT_STRAY 1   /* IPv4 UDP matching no rule (passed) */
#define PFS_STAT_OTHER 2   /* not IPv4 UDP, or a non-first fragment (passed) */
#define PFS_STAT_SHORT 3   /* headers cut short or invalid (passed) */
#define PFS_STATS 4

/* pfs_count_cfg: ARRAY of 1 struct pfs_count_cfg. */
struct pfs_count_cfg {
	__u32 action; /* XDP action for matched packets: 1 XDP_DROP or 2 XDP_PASS */
	__u32 reserved;
};

/* ---- redirect.c ---- */

/* pfs_redirect_ports: HASH, key __u16 UDP destination port -> __u32 (1). */
/* pfs_xsks: XSKMAP, key rx queue index -> AF_XDP socket fd. */
/* pfs_redirect_stats: PERCPU_ARRAY of PFS_RSTATS struct pfs_counter. */
#define PFS_RSTAT_REDIRECTED 0 /* handed to bpf_redirect_map */
#define PFS_RSTAT_PASSED 1     /* everything else */
#define PFS_RSTATS 2

#ifdef __bpf__
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

enum pfs_parse {
	PFS_PARSE_UDP4 = 0,
	PFS_PARSE_OTHER = 1,
	PFS_PARSE_SHORT = 2,
};

struct pfs_udp4 {
	__u16 dport;   /* host order */
	void *payload; /* first UDP payload byte (may equal data_end) */
};

/* Ethernet (no VLAN) / IPv4 (any IHL) / UDP. Every access is bounds-checked. */
static __always_inline enum pfs_parse pfs_parse_udp4(void *data, void *data_end,
						     struct pfs_udp4 *out)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return PFS_PARSE_SHORT;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return PFS_PARSE_OTHER;
	struct iphdr *iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > data_end)
		return PFS_PARSE_SHORT;
	if (iph->version != 4 || iph->ihl < 5)
		return PFS_PARSE_SHORT;
	if (iph->protocol != IPPROTO_UDP)
		return PFS_PARSE_OTHER;
	if (iph->frag_off & bpf_htons(0x1fff))
		return PFS_PARSE_OTHER; /* not the first fragment: no UDP header */
	__u32 ihl_bytes = (__u32)iph->ihl * 4;
	struct udphdr *udp = (void *)iph + ihl_bytes;
	if ((void *)(udp + 1) > data_end)
		return PFS_PARSE_SHORT;
	out->dport = bpf_ntohs(udp->dest);
	out->payload = (void *)(udp + 1);
	return PFS_PARSE_UDP4;
}

static __always_inline void pfs_bump(void *map, __u32 index, __u64 bytes)
{
	struct pfs_counter *c = bpf_map_lookup_elem(map, &index);
	if (c) {
		c->packets += 1;
		c->bytes += bytes;
	}
}
#endif /* __bpf__ */

#endif /* PFS_XDP_H */
