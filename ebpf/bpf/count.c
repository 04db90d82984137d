/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * pfs_count: exact per-CPU counters per rule. A rule matches the UDP destination
 * port and optionally one payload byte at an offset equal to an immediate. The
 * per-packet cost does not grow with the number of rules: one hash lookup of the
 * port, then one array lookup per distinct payload offset of that port.
 * Normative: specs/xdp.md.
 */
#include "pfs_xdp.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pfs_count_cfg);
} pfs_count_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PFS_MAX_PORTS);
	__type(key, __u16);
	__type(value, struct pfs_port_cfg);
} pfs_count_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PFS_BYTE_SLOTS * 256);
	__type(key, __u32);
	__type(value, __u32);
} pfs_count_bytes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PFS_MAX_RULES);
	__type(key, __u32);
	__type(value, struct pfs_counter);
} pfs_count_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PFS_STATS);
	__type(key, __u32);
	__type(value, struct pfs_counter);
} pfs_count_stats SEC(".maps");

static __always_inline int count_rule(__u32 rule_plus_one, __u64 len)
{
	if (rule_plus_one == 0 || rule_plus_one > PFS_MAX_RULES)
		return 0;
	pfs_bump(&pfs_count_counters, rule_plus_one - 1, len);
	return 1;
}

/* The byte rule of one (offset, slot) of a port, if the payload reaches it. */
static __always_inline int count_byte_rule(struct pfs_port_slot *ps, void *payload,
					   void *data_end, __u64 len)
{
	__u32 off = ps->offset;
	__u32 slot = ps->slot;
	if (off > PFS_MAX_PAYLOAD_OFFSET || slot >= PFS_BYTE_SLOTS)
		return 0;
	__u8 *b = (__u8 *)payload + off;
	if ((void *)(b + 1) > data_end)
		return 0; /* payload too short for this offset: no match */
	__u32 idx = slot * 256 + *b;
	__u32 *r = bpf_map_lookup_elem(&pfs_count_bytes, &idx);
	if (!r)
		return 0;
	return count_rule(*r, len);
}

SEC("xdp")
int pfs_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 len = (__u64)(data_end - data);
	struct pfs_udp4 u;

	enum pfs_parse p = pfs_parse_udp4(data, data_end, &u);
	if (p != PFS_PARSE_UDP4) {
		pfs_bump(&pfs_count_stats, p == PFS_PARSE_SHORT ? PFS_STAT_SHORT : PFS_STAT_OTHER,
			 len);
		return XDP_PASS;
	}

	int matched = 0;
	__u16 port = u.dport;
	struct pfs_port_cfg *pc = bpf_map_lookup_elem(&pfs_count_ports, &port);
	if (pc) {
		matched += count_rule(pc->port_rule, len);
		__u32 n = pc->n_slots;
#pragma unroll
		for (__u32 i = 0; i < PFS_MAX_SLOTS_PER_PORT; i++) {
			if (i < n)
				matched += count_byte_rule(&pc->slots[i], u.payload, data_end, len);
		}
	}

	if (!matched) {
		pfs_bump(&pfs_count_stats, PFS_STAT_STRAY, len);
		return XDP_PASS;
	}
	pfs_bump(&pfs_count_stats, PFS_STAT_MATCHED, len);
	__u32 zero = 0;
	struct pfs_count_cfg *cfg = bpf_map_lookup_elem(&pfs_count_cfg, &zero);
	if (cfg && cfg->action == XDP_DROP)
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
