//! Reads the test vectors and schemas of `specs/pasm.md` back and checks the code
//! against them.

use serde_json::Value;

use super::asm::{asm, disasm};
use super::nft::rule_text;
use super::program::{Program, Step, payload_bytes};
use super::schema::validate;
use pfs_dataplane::specvec::{blocks, unhex};

const SPEC: &str = include_str!("../../../specs/pasm.md");
const PROGRAM_SCHEMA: &str = include_str!("../../../specs/pasm.schema.json");

fn vector_lines(tag: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for b in blocks(SPEC, tag) {
        for l in b.lines().filter(|l| !l.trim().is_empty()) {
            let (a, b) = l
                .rsplit_once(" => ")
                .unwrap_or_else(|| panic!("bad vector line {l}"));
            out.push((a.to_string(), b.to_string()));
        }
    }
    assert!(!out.is_empty(), "no {tag} vectors");
    out
}

#[test]
fn asm_and_json_vectors_agree() {
    let json = blocks(SPEC, "pasm-json");
    let text = blocks(SPEC, "pasm-asm");
    assert_eq!(json.len(), 1);
    assert_eq!(text.len(), 1);
    let p = Program::parse(json[0].as_bytes()).unwrap();
    assert_eq!(asm(text[0]).unwrap(), p);
    assert_eq!(disasm(&p), text[0]);
    // The canonical JSON form is the vector itself.
    assert_eq!(p.to_json(), json[0]);
    let schema: Value = serde_json::from_str(PROGRAM_SCHEMA).unwrap();
    let v: Value = serde_json::from_str(json[0]).unwrap();
    assert_eq!(validate(&schema, &v), Vec::<String>::new());
}

#[test]
fn bad_vectors() {
    let schema: Value = serde_json::from_str(PROGRAM_SCHEMA).unwrap();
    for (src, want) in vector_lines("pasm-bad") {
        let e = Program::parse(src.as_bytes()).unwrap_err().to_string();
        assert!(e.contains(&want), "{src}\n  got:  {e}\n  want: {want}");
        // Where the bad input is structurally wrong, the schema agrees. Target
        // syntax, hex digits and counter-name characters are checked by the
        // parser only (the schema subset has no `pattern`).
        let parser_only = [
            "udp://::1",
            "\"zz\"",
            "\"Bad\"",
            "already has an xdp.counter",
        ];
        if let Ok(v) = serde_json::from_str::<Value>(&src)
            && !parser_only
                .iter()
                .any(|p| src.contains(p) || want.contains(p))
        {
            assert!(!validate(&schema, &v).is_empty(), "schema accepts {src}");
        }
    }
}

#[test]
fn payload_vectors() {
    for (src, hex) in vector_lines("pasm-payload") {
        let p = Program::parse(format!("[{src}]").as_bytes()).unwrap();
        let Step::PktSend {
            payload, encoding, ..
        } = &p.steps[0]
        else {
            panic!("{src}: not pkt.send")
        };
        assert_eq!(
            payload_bytes(payload, *encoding),
            unhex(&hex).unwrap(),
            "{src}"
        );
    }
}

#[test]
fn nft_vectors() {
    for (src, rule) in vector_lines("pasm-nft") {
        let p = Program::parse(format!("[{src}]").as_bytes()).unwrap();
        let Step::FwCounter {
            name, port, byte, ..
        } = &p.steps[0]
        else {
            panic!("{src}: not fw.counter")
        };
        assert_eq!(rule_text("T", name, *port, *byte), rule, "{src}");
    }
}

#[test]
fn examples_parse_and_match_schema() {
    let schema: Value = serde_json::from_str(PROGRAM_SCHEMA).unwrap();
    for src in [
        include_str!("../../examples/hello.pasm"),
        include_str!("../../examples/lab_counter.pasm"),
    ] {
        let p = Program::parse(src.as_bytes()).unwrap();
        assert_eq!(asm(&disasm(&p)).unwrap(), p);
        let v: Value = serde_json::from_str(src).unwrap();
        assert_eq!(validate(&schema, &v), Vec::<String>::new());
    }
}
