//! The assembler (`specs/pasm.md` §7): a line-oriented text form ⇄ the JSON form.
//! `disasm` then `asm` gives back the same program (property-tested).
//!
//! ```text
//! set kv:/demo hello world
//! send udp://127.0.0.1:9999 "Hello" count=1000 pps=10000 ttl=64
//! send raw://pfslaba hex:ffffffffffff...
//! log "done" msg_id="hello1" n=3 ok=true
//! sleep 100
//! wait kv kv:/demo hello == world timeout=5000
//! wait counter rx >= 1000 timeout=5000
//! counter rx port=9999 side=b byte=0:72
//! ```

use serde_json::{Map, Value, json};

use super::PasmError;
use super::program::{Encoding, FieldValue, Predicate, Program, Step};

/// A token of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// An unquoted word.
    Word(String),
    /// A quoted string.
    Quoted(String),
    /// `key=value`.
    Kv(String, Box<Tok>),
}

impl Tok {
    fn text(&self) -> Option<&str> {
        match self {
            Tok::Word(s) | Tok::Quoted(s) => Some(s),
            Tok::Kv(..) => None,
        }
    }
}

fn key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'
}

fn quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String, String> {
    // The opening quote is already consumed.
    let mut s = String::new();
    loop {
        match chars.next() {
            None => return Err("unterminated quoted string".into()),
            Some('"') => return Ok(s),
            Some('\\') => match chars.next() {
                Some('"') => s.push('"'),
                Some('\\') => s.push('\\'),
                Some('n') => s.push('\n'),
                Some('r') => s.push('\r'),
                Some('t') => s.push('\t'),
                Some('u') => {
                    if chars.next() != Some('{') {
                        return Err("expected \\u{HEX}".into());
                    }
                    let mut hex = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) if c.is_ascii_hexdigit() && hex.len() < 6 => hex.push(c),
                            _ => return Err("expected \\u{HEX} with 1..=6 hex digits".into()),
                        }
                    }
                    let c = u32::from_str_radix(&hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| format!("\\u{{{hex}}} is not a Unicode scalar value"))?;
                    s.push(c);
                }
                Some(c) => return Err(format!("unknown escape \\{c}")),
                None => return Err("unterminated quoted string".into()),
            },
            Some(c) => s.push(c),
        }
    }
}

fn bare(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, s: &mut String) {
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            break;
        }
        s.push(c);
        chars.next();
    }
}

fn end_of_token(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<(), String> {
    match chars.peek() {
        None => Ok(()),
        Some(c) if c.is_whitespace() => Ok(()),
        Some(c) => Err(format!("unexpected {c:?} right after a quoted string")),
    }
}

fn value_tok(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Tok, String> {
    if chars.peek() == Some(&'"') {
        chars.next();
        let s = quoted(chars)?;
        end_of_token(chars)?;
        Ok(Tok::Quoted(s))
    } else {
        let mut s = String::new();
        bare(chars, &mut s);
        Ok(Tok::Word(s))
    }
}

/// Splits a line into tokens; `#` at the start of a token begins a comment.
fn tokenize(line: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None | Some('#') => return Ok(out),
            Some('"') => {
                chars.next();
                let s = quoted(&mut chars)?;
                if chars.peek() == Some(&'=') {
                    chars.next();
                    out.push(Tok::Kv(s, Box::new(value_tok(&mut chars)?)));
                } else {
                    end_of_token(&mut chars)?;
                    out.push(Tok::Quoted(s));
                }
            }
            Some(_) => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if !key_char(c) {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                if !s.is_empty() && chars.peek() == Some(&'=') {
                    chars.next();
                    out.push(Tok::Kv(s, Box::new(value_tok(&mut chars)?)));
                } else {
                    bare(&mut chars, &mut s);
                    out.push(Tok::Word(s));
                }
            }
        }
    }
}

/// Whether `s` can be written unquoted and read back as the same word.
fn bare_ok(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('#')
        && !s.starts_with("hex:")
        && s.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=' && c != '\\')
}

/// `s` as a quoted string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c.is_whitespace() && c != ' ' => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `s` bare if it can be, else quoted.
fn word(s: &str) -> String {
    if bare_ok(s) { s.to_string() } else { quote(s) }
}

fn key(s: &str) -> String {
    if !s.is_empty() && s.chars().all(key_char) {
        s.to_string()
    } else {
        quote(s)
    }
}

/// The text form of one step (one line, no newline).
pub fn disasm_step(step: &Step) -> String {
    match step {
        Step::StateSet { scope, key, value } => {
            format!("set {} {} {}", word(scope), word(key), word(value))
        }
        Step::PktSend {
            target,
            payload,
            encoding,
            meta,
        } => {
            let mut s = format!("send {} ", word(&target.to_string()));
            match encoding {
                Encoding::Utf8 => s.push_str(&quote(payload)),
                Encoding::Hex => {
                    s.push_str("hex:");
                    s.push_str(payload);
                }
            }
            if let Some(t) = meta.ttl {
                s.push_str(&format!(" ttl={t}"));
            }
            if let Some(c) = meta.count {
                s.push_str(&format!(" count={c}"));
            }
            if let Some(p) = meta.pps {
                s.push_str(&format!(" pps={p}"));
            }
            s
        }
        Step::LogInfo { message, fields } => {
            let mut s = format!("log {}", quote(message));
            for (k, v) in fields {
                s.push(' ');
                s.push_str(&key(k));
                s.push('=');
                match v {
                    FieldValue::Str(x) => s.push_str(&quote(x)),
                    FieldValue::Int(n) => s.push_str(&n.to_string()),
                    FieldValue::Bool(b) => s.push_str(&b.to_string()),
                }
            }
            s
        }
        Step::Sleep { ms } => format!("sleep {ms}"),
        Step::Wait {
            predicate,
            timeout_ms,
        } => match predicate {
            Predicate::Kv { scope, key, equals } => format!(
                "wait kv {} {} == {} timeout={timeout_ms}",
                word(scope),
                word(key),
                word(equals)
            ),
            Predicate::Counter { name, cmp, value } => format!(
                "wait counter {} {} {value} timeout={timeout_ms}",
                word(name),
                cmp.symbol()
            ),
        },
        Step::FwCounter {
            name,
            port,
            side,
            byte,
        } => {
            let mut s = format!("counter {} port={port} side={}", word(name), side.as_str());
            if let Some(b) = byte {
                s.push_str(&format!(" byte={}:{}", b.offset, b.value));
            }
            s
        }
        Step::XdpCounter {
            name,
            port,
            side,
            byte,
            action,
        } => {
            let mut s = format!("xdp {} port={port} side={}", word(name), side.as_str());
            if let Some(b) = byte {
                s.push_str(&format!(" byte={}:{}", b.offset, b.value));
            }
            s.push_str(&format!(" action={}", action.as_str()));
            s
        }
    }
}

/// The whole program as text, one step per line.
pub fn disasm(p: &Program) -> String {
    let mut out = String::new();
    for s in &p.steps {
        out.push_str(&disasm_step(s));
        out.push('\n');
    }
    out
}

fn int(t: &Tok, what: &str) -> Result<u64, String> {
    match t {
        Tok::Word(w) => w
            .parse()
            .map_err(|_| format!("{what}: {w:?} is not a non-negative integer")),
        _ => Err(format!("{what}: expected an integer")),
    }
}

fn text<'a>(t: Option<&'a Tok>, what: &str) -> Result<&'a str, String> {
    t.and_then(Tok::text)
        .ok_or_else(|| format!("expected {what}"))
}

/// Splits tokens into positional ones and `key=value` ones (in order).
/// Positional tokens and `key=value` options of a line.
type Args<'a> = (Vec<&'a Tok>, Vec<(&'a str, &'a Tok)>);

fn split(toks: &[Tok]) -> Result<Args<'_>, String> {
    let mut pos = Vec::new();
    let mut kv = Vec::new();
    for t in toks {
        match t {
            Tok::Kv(k, v) => kv.push((k.as_str(), v.as_ref())),
            other if kv.is_empty() => pos.push(other),
            other => {
                return Err(format!(
                    "positional argument {:?} after key=value options",
                    other.text().unwrap_or("")
                ));
            }
        }
    }
    Ok((pos, kv))
}

fn exact(pos: &[&Tok], n: usize, usage: &str) -> Result<(), String> {
    if pos.len() == n {
        Ok(())
    } else {
        Err(format!("expected `{usage}`"))
    }
}

fn no_dup(kv: &[(&str, &Tok)]) -> Result<(), String> {
    for (i, (k, _)) in kv.iter().enumerate() {
        if kv[..i].iter().any(|(k2, _)| k2 == k) {
            return Err(format!("option {k}= given twice"));
        }
    }
    Ok(())
}

/// One line's step as JSON (not yet checked by the program parser).
fn asm_line(toks: &[Tok]) -> Result<Value, String> {
    let (Some(Tok::Word(mnemonic)), rest) = (toks.first(), toks.get(1..).unwrap_or(&[])) else {
        return Err(
            "a line starts with a mnemonic (set, send, log, sleep, wait, counter, xdp)".into(),
        );
    };
    let (pos, kv) = split(rest)?;
    no_dup(&kv)?;
    let unknown = |k: &str, known: &str| format!("unknown option {k}= (known: {known})");
    match mnemonic.as_str() {
        "set" => {
            exact(&pos, 3, "set SCOPE KEY VALUE")?;
            if let Some((k, _)) = kv.first() {
                return Err(unknown(k, "none"));
            }
            Ok(json!({"op":"state.set","scope":text(Some(pos[0]),"SCOPE")?,
                "key":text(Some(pos[1]),"KEY")?,"value":text(Some(pos[2]),"VALUE")?}))
        }
        "send" => {
            exact(&pos, 2, "send TARGET PAYLOAD [ttl=N] [count=N] [pps=N]")?;
            let mut step = Map::new();
            step.insert("op".into(), json!("pkt.send"));
            step.insert("target".into(), json!(text(Some(pos[0]), "TARGET")?));
            match pos[1] {
                Tok::Word(w) if w.starts_with("hex:") => {
                    step.insert("payload".into(), json!(&w[4..]));
                    step.insert("encoding".into(), json!("hex"));
                }
                t => {
                    step.insert("payload".into(), json!(text(Some(t), "PAYLOAD")?));
                }
            }
            let mut meta = Map::new();
            for (k, v) in &kv {
                match *k {
                    "ttl" | "count" | "pps" => {
                        meta.insert(k.to_string(), json!(int(v, k)?));
                    }
                    other => return Err(unknown(other, "ttl, count, pps")),
                }
            }
            if !meta.is_empty() {
                step.insert("meta".into(), Value::Object(meta));
            }
            Ok(Value::Object(step))
        }
        "log" => {
            exact(&pos, 1, "log MESSAGE [key=value ...]")?;
            let mut fields = Map::new();
            for (k, v) in &kv {
                let val = match v {
                    Tok::Quoted(s) => json!(s),
                    Tok::Word(w) if w == "true" => json!(true),
                    Tok::Word(w) if w == "false" => json!(false),
                    Tok::Word(w) => match w.parse::<i64>() {
                        Ok(n) => json!(n),
                        Err(_) => json!(w),
                    },
                    Tok::Kv(..) => return Err(format!("field {k}: nested key=value")),
                };
                fields.insert(k.to_string(), val);
            }
            let mut step = json!({"op":"log.info","message":text(Some(pos[0]),"MESSAGE")?});
            if !fields.is_empty() {
                step["fields"] = Value::Object(fields);
            }
            Ok(step)
        }
        "sleep" => {
            exact(&pos, 1, "sleep MS")?;
            if let Some((k, _)) = kv.first() {
                return Err(unknown(k, "none"));
            }
            Ok(json!({"op":"barrier.sleep","ms":int(pos[0], "MS")?}))
        }
        "wait" => {
            let timeout = match kv.as_slice() {
                [("timeout", t)] => int(t, "timeout")?,
                [] => return Err("wait needs timeout=MS".into()),
                [(k, _), ..] if *k != "timeout" => return Err(unknown(k, "timeout")),
                _ => return Err("wait takes one option, timeout=MS".into()),
            };
            match pos.first().and_then(|t| t.text()) {
                Some("kv") => {
                    exact(&pos, 5, "wait kv SCOPE KEY == VALUE timeout=MS")?;
                    if pos[3].text() != Some("==") {
                        return Err("expected `==` in `wait kv SCOPE KEY == VALUE`".into());
                    }
                    Ok(json!({"op":"barrier.wait","predicate":{"kind":"kv",
                        "scope":text(Some(pos[1]),"SCOPE")?,"key":text(Some(pos[2]),"KEY")?,
                        "equals":text(Some(pos[4]),"VALUE")?},"timeout_ms":timeout}))
                }
                Some("counter") => {
                    exact(&pos, 4, "wait counter NAME >=|== N timeout=MS")?;
                    let cmp = text(Some(pos[2]), "`>=` or `==`")?;
                    Ok(json!({"op":"barrier.wait","predicate":{"kind":"counter",
                        "name":text(Some(pos[1]),"NAME")?,"cmp":cmp,"value":int(pos[3], "N")?},
                        "timeout_ms":timeout}))
                }
                _ => Err("expected `wait kv ...` or `wait counter ...`".into()),
            }
        }
        "counter" | "xdp" => {
            let (op, usage, known) = if mnemonic == "counter" {
                (
                    "fw.counter",
                    "counter NAME port=P [side=a|b] [byte=OFFSET:VALUE]",
                    "port, side, byte",
                )
            } else {
                (
                    "xdp.counter",
                    "xdp NAME port=P [side=a|b] [byte=OFFSET:VALUE] [action=pass|drop]",
                    "port, side, byte, action",
                )
            };
            exact(&pos, 1, usage)?;
            let mut step = json!({"op":op,"name":text(Some(pos[0]),"NAME")?});
            for (k, v) in &kv {
                match *k {
                    "action" if op == "xdp.counter" => {
                        step["action"] = json!(text(Some(v), "action")?);
                    }
                    "port" => step["port"] = json!(int(v, "port")?),
                    "side" => step["side"] = json!(text(Some(v), "side")?),
                    "byte" => {
                        let t = text(Some(v), "byte=OFFSET:VALUE")?;
                        let (o, b) = t
                            .split_once(':')
                            .ok_or_else(|| format!("byte={t}: expected OFFSET:VALUE"))?;
                        let o: u64 = o
                            .parse()
                            .map_err(|_| format!("byte={t}: {o:?} is not an offset"))?;
                        let b: u64 = b
                            .parse()
                            .map_err(|_| format!("byte={t}: {b:?} is not a value 0..=255"))?;
                        step["byte"] = json!({"offset":o,"value":b});
                    }
                    other => return Err(unknown(other, known)),
                }
            }
            Ok(step)
        }
        other => Err(format!(
            "unknown mnemonic {other:?} (known: set, send, log, sleep, wait, counter, xdp)"
        )),
    }
}

/// Assembles text into a program; errors name the line.
pub fn asm(text: &str) -> Result<Program, PasmError> {
    let mut steps = Vec::new();
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let toks = tokenize(line).map_err(|msg| PasmError::Asm { line: n + 1, msg })?;
        if toks.is_empty() {
            continue;
        }
        steps.push(asm_line(&toks).map_err(|msg| PasmError::Asm { line: n + 1, msg })?);
        lines.push(n + 1);
    }
    Program::from_value(&Value::Array(steps)).map_err(|e| match e {
        PasmError::Step { step, pointer, msg } => PasmError::Asm {
            line: lines.get(step).copied().unwrap_or(0),
            msg: format!("{pointer}: {msg}"),
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pasm::program::{ByteMatch, Cmp, Meta, Side, Target, XdpAction};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn issue_examples() {
        let p = asm("set kv:/demo hello world\n\
             send udp://127.0.0.1:9999 \"Hello\" count=1000 pps=10000\n\
             sleep 100\n\
             counter rx port=9999\n\
             wait counter rx >= 1000 timeout=5000 # done\n\
             log \"msg\" k=v n=-2 b=false\n")
        .unwrap();
        assert_eq!(
            p.steps[0],
            Step::StateSet {
                scope: "kv:/demo".into(),
                key: "hello".into(),
                value: "world".into()
            }
        );
        assert_eq!(
            p.steps[1],
            Step::PktSend {
                target: Target::parse("udp://127.0.0.1:9999").unwrap(),
                payload: "Hello".into(),
                encoding: Encoding::Utf8,
                meta: Meta {
                    ttl: None,
                    count: Some(1000),
                    pps: Some(10000)
                }
            }
        );
        let Step::LogInfo { fields, .. } = &p.steps[5] else {
            panic!("not a log step")
        };
        assert_eq!(fields["k"], FieldValue::Str("v".into()));
        assert_eq!(fields["n"], FieldValue::Int(-2));
        assert_eq!(fields["b"], FieldValue::Bool(false));
        assert_eq!(asm(&disasm(&p)).unwrap(), p);
    }

    #[test]
    fn errors_name_the_line() {
        for (src, line, words) in [
            ("sleep 1\nfly 2\n", 2, "unknown mnemonic"),
            ("\n\nsend \"unterminated\n", 3, "unterminated"),
            ("sleep x", 1, "not a non-negative integer"),
            (
                "send udp://127.0.0.1:1 \"x\" tos=1",
                1,
                "unknown option tos=",
            ),
            ("wait counter nope >= 1 timeout=1", 1, "not declared"),
            (
                "wait counter pasm.sent_packets > 1 timeout=1",
                1,
                "/0/predicate/cmp",
            ),
            ("set a b", 1, "set SCOPE KEY VALUE"),
            ("sleep 1 ms=2", 1, "unknown option"),
            ("log \"a\"b", 1, "right after a quoted"),
            ("log \"\\u{d800}\"", 1, "not a Unicode scalar"),
        ] {
            match asm(src) {
                Err(PasmError::Asm { line: l, msg }) => {
                    assert_eq!(l, line, "{src}: {msg}");
                    assert!(msg.contains(words), "{src}: {msg}");
                }
                other => panic!("{src}: {other:?}"),
            }
        }
    }

    fn any_string() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z:/._-]{1,12}",
            any::<String>(),
            Just(String::new()),
            Just("hex:00".to_string()),
            Just("#x".to_string()),
            Just("a=b \"q\" \\ \n\t\u{2028}".to_string()),
        ]
    }

    fn any_step() -> impl Strategy<Value = Step> {
        let name = "[a-z][a-z0-9_]{0,7}";
        prop_oneof![
            (any_string(), any_string(), any_string())
                .prop_map(|(scope, key, value)| Step::StateSet { scope, key, value }),
            (
                any::<[u8; 4]>(),
                1u16..,
                any_string(),
                proptest::option::of(1u8..),
                proptest::option::of(1u64..),
                proptest::option::of(1u64..)
            )
                .prop_map(|(ip, port, payload, ttl, count, pps)| Step::PktSend {
                    target: Target::Udp(std::net::SocketAddrV4::new(ip.into(), port)),
                    payload,
                    encoding: Encoding::Utf8,
                    meta: Meta { ttl, count, pps }
                }),
            ("[a-z]{1,15}", proptest::collection::vec(any::<u8>(), 0..20)).prop_map(
                |(iface, bytes)| Step::PktSend {
                    target: Target::Raw(iface),
                    payload: bytes.iter().map(|b| format!("{b:02x}")).collect(),
                    encoding: Encoding::Hex,
                    meta: Meta::default()
                }
            ),
            (
                any_string(),
                proptest::collection::btree_map(
                    "[a-zA-Z0-9 _=\"-]{1,8}",
                    prop_oneof![
                        any_string().prop_map(FieldValue::Str),
                        any::<i64>().prop_map(FieldValue::Int),
                        any::<bool>().prop_map(FieldValue::Bool)
                    ],
                    0..4
                )
            )
                .prop_map(|(message, fields)| Step::LogInfo { message, fields }),
            any::<u64>().prop_map(|ms| Step::Sleep { ms }),
            (any_string(), any_string(), any_string(), any::<u64>()).prop_map(
                |(scope, key, equals, timeout_ms)| Step::Wait {
                    predicate: Predicate::Kv { scope, key, equals },
                    timeout_ms
                }
            ),
            (any::<bool>(), any::<u64>(), any::<u64>(), any::<bool>()).prop_map(
                |(ge, value, timeout_ms, bytes)| Step::Wait {
                    predicate: Predicate::Counter {
                        name: if bytes {
                            "pasm.sent_bytes"
                        } else {
                            "pasm.sent_packets"
                        }
                        .into(),
                        cmp: if ge { Cmp::Ge } else { Cmp::Eq },
                        value
                    },
                    timeout_ms
                }
            ),
            (
                name,
                1u16..,
                any::<bool>(),
                proptest::option::of((0u16..=1471, any::<u8>()))
            )
                .prop_map(|(name, port, a, byte)| Step::FwCounter {
                    name,
                    port,
                    side: if a { Side::A } else { Side::B },
                    byte: byte.map(|(offset, value)| ByteMatch { offset, value })
                }),
            (
                name,
                1u16..,
                any::<bool>(),
                proptest::option::of((0u16..=1471, any::<u8>())),
                any::<bool>()
            )
                .prop_map(|(name, port, a, byte, drop)| Step::XdpCounter {
                    name,
                    port,
                    side: if a { Side::A } else { Side::B },
                    byte: byte.map(|(offset, value)| ByteMatch { offset, value }),
                    action: if drop {
                        XdpAction::Drop
                    } else {
                        XdpAction::Pass
                    }
                }),
        ]
    }

    proptest! {
        #[test]
        fn disasm_asm_round_trip(steps in proptest::collection::vec(any_step(), 0..12)) {
            // Counter names must be unique, and one xdp.counter per side.
            let mut seen = std::collections::HashSet::new();
            let mut sides = Vec::new();
            let steps: Vec<Step> = steps.into_iter().filter(|s| match s {
                Step::FwCounter { name, .. } => seen.insert(name.clone()),
                Step::XdpCounter { name, side, .. } => {
                    if sides.contains(side) || !seen.insert(name.clone()) {
                        false
                    } else {
                        sides.push(*side);
                        true
                    }
                }
                _ => true,
            }).collect();
            let p = Program { steps };
            // The JSON form parses back to the same program ...
            prop_assert_eq!(&Program::parse(p.to_json().as_bytes()).unwrap(), &p);
            // ... and so does the text form.
            let text = disasm(&p);
            prop_assert_eq!(asm(&text).unwrap(), p, "text:\n{}", text);
        }

        #[test]
        fn asm_never_panics(text in "\\PC{0,80}") {
            let _ = asm(&text);
        }
    }

    #[test]
    fn empty_fields_map() {
        let p = Program {
            steps: vec![Step::LogInfo {
                message: String::new(),
                fields: BTreeMap::new(),
            }],
        };
        assert_eq!(asm(&disasm(&p)).unwrap(), p);
    }
}
