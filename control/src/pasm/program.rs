//! The program format (`specs/pasm.md` §2–§3): a JSON array of steps, parsed
//! strictly. Every error names the step index and the JSON pointer of the field.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use serde::Serialize;
use serde_json::{Map, Value};

use super::PasmError;
use super::locate::{escape_token, offset_of, pointer_at, step_of};

/// Largest program file accepted, in bytes (`specs/pasm.md` §5).
pub const MAX_PROGRAM_BYTES: usize = 32 << 20;
/// Most steps accepted in one program.
pub const MAX_STEPS: usize = 1_000_000;
/// Longest string field accepted, in bytes.
pub const MAX_STRING_BYTES: usize = 65_535;
/// Built-in counter: packets sent by `pkt.send` steps so far in this run.
pub const COUNTER_SENT_PACKETS: &str = "pasm.sent_packets";
/// Built-in counter: payload bytes sent by `pkt.send` steps so far in this run.
pub const COUNTER_SENT_BYTES: &str = "pasm.sent_bytes";

/// A parsed program: its steps in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Program {
    /// The steps, in execution order.
    pub steps: Vec<Step>,
}

/// One step (`specs/pasm.md` §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op")]
pub enum Step {
    /// Set `key` in `scope` of the in-memory KV store to `value`.
    #[serde(rename = "state.set")]
    StateSet {
        /// KV scope, e.g. `kv:/demo`.
        scope: String,
        /// Key within the scope.
        key: String,
        /// Value.
        value: String,
    },
    /// Send `count` datagrams (or raw frames), paced at `pps` if given.
    #[serde(rename = "pkt.send")]
    PktSend {
        /// Where to.
        target: Target,
        /// Payload text as written (UTF-8, or hex digits when `encoding` is hex).
        payload: String,
        /// How `payload` is encoded.
        #[serde(skip_serializing_if = "Encoding::is_utf8")]
        encoding: Encoding,
        /// Options.
        #[serde(skip_serializing_if = "Meta::is_empty")]
        meta: Meta,
    },
    /// A structured log event.
    #[serde(rename = "log.info")]
    LogInfo {
        /// Message.
        message: String,
        /// Fields.
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        fields: BTreeMap<String, FieldValue>,
    },
    /// Sleep for `ms` milliseconds (capped by the gates).
    #[serde(rename = "barrier.sleep")]
    Sleep {
        /// Milliseconds.
        ms: u64,
    },
    /// Wait until `predicate` holds; fail after `timeout_ms`.
    #[serde(rename = "barrier.wait")]
    Wait {
        /// What must hold.
        predicate: Predicate,
        /// Milliseconds before the step fails.
        timeout_ms: u64,
    },
    /// Install an nftables counter in a lab namespace (needs `--netns`).
    #[serde(rename = "fw.counter")]
    FwCounter {
        /// Counter name (`[a-z][a-z0-9_]{0,31}`), used by `barrier.wait`.
        name: String,
        /// UDP destination port matched.
        port: u16,
        /// Lab side the counter sits in.
        side: Side,
        /// Optional payload byte to match as well.
        #[serde(skip_serializing_if = "Option::is_none")]
        byte: Option<ByteMatch>,
    },
    /// Attach the XDP `count` program with one rule to a lab veth (needs `--netns`).
    #[serde(rename = "xdp.counter")]
    XdpCounter {
        /// Counter name, as for `fw.counter`.
        name: String,
        /// UDP destination port matched.
        port: u16,
        /// Lab side whose veth the program is attached to.
        side: Side,
        /// Optional payload byte to match as well.
        #[serde(skip_serializing_if = "Option::is_none")]
        byte: Option<ByteMatch>,
        /// What happens to matching packets.
        action: XdpAction,
    },
}

/// What the XDP counter does with a matching packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpAction {
    /// Count and pass it on (the default).
    #[default]
    Pass,
    /// Count and drop it.
    Drop,
}

impl XdpAction {
    /// `pass` or `drop`.
    pub fn as_str(self) -> &'static str {
        match self {
            XdpAction::Pass => "pass",
            XdpAction::Drop => "drop",
        }
    }
}

/// Where `pkt.send` sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `udp://IPV4:PORT`.
    Udp(SocketAddrV4),
    /// `raw://IFACE`: whole Ethernet frames over AF_PACKET.
    Raw(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Udp(a) => write!(f, "udp://{a}"),
            Target::Raw(i) => write!(f, "raw://{i}"),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Target {
    /// Parses `udp://IPV4:PORT` or `raw://IFACE`; the error says what is wrong.
    pub fn parse(s: &str) -> Result<Target, String> {
        if let Some(rest) = s.strip_prefix("udp://") {
            let (ip, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| format!("{s:?}: expected udp://IPV4:PORT"))?;
            let ip: Ipv4Addr = ip
                .parse()
                .map_err(|_| format!("{s:?}: {ip:?} is not an IPv4 address"))?;
            let port: u16 = port
                .parse()
                .map_err(|_| format!("{s:?}: {port:?} is not a port 1..=65535"))?;
            if port == 0 {
                return Err(format!("{s:?}: port 0 is not a destination"));
            }
            Ok(Target::Udp(SocketAddrV4::new(ip, port)))
        } else if let Some(iface) = s.strip_prefix("raw://") {
            let ok = !iface.is_empty()
                && iface.len() <= 15
                && iface
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
            if !ok {
                return Err(format!(
                    "{s:?}: interface name must be 1..=15 of [A-Za-z0-9._-]"
                ));
            }
            Ok(Target::Raw(iface.to_string()))
        } else {
            Err(format!(
                "{s:?}: unknown target scheme (expected udp://IPV4:PORT or raw://IFACE)"
            ))
        }
    }
}

/// Payload encoding of `pkt.send`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The payload string's UTF-8 bytes.
    #[default]
    Utf8,
    /// Hex digits, two per byte.
    Hex,
}

impl Encoding {
    fn is_utf8(&self) -> bool {
        *self == Encoding::Utf8
    }
}

/// `pkt.send` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Meta {
    /// IP TTL (UDP only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u8>,
    /// Packets to send (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Pacing in packets per second (default: as fast as possible).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pps: Option<u64>,
}

impl Meta {
    fn is_empty(&self) -> bool {
        *self == Meta::default()
    }
}

/// A `log.info` field value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum FieldValue {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
}

/// What `barrier.wait` waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind")]
pub enum Predicate {
    /// A KV entry equals a value.
    #[serde(rename = "kv")]
    Kv {
        /// Scope.
        scope: String,
        /// Key.
        key: String,
        /// Value waited for.
        equals: String,
    },
    /// A counter compared with a threshold.
    #[serde(rename = "counter")]
    Counter {
        /// Counter name (a `fw.counter` name or a built-in `pasm.*`).
        name: String,
        /// Comparison.
        cmp: Cmp,
        /// Threshold.
        value: u64,
    },
}

/// Counter comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Cmp {
    /// Greater than or equal.
    #[serde(rename = ">=")]
    Ge,
    /// Equal.
    #[serde(rename = "==")]
    Eq,
}

impl Cmp {
    /// Its symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::Ge => ">=",
            Cmp::Eq => "==",
        }
    }
    /// Parses `>=` or `==`.
    pub fn parse(s: &str) -> Option<Cmp> {
        match s {
            ">=" => Some(Cmp::Ge),
            "==" => Some(Cmp::Eq),
            _ => None,
        }
    }
    /// Whether `observed` satisfies the comparison with `value`.
    pub fn holds(self, observed: u64, value: u64) -> bool {
        match self {
            Cmp::Ge => observed >= value,
            Cmp::Eq => observed == value,
        }
    }
}

/// Lab side of a `fw.counter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Namespace `pfs-NAME-a`.
    A,
    /// Namespace `pfs-NAME-b` (the default: the receiver).
    #[default]
    B,
}

impl Side {
    /// `a` or `b`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }
}

/// Match one UDP payload byte as well as the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ByteMatch {
    /// Offset into the UDP payload (0..=1471).
    pub offset: u16,
    /// Value of that byte.
    pub value: u8,
}

/// Largest `fw.counter` payload offset (a 1500-byte MTU's UDP payload).
pub const MAX_BYTE_OFFSET: u16 = 1471;

impl Step {
    /// The op name, as written in the program.
    pub fn op(&self) -> &'static str {
        match self {
            Step::StateSet { .. } => "state.set",
            Step::PktSend { .. } => "pkt.send",
            Step::LogInfo { .. } => "log.info",
            Step::Sleep { .. } => "barrier.sleep",
            Step::Wait { .. } => "barrier.wait",
            Step::FwCounter { .. } => "fw.counter",
            Step::XdpCounter { .. } => "xdp.counter",
        }
    }
}

/// Decodes a `pkt.send` payload into bytes. Hex was checked when parsed.
pub fn payload_bytes(payload: &str, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Utf8 => payload.as_bytes().to_vec(),
        Encoding::Hex => pfs_dataplane::specvec::unhex(payload).unwrap_or_default(),
    }
}

/// The reader of one JSON object of a step: remembers which fields were taken so
/// that anything left over is reported as unknown.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    step: usize,
    base: String,
    taken: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    fn new(value: &'a Value, step: usize, base: String) -> Result<Fields<'a>, PasmError> {
        let map = value.as_object().ok_or_else(|| PasmError::Step {
            step,
            pointer: base.clone(),
            msg: format!("expected an object, got {}", kind(value)),
        })?;
        Ok(Fields {
            map,
            step,
            base,
            taken: Vec::new(),
        })
    }

    fn ptr(&self, k: &str) -> String {
        format!("{}/{}", self.base, escape_token(k))
    }

    fn err(&self, k: &str, msg: impl Into<String>) -> PasmError {
        PasmError::Step {
            step: self.step,
            pointer: self.ptr(k),
            msg: msg.into(),
        }
    }

    fn opt(&mut self, k: &'static str) -> Option<&'a Value> {
        self.taken.push(k);
        self.map.get(k)
    }

    fn req(&mut self, k: &'static str) -> Result<&'a Value, PasmError> {
        self.opt(k)
            .ok_or_else(|| self.err(k, "required field is missing"))
    }

    fn string(&mut self, k: &'static str) -> Result<String, PasmError> {
        let v = self.req(k)?;
        self.as_string(k, v)
    }

    fn as_string(&self, k: &str, v: &Value) -> Result<String, PasmError> {
        let s = v
            .as_str()
            .ok_or_else(|| self.err(k, format!("expected a string, got {}", kind(v))))?;
        if s.len() > MAX_STRING_BYTES {
            return Err(self.err(
                k,
                format!("string of {} bytes exceeds {MAX_STRING_BYTES}", s.len()),
            ));
        }
        Ok(s.to_string())
    }

    fn uint(&mut self, k: &'static str, min: u64, max: u64) -> Result<u64, PasmError> {
        let v = self.req(k)?;
        self.as_uint(k, v, min, max)
    }

    fn opt_uint(&mut self, k: &'static str, min: u64, max: u64) -> Result<Option<u64>, PasmError> {
        match self.opt(k) {
            None => Ok(None),
            Some(v) => self.as_uint(k, v, min, max).map(Some),
        }
    }

    fn as_uint(&self, k: &str, v: &Value, min: u64, max: u64) -> Result<u64, PasmError> {
        let n = v.as_u64().ok_or_else(|| {
            self.err(
                k,
                format!("expected an integer {min}..={max}, got {}", kind(v)),
            )
        })?;
        if n < min || n > max {
            return Err(self.err(k, format!("{n} is outside {min}..={max}")));
        }
        Ok(n)
    }

    fn finish(self) -> Result<(), PasmError> {
        for k in self.map.keys() {
            if !self.taken.contains(&k.as_str()) {
                let known = self.taken.join(", ");
                return Err(self.err(k, format!("unknown field {k:?} (known: {known})")));
            }
        }
        Ok(())
    }
}

/// A short name for a JSON value's type, for error messages.
fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.len() <= 40 => format!("string {s:?}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn counter_name_ok(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

impl Program {
    /// Parses and checks a program file's bytes (`specs/pasm.md` §2, §3, §5).
    pub fn parse(bytes: &[u8]) -> Result<Program, PasmError> {
        if bytes.len() > MAX_PROGRAM_BYTES {
            return Err(PasmError::TooLarge {
                bytes: bytes.len(),
                max: MAX_PROGRAM_BYTES,
            });
        }
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let at = e.valid_up_to();
                // `valid_up_to` marks a valid UTF-8 prefix, so this cannot fail.
                let prefix = std::str::from_utf8(&bytes[..at]).unwrap_or("");
                let pointer = pointer_at(prefix);
                return Err(PasmError::NotUtf8 {
                    step: step_of(&pointer),
                    pointer,
                    offset: at,
                });
            }
        };
        let value: Value = serde_json::from_str(text).map_err(|e| {
            let at = offset_of(text, e.line(), e.column());
            let prefix = text.get(..at).unwrap_or(text);
            let pointer = pointer_at(prefix);
            PasmError::Json {
                step: step_of(&pointer),
                pointer,
                line: e.line(),
                column: e.column(),
                msg: e.to_string(),
            }
        })?;
        Program::from_value(&value)
    }

    /// Checks a parsed JSON value as a program.
    pub fn from_value(value: &Value) -> Result<Program, PasmError> {
        let arr = value.as_array().ok_or_else(|| PasmError::Shape {
            msg: format!("a program is a JSON array of steps, got {}", kind(value)),
        })?;
        if arr.len() > MAX_STEPS {
            return Err(PasmError::TooManySteps {
                steps: arr.len(),
                max: MAX_STEPS,
            });
        }
        let mut steps = Vec::with_capacity(arr.len());
        for (i, v) in arr.iter().enumerate() {
            steps.push(parse_step(i, v)?);
        }
        let p = Program { steps };
        p.check_refs()?;
        Ok(p)
    }

    /// Counter names: declared once, and declared before a wait uses them.
    fn check_refs(&self) -> Result<(), PasmError> {
        let mut declared: HashSet<&str> = HashSet::new();
        let mut xdp_sides: Vec<Side> = Vec::new();
        for (i, s) in self.steps.iter().enumerate() {
            match s {
                Step::FwCounter { name, .. } | Step::XdpCounter { name, .. }
                    if !declared.insert(name) =>
                {
                    return Err(PasmError::Step {
                        step: i,
                        pointer: format!("/{i}/name"),
                        msg: format!("counter {name:?} is already declared"),
                    });
                }
                Step::XdpCounter { side, .. } if xdp_sides.contains(side) => {
                    return Err(PasmError::Step {
                        step: i,
                        pointer: format!("/{i}/side"),
                        msg: format!(
                            "side {} already has an xdp.counter (one XDP program per interface)",
                            side.as_str()
                        ),
                    });
                }
                Step::XdpCounter { side, .. } => xdp_sides.push(*side),
                Step::Wait {
                    predicate: Predicate::Counter { name, .. },
                    ..
                } => {
                    let builtin = name == COUNTER_SENT_PACKETS || name == COUNTER_SENT_BYTES;
                    if !builtin && !declared.contains(name.as_str()) {
                        return Err(PasmError::Step {
                            step: i,
                            pointer: format!("/{i}/predicate/name"),
                            msg: format!(
                                "counter {name:?} is not declared by an earlier fw.counter step \
                                 (built-ins: {COUNTER_SENT_PACKETS}, {COUNTER_SENT_BYTES})"
                            ),
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The program as canonical JSON text: one step per line.
    pub fn to_json(&self) -> String {
        let mut out = String::from("[\n");
        for (i, s) in self.steps.iter().enumerate() {
            out.push_str("  ");
            out.push_str(&serde_json::to_string(s).unwrap_or_default());
            if i + 1 < self.steps.len() {
                out.push(',');
            }
            out.push('\n');
        }
        out.push_str("]\n");
        out
    }
}

fn parse_step(i: usize, v: &Value) -> Result<Step, PasmError> {
    let mut f = Fields::new(v, i, format!("/{i}"))?;
    let op_v = f.req("op")?;
    let op = f.as_string("op", op_v)?;
    let step = match op.as_str() {
        "state.set" => Step::StateSet {
            scope: f.string("scope")?,
            key: f.string("key")?,
            value: f.string("value")?,
        },
        "pkt.send" => {
            let target_s = f.string("target")?;
            let target = Target::parse(&target_s).map_err(|m| f.err("target", m))?;
            let payload = f.string("payload")?;
            let encoding = match f.opt("encoding") {
                None => Encoding::Utf8,
                Some(e) => match f.as_string("encoding", e)?.as_str() {
                    "utf8" => Encoding::Utf8,
                    "hex" => Encoding::Hex,
                    other => {
                        return Err(f.err(
                            "encoding",
                            format!("{other:?}: expected \"utf8\" or \"hex\""),
                        ));
                    }
                },
            };
            if encoding == Encoding::Hex
                && (pfs_dataplane::specvec::unhex(&payload).is_none()
                    || payload.bytes().any(|b| b.is_ascii_whitespace()))
            {
                return Err(f.err("payload", "hex payload must be pairs of hex digits"));
            }
            let meta = match f.opt("meta") {
                None => Meta::default(),
                Some(m) => {
                    let mut mf = Fields::new(m, i, f.ptr("meta"))?;
                    let meta = Meta {
                        ttl: mf.opt_uint("ttl", 1, 255)?.map(|t| t as u8),
                        count: mf.opt_uint("count", 1, u64::MAX)?,
                        pps: mf.opt_uint("pps", 1, u64::MAX)?,
                    };
                    mf.finish()?;
                    meta
                }
            };
            Step::PktSend {
                target,
                payload,
                encoding,
                meta,
            }
        }
        "log.info" => {
            let message = f.string("message")?;
            let mut fields = BTreeMap::new();
            if let Some(fv) = f.opt("fields") {
                let base = f.ptr("fields");
                let map = fv.as_object().ok_or_else(|| {
                    f.err("fields", format!("expected an object, got {}", kind(fv)))
                })?;
                for (k, v) in map {
                    let val = match v {
                        Value::String(s) if s.len() <= MAX_STRING_BYTES => {
                            FieldValue::Str(s.clone())
                        }
                        Value::Bool(b) => FieldValue::Bool(*b),
                        Value::Number(n) if n.as_i64().is_some() => {
                            FieldValue::Int(n.as_i64().unwrap_or_default())
                        }
                        other => {
                            return Err(PasmError::Step {
                                step: i,
                                pointer: format!("{base}/{}", escape_token(k)),
                                msg: format!(
                                    "a field is a string, a 64-bit integer or a boolean, got {}",
                                    kind(other)
                                ),
                            });
                        }
                    };
                    if k.is_empty() || k.len() > 64 {
                        return Err(PasmError::Step {
                            step: i,
                            pointer: format!("{base}/{}", escape_token(k)),
                            msg: "a field name is 1..=64 bytes".into(),
                        });
                    }
                    fields.insert(k.clone(), val);
                }
            }
            Step::LogInfo { message, fields }
        }
        "barrier.sleep" => Step::Sleep {
            ms: f.uint("ms", 0, u64::MAX)?,
        },
        "barrier.wait" => {
            let pv = f.req("predicate")?;
            let mut pf = Fields::new(pv, i, f.ptr("predicate"))?;
            let kind_v = pf.req("kind")?;
            let predicate = match pf.as_string("kind", kind_v)?.as_str() {
                "kv" => Predicate::Kv {
                    scope: pf.string("scope")?,
                    key: pf.string("key")?,
                    equals: pf.string("equals")?,
                },
                "counter" => {
                    let name = pf.string("name")?;
                    let builtin = name == COUNTER_SENT_PACKETS || name == COUNTER_SENT_BYTES;
                    if !builtin && !counter_name_ok(&name) {
                        return Err(pf.err(
                            "name",
                            format!("{name:?}: a counter name is [a-z][a-z0-9_]{{0,31}}"),
                        ));
                    }
                    let cmp_s = pf.string("cmp")?;
                    let cmp = Cmp::parse(&cmp_s).ok_or_else(|| {
                        pf.err("cmp", format!("{cmp_s:?}: expected \">=\" or \"==\""))
                    })?;
                    Predicate::Counter {
                        name,
                        cmp,
                        value: pf.uint("value", 0, u64::MAX)?,
                    }
                }
                other => {
                    return Err(pf.err(
                        "kind",
                        format!("unknown predicate kind {other:?} (known: kv, counter)"),
                    ));
                }
            };
            pf.finish()?;
            Step::Wait {
                predicate,
                timeout_ms: f.uint("timeout_ms", 0, u64::MAX)?,
            }
        }
        "fw.counter" | "xdp.counter" => {
            let name = f.string("name")?;
            if !counter_name_ok(&name) {
                return Err(f.err(
                    "name",
                    format!("{name:?}: a counter name is [a-z][a-z0-9_]{{0,31}}"),
                ));
            }
            let port = f.uint("port", 1, 65535)? as u16;
            let side = match f.opt("side") {
                None => Side::B,
                Some(s) => match f.as_string("side", s)?.as_str() {
                    "a" => Side::A,
                    "b" => Side::B,
                    other => {
                        return Err(f.err("side", format!("{other:?}: expected \"a\" or \"b\"")));
                    }
                },
            };
            let byte = match f.opt("byte") {
                None => None,
                Some(b) => {
                    let mut bf = Fields::new(b, i, f.ptr("byte"))?;
                    let m = ByteMatch {
                        offset: bf.uint("offset", 0, u64::from(MAX_BYTE_OFFSET))? as u16,
                        value: bf.uint("value", 0, 255)? as u8,
                    };
                    bf.finish()?;
                    Some(m)
                }
            };
            if op == "fw.counter" {
                Step::FwCounter {
                    name,
                    port,
                    side,
                    byte,
                }
            } else {
                let action = match f.opt("action") {
                    None => XdpAction::Pass,
                    Some(a) => match f.as_string("action", a)?.as_str() {
                        "pass" => XdpAction::Pass,
                        "drop" => XdpAction::Drop,
                        other => {
                            return Err(f.err(
                                "action",
                                format!("{other:?}: expected \"pass\" or \"drop\""),
                            ));
                        }
                    },
                };
                Step::XdpCounter {
                    name,
                    port,
                    side,
                    byte,
                    action,
                }
            }
        }
        other => {
            return Err(f.err(
                "op",
                format!(
                    "unknown op {other:?} (known: state.set, pkt.send, log.info, barrier.sleep, \
                     barrier.wait, fw.counter, xdp.counter)"
                ),
            ));
        }
    };
    f.finish()?;
    Ok(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> String {
        Program::parse(src.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn seed_hello_parses_and_round_trips() {
        let src = r#"[
  {"op":"state.set","scope":"kv:/demo","key":"hello","value":"world"},
  {"op":"pkt.send","target":"udp://127.0.0.1:9999","payload":"Hello, world!","meta":{"ttl":64}},
  {"op":"log.info","message":"done","fields":{"msg_id":"hello1"}}
]"#;
        let p = Program::parse(src.as_bytes()).unwrap();
        assert_eq!(p.steps.len(), 3);
        assert_eq!(Program::parse(p.to_json().as_bytes()).unwrap(), p);
    }

    #[test]
    fn every_op_parses() {
        let src = r#"[
 {"op":"state.set","scope":"s","key":"k","value":"v"},
 {"op":"pkt.send","target":"raw://pfslaba","payload":"00ff","encoding":"hex","meta":{"count":3,"pps":10}},
 {"op":"log.info","message":"m","fields":{"a":"x","b":-3,"c":true}},
 {"op":"barrier.sleep","ms":5},
 {"op":"fw.counter","name":"rx","port":9999,"side":"a","byte":{"offset":0,"value":72}},
 {"op":"barrier.wait","predicate":{"kind":"counter","name":"rx","cmp":">=","value":3},"timeout_ms":100},
 {"op":"barrier.wait","predicate":{"kind":"kv","scope":"s","key":"k","equals":"v"},"timeout_ms":0},
 {"op":"xdp.counter","name":"x","port":7,"side":"a","byte":{"offset":2,"value":1},"action":"drop"},
 {"op":"barrier.wait","predicate":{"kind":"counter","name":"x","cmp":"==","value":0},"timeout_ms":0}
]"#;
        let p = Program::parse(src.as_bytes()).unwrap();
        let ops: Vec<_> = p.steps.iter().map(Step::op).collect();
        assert_eq!(
            ops,
            [
                "state.set",
                "pkt.send",
                "log.info",
                "barrier.sleep",
                "fw.counter",
                "barrier.wait",
                "barrier.wait",
                "xdp.counter",
                "barrier.wait"
            ]
        );
        assert_eq!(Program::parse(p.to_json().as_bytes()).unwrap(), p);
    }

    #[test]
    fn errors_name_step_and_pointer() {
        assert!(err(r#"[{"op":"nope"}]"#).contains("step 0 (/0/op)"));
        let e = err(r#"[{"op":"barrier.sleep","ms":1},{"op":"barrier.sleep","ms":"x"}]"#);
        assert!(
            e.contains("step 1 (/1/ms)") && e.contains("expected an integer"),
            "{e}"
        );
        let e = err(r#"[{"op":"barrier.sleep","ms":1,"extra":2}]"#);
        assert!(e.contains("/0/extra") && e.contains("unknown field"), "{e}");
        let e = err(
            r#"[{"op":"pkt.send","target":"udp://127.0.0.1:1","payload":"x","meta":{"ttl":0}}]"#,
        );
        assert!(e.contains("/0/meta/ttl"), "{e}");
        let e = err(
            r#"[{"op":"pkt.send","target":"udp://127.0.0.1:1","payload":"x","meta":{"tos":1}}]"#,
        );
        assert!(e.contains("/0/meta/tos"), "{e}");
        let e = err(r#"[{"op":"pkt.send","target":"tcp://1.2.3.4:5","payload":"x"}]"#);
        assert!(e.contains("/0/target") && e.contains("scheme"), "{e}");
        let e = err(r#"[{"op":"state.set","scope":"s","key":"k"}]"#);
        assert!(e.contains("/0/value") && e.contains("missing"), "{e}");
        let e = err(
            r#"[{"op":"barrier.wait","predicate":{"kind":"counter","name":"zz","cmp":">=","value":1},"timeout_ms":1}]"#,
        );
        assert!(
            e.contains("/0/predicate/name") && e.contains("not declared"),
            "{e}"
        );
        let e = err(
            r#"[{"op":"xdp.counter","name":"a","port":1},{"op":"xdp.counter","name":"b","port":2}]"#,
        );
        assert!(
            e.contains("/1/side") && e.contains("one XDP program"),
            "{e}"
        );
        let e = err(
            r#"[{"op":"xdp.counter","name":"a","port":1},{"op":"fw.counter","name":"a","port":2}]"#,
        );
        assert!(
            e.contains("/1/name") && e.contains("already declared"),
            "{e}"
        );
        let e = err(r#"[{"op":"xdp.counter","name":"a","port":1,"action":"tx"}]"#);
        assert!(e.contains("/0/action"), "{e}");
        let e = err(r#"[{"op":"log.info","message":"m","fields":{"f":1.5}}]"#);
        assert!(e.contains("/0/fields/f"), "{e}");
        assert!(err(r#"{"op":"x"}"#).contains("JSON array"));
        let e = err("[{\"op\":\"state.set\",\n \"scope\": nope}]");
        assert!(e.contains("/0/scope") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn payload_not_utf8_is_named() {
        let mut b = br#"[{"op":"state.set","scope":"s","key":"k","value":"v"},{"op":"pkt.send","target":"udp://127.0.0.1:9","payload":"ab"#.to_vec();
        b.push(0xff);
        b.extend_from_slice(br#""}]"#);
        let e = Program::parse(&b).unwrap_err().to_string();
        assert!(
            e.contains("step 1, /1/payload") && e.contains("UTF-8"),
            "{e}"
        );
        // A lone surrogate escape is not UTF-8 either.
        let e = err(r#"[{"op":"pkt.send","target":"udp://127.0.0.1:9","payload":"\udc00"}]"#);
        assert!(e.contains("/0/payload"), "{e}");
    }

    #[test]
    fn bounds() {
        let big = vec![b' '; MAX_PROGRAM_BYTES + 1];
        assert!(matches!(
            Program::parse(&big),
            Err(PasmError::TooLarge { .. })
        ));
        let v = Value::Array(vec![
            serde_json::json!({"op":"barrier.sleep","ms":0});
            MAX_STEPS + 1
        ]);
        assert!(matches!(
            Program::from_value(&v),
            Err(PasmError::TooManySteps { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_on_bytes(b in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = Program::parse(&b);
        }

        #[test]
        fn parse_never_panics_on_mutated_programs(pos in 0usize..400, byte in proptest::num::u8::ANY, cut in 0usize..400) {
            let src = br#"[{"op":"state.set","scope":"kv:/demo","key":"hello","value":"world"},
  {"op":"pkt.send","target":"udp://127.0.0.1:9999","payload":"Hello","meta":{"ttl":64,"count":3,"pps":10}},
  {"op":"fw.counter","name":"rx","port":9,"byte":{"offset":0,"value":72}},
  {"op":"barrier.wait","predicate":{"kind":"counter","name":"rx","cmp":">=","value":1},"timeout_ms":5}]"#;
            let mut b = src.to_vec();
            let i = pos % b.len();
            b[i] = byte;
            b.truncate(cut.max(i + 1));
            let _ = Program::parse(&b);
        }
    }
}
