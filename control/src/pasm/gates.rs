//! Safety gates (`specs/pasm.md` §5): which steps may run, on which backend.
//! Pure: a step and the gates in force give a verdict; nothing is touched.

use std::net::Ipv4Addr;

use serde::Serialize;

use super::lab::LabRef;
use super::program::{Encoding, Step, Target, payload_bytes};

/// Longest sleep (ms).
pub const MAX_SLEEP_MS: u64 = 10_000;
/// Longest `barrier.wait` timeout (ms).
pub const MAX_WAIT_MS: u64 = 60_000;
/// Most packets one `pkt.send` step may send.
pub const MAX_COUNT: u64 = 10_000_000;
/// Highest pacing rate (packets/s).
pub const MAX_PPS: u64 = 2_000_000;
/// Longest paced stream (ms): `count / pps`.
pub const MAX_STREAM_MS: u64 = 60_000;
/// Largest UDP payload (IPv4).
pub const MAX_UDP_PAYLOAD: usize = 65_507;
/// Smallest raw frame (an Ethernet header).
pub const MIN_RAW_FRAME: usize = 14;

/// What executes a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Backend {
    /// In-memory KV map.
    #[serde(rename = "sim.kv")]
    SimKv,
    /// A UDP socket (unconnected, `sendto`).
    #[serde(rename = "udp.socket")]
    UdpSocket,
    /// A raw AF_PACKET socket bound to a lab veth.
    #[serde(rename = "af_packet")]
    AfPacket,
    /// The event log.
    #[serde(rename = "log.jsonl")]
    LogJsonl,
    /// The engine's clock.
    #[serde(rename = "clock")]
    Clock,
    /// Polling observed state (KV or counters).
    #[serde(rename = "poll")]
    Poll,
    /// nftables inside a lab namespace (`ip netns exec NS nft`).
    #[serde(rename = "nftables")]
    Nftables,
    /// The XDP `count` program on a lab veth (`pfs-ebpf`).
    #[serde(rename = "xdp")]
    Xdp,
}

impl Backend {
    /// The name used in plans and planfiles.
    pub fn name(self) -> &'static str {
        match self {
            Backend::SimKv => "sim.kv",
            Backend::UdpSocket => "udp.socket",
            Backend::AfPacket => "af_packet",
            Backend::LogJsonl => "log.jsonl",
            Backend::Clock => "clock",
            Backend::Poll => "poll",
            Backend::Nftables => "nftables",
            Backend::Xdp => "xdp",
        }
    }

    /// The backend a step runs on.
    pub fn of(step: &Step) -> Backend {
        match step {
            Step::StateSet { .. } => Backend::SimKv,
            Step::PktSend {
                target: Target::Udp(_),
                ..
            } => Backend::UdpSocket,
            Step::PktSend {
                target: Target::Raw(_),
                ..
            } => Backend::AfPacket,
            Step::LogInfo { .. } => Backend::LogJsonl,
            Step::Sleep { .. } => Backend::Clock,
            Step::Wait { .. } => Backend::Poll,
            Step::FwCounter { .. } => Backend::Nftables,
            Step::XdpCounter { .. } => Backend::Xdp,
        }
    }
}

/// A gate's verdict on one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The step may run.
    Allow,
    /// The step is refused: which field, and why.
    Refuse {
        /// JSON pointer of the field at fault.
        pointer: String,
        /// Why, and how to enable it if it can be.
        reason: String,
    },
}

/// The gates in force for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gates {
    /// Longest sleep (ms).
    pub max_sleep_ms: u64,
    /// Longest wait timeout (ms).
    pub max_wait_ms: u64,
    /// Most packets per `pkt.send`.
    pub max_count: u64,
    /// Highest pps.
    pub max_pps: u64,
    /// Longest paced stream (ms).
    pub max_stream_ms: u64,
    /// The lab `--netns` named, which enables real backends and lab addresses.
    pub lab: Option<LabRef>,
}

impl Default for Gates {
    fn default() -> Gates {
        Gates {
            max_sleep_ms: MAX_SLEEP_MS,
            max_wait_ms: MAX_WAIT_MS,
            max_count: MAX_COUNT,
            max_pps: MAX_PPS,
            max_stream_ms: MAX_STREAM_MS,
            lab: None,
        }
    }
}

/// The gates as recorded in a planfile.
#[derive(Debug, Clone, Serialize)]
pub struct GatesRecord {
    /// Destinations `pkt.send` may reach over UDP.
    pub udp_allow: Vec<String>,
    /// Interfaces `raw://` may use.
    pub raw_ifaces: Vec<String>,
    /// Whether real backends (nftables, AF_PACKET) are enabled.
    pub real_backends: bool,
    /// The lab named by `--netns`, if any.
    pub netns: Option<String>,
    /// Longest sleep (ms).
    pub max_sleep_ms: u64,
    /// Longest wait timeout (ms).
    pub max_wait_ms: u64,
    /// Most packets per step.
    pub max_count: u64,
    /// Highest pps.
    pub max_pps: u64,
    /// Longest paced stream (ms).
    pub max_stream_ms: u64,
    /// Largest program file (bytes).
    pub max_program_bytes: usize,
    /// Most steps.
    pub max_steps: usize,
    /// Whether refused or failed steps stop the run.
    pub keep_going: bool,
}

fn how_to_enable(what: &str) -> String {
    format!(
        "{what} needs a lab: run `pfs lab up --name NAME`, then `pfs pasm run FILE --netns NAME`"
    )
}

impl Gates {
    /// The record of these gates for a planfile.
    pub fn record(&self, keep_going: bool) -> GatesRecord {
        let mut udp_allow = vec!["127.0.0.0/8".to_string()];
        let mut raw_ifaces = Vec::new();
        if let Some(l) = &self.lab {
            udp_allow.push(format!("{}/32", l.addr_a));
            udp_allow.push(format!("{}/32", l.addr_b));
            raw_ifaces.push(l.veth_a.clone());
            raw_ifaces.push(l.veth_b.clone());
        }
        GatesRecord {
            udp_allow,
            raw_ifaces,
            real_backends: self.lab.is_some(),
            netns: self.lab.as_ref().map(|l| l.name.clone()),
            max_sleep_ms: self.max_sleep_ms,
            max_wait_ms: self.max_wait_ms,
            max_count: self.max_count,
            max_pps: self.max_pps,
            max_stream_ms: self.max_stream_ms,
            max_program_bytes: super::program::MAX_PROGRAM_BYTES,
            max_steps: super::program::MAX_STEPS,
            keep_going,
        }
    }

    fn udp_allowed(&self, ip: Ipv4Addr) -> bool {
        ip.is_loopback() || self.lab.as_ref().is_some_and(|l| l.owns(ip))
    }

    /// The verdict on step `i`.
    pub fn check(&self, i: usize, step: &Step) -> Verdict {
        let refuse = |field: &str, reason: String| Verdict::Refuse {
            pointer: format!("/{i}/{field}"),
            reason,
        };
        match step {
            Step::StateSet { .. } | Step::LogInfo { .. } => Verdict::Allow,
            Step::Sleep { ms } => {
                if *ms > self.max_sleep_ms {
                    refuse(
                        "ms",
                        format!(
                            "sleep of {ms} ms is over the cap of {} ms",
                            self.max_sleep_ms
                        ),
                    )
                } else {
                    Verdict::Allow
                }
            }
            Step::Wait { timeout_ms, .. } => {
                if *timeout_ms > self.max_wait_ms {
                    refuse(
                        "timeout_ms",
                        format!(
                            "wait timeout of {timeout_ms} ms is over the cap of {} ms",
                            self.max_wait_ms
                        ),
                    )
                } else {
                    Verdict::Allow
                }
            }
            Step::FwCounter { .. } => {
                if self.lab.is_none() {
                    refuse("op", how_to_enable("fw.counter (nftables)"))
                } else {
                    Verdict::Allow
                }
            }
            Step::XdpCounter { .. } => {
                if self.lab.is_none() {
                    refuse("op", how_to_enable("xdp.counter (XDP)"))
                } else {
                    Verdict::Allow
                }
            }
            Step::PktSend {
                target,
                payload,
                encoding,
                meta,
            } => {
                let len = match encoding {
                    Encoding::Utf8 => payload.len(),
                    Encoding::Hex => payload_bytes(payload, *encoding).len(),
                };
                match target {
                    Target::Udp(a) => {
                        if !self.udp_allowed(*a.ip()) {
                            let lab = match &self.lab {
                                Some(l) => {
                                    format!(" and lab {} ({}, {})", l.name, l.addr_a, l.addr_b)
                                }
                                None => " (lab addresses need --netns NAME)".into(),
                            };
                            return refuse(
                                "target",
                                format!(
                                    "udp://{a} is outside the gate: UDP only to 127.0.0.0/8{lab}"
                                ),
                            );
                        }
                        if len > MAX_UDP_PAYLOAD {
                            return refuse(
                                "payload",
                                format!(
                                    "payload of {len} bytes is over the UDP bound {MAX_UDP_PAYLOAD}"
                                ),
                            );
                        }
                    }
                    Target::Raw(iface) => {
                        let Some(lab) = &self.lab else {
                            return refuse("target", how_to_enable("raw:// (AF_PACKET)"));
                        };
                        if lab.ns_of_iface(iface).is_none() {
                            return refuse(
                                "target",
                                format!(
                                    "raw://{iface} is not a veth of lab {} ({} or {})",
                                    lab.name, lab.veth_a, lab.veth_b
                                ),
                            );
                        }
                        let max = lab.mtu as usize + MIN_RAW_FRAME;
                        if len < MIN_RAW_FRAME || len > max {
                            return refuse(
                                "payload",
                                format!("a raw frame is {MIN_RAW_FRAME}..={max} bytes, got {len}"),
                            );
                        }
                        if meta.ttl.is_some() {
                            return refuse("meta/ttl", "ttl applies to udp:// targets only".into());
                        }
                    }
                }
                let count = meta.count.unwrap_or(1);
                if count > self.max_count {
                    return refuse(
                        "meta/count",
                        format!("count {count} is over the cap of {}", self.max_count),
                    );
                }
                if let Some(pps) = meta.pps {
                    if pps > self.max_pps {
                        return refuse(
                            "meta/pps",
                            format!("pps {pps} is over the cap of {}", self.max_pps),
                        );
                    }
                    let ms = count.saturating_mul(1000) / pps;
                    if ms > self.max_stream_ms {
                        return refuse(
                            "meta/pps",
                            format!(
                                "{count} packets at {pps} pps take {ms} ms, over the cap of {} ms",
                                self.max_stream_ms
                            ),
                        );
                    }
                }
                Verdict::Allow
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pasm::program::Program;

    fn verdicts(src: &str, gates: &Gates) -> Vec<Verdict> {
        let p = Program::parse(src.as_bytes()).unwrap();
        p.steps
            .iter()
            .enumerate()
            .map(|(i, s)| gates.check(i, s))
            .collect()
    }

    fn lab() -> LabRef {
        LabRef {
            name: "t".into(),
            ns_a: "pfs-t-a".into(),
            ns_b: "pfs-t-b".into(),
            veth_a: "pfsta".into(),
            veth_b: "pfstb".into(),
            addr_a: Ipv4Addr::new(10, 77, 0, 1),
            addr_b: Ipv4Addr::new(10, 77, 0, 2),
            mtu: 1500,
        }
    }

    fn refused(v: &Verdict, ptr: &str, words: &str) {
        match v {
            Verdict::Refuse { pointer, reason } => {
                assert_eq!(pointer, ptr);
                assert!(reason.contains(words), "{reason}");
            }
            Verdict::Allow => panic!("expected refusal at {ptr}"),
        }
    }

    #[test]
    fn every_refusal() {
        let g = Gates::default();
        let v = verdicts(
            r#"[
 {"op":"pkt.send","target":"udp://8.8.8.8:53","payload":"x"},
 {"op":"pkt.send","target":"udp://10.77.0.2:53","payload":"x"},
 {"op":"pkt.send","target":"raw://pfsta","payload":"00000000000000000000000000"},
 {"op":"fw.counter","name":"c","port":1},
 {"op":"barrier.sleep","ms":10001},
 {"op":"barrier.wait","predicate":{"kind":"kv","scope":"s","key":"k","equals":"v"},"timeout_ms":60001},
 {"op":"pkt.send","target":"udp://127.0.0.1:9","payload":"x","meta":{"count":10000001}},
 {"op":"pkt.send","target":"udp://127.0.0.1:9","payload":"x","meta":{"pps":2000001}},
 {"op":"pkt.send","target":"udp://127.0.0.1:9","payload":"x","meta":{"count":61,"pps":1}},
 {"op":"barrier.sleep","ms":10000},
 {"op":"pkt.send","target":"udp://127.9.9.9:9","payload":"x","meta":{"count":60,"pps":1}},
 {"op":"xdp.counter","name":"x","port":1}
]"#,
            &g,
        );
        refused(&v[0], "/0/target", "outside the gate");
        refused(&v[1], "/1/target", "need --netns");
        refused(&v[2], "/2/target", "pfs lab up");
        refused(&v[3], "/3/op", "--netns NAME");
        refused(&v[4], "/4/ms", "over the cap");
        refused(&v[5], "/5/timeout_ms", "over the cap");
        refused(&v[6], "/6/meta/count", "over the cap");
        refused(&v[7], "/7/meta/pps", "over the cap");
        refused(&v[8], "/8/meta/pps", "take 61000 ms");
        assert_eq!(v[9], Verdict::Allow);
        assert_eq!(v[10], Verdict::Allow);
        refused(&v[11], "/11/op", "xdp.counter (XDP) needs a lab");
        let big = format!(
            r#"[{{"op":"pkt.send","target":"udp://127.0.0.1:9","payload":"{}"}}]"#,
            "a".repeat(MAX_UDP_PAYLOAD + 1)
        );
        refused(&verdicts(&big, &g)[0], "/0/payload", "UDP bound");
    }

    #[test]
    fn lab_opens_lab_targets_only() {
        let g = Gates {
            lab: Some(lab()),
            ..Gates::default()
        };
        let v = verdicts(
            r#"[
 {"op":"pkt.send","target":"udp://10.77.0.2:53","payload":"x"},
 {"op":"pkt.send","target":"udp://10.77.0.3:53","payload":"x"},
 {"op":"pkt.send","target":"raw://pfsta","payload":"0000000000000000000000000000","encoding":"hex"},
 {"op":"pkt.send","target":"raw://eth0","payload":"0000000000000000000000000000","encoding":"hex"},
 {"op":"pkt.send","target":"raw://pfsta","payload":"00","encoding":"hex"},
 {"op":"fw.counter","name":"c","port":1},
 {"op":"pkt.send","target":"raw://pfstb","payload":"0000000000000000000000000000","encoding":"hex","meta":{"ttl":3}},
 {"op":"pkt.send","target":"raw://pfstb","payload":"0000000000000000000000000000","encoding":"hex","meta":{"count":2,"pps":2000001}}
]"#,
            &g,
        );
        refused(&v[6], "/6/meta/ttl", "udp:// targets only");
        refused(&v[7], "/7/meta/pps", "over the cap");
        assert_eq!(v[0], Verdict::Allow);
        refused(&v[1], "/1/target", "outside the gate");
        assert_eq!(v[2], Verdict::Allow);
        refused(&v[3], "/3/target", "not a veth");
        refused(&v[4], "/4/payload", "raw frame");
        assert_eq!(v[5], Verdict::Allow);
    }
}
