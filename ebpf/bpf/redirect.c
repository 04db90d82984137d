/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * pfs_redirect: UDP (IPv4) to a configured set of destination ports goes to the
 * AF_XDP socket registered for the receiving queue (pfs_xsks[rx_queue_index]);
 * with no socket there, and for everything else, XDP_PASS.
 * Normative: specs/xdp.md.
 */
#include "pfs_xdp.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PFS_MAX_PORTS);
	__type(key, __u16);
	__type(value, __u32);
} pfs_redirect_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, PFS_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} pfs_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PFS_RSTATS);
	__type(key, __u32);
	__type(value, struct pfs_counter);
} pfs_redirect_stats SEC(".maps");

SEC("xdp")
int pfs_redirect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 len = (__u64)(data_end - data);
	struct pfs_udp4 u;

	if (pfs_parse_udp4(data, data_end, &u) == PFS_PARSE_UDP4) {
		__u16 port = u.dport;
		if (bpf_map_lookup_elem(&pfs_redirect_ports, &port)) {
			pfs_bump(&pfs_redirect_stats, PFS_RSTAT_REDIRECTED, len);
			/* Lower bits of flags: the action when the slot has no socket. */
			return bpf_redirect_map(&pfs_xsks, ctx->rx_queue_index, XDP_PASS);
		}
	}
	pfs_bump(&pfs_redirect_stats, PFS_RSTAT_PASSED, len);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
