//! Parsing and checking a `POST /compute` body (`specs/edge-api.md` §3) without
//! I/O. Every refusal names the field by JSON pointer.

use pfs_dataplane::exec::Instruction;
use pfs_dataplane::kernels::Op;
use serde_json::{Map, Value};

use super::error::EdgeError;

/// Per-request limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most instructions in one request.
    pub max_instructions: usize,
    /// Most bytes (sum of instruction lengths) in one request.
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_instructions: 4096,
            max_bytes: 64 << 30,
        }
    }
}

/// Where the data of a job lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataUrl {
    /// `file://` with its absolute path (not yet confined to the root).
    File(std::path::PathBuf),
    /// `http://` or `https://`.
    Http(reqwest::Url),
}

/// A checked compute request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputeRequest {
    /// The data.
    pub data_url: DataUrl,
    /// The data URL as given.
    pub data_url_text: String,
    /// The instructions, in request order.
    pub instructions: Vec<Instruction>,
}

impl ComputeRequest {
    /// Sum of instruction lengths.
    pub fn bytes(&self) -> u64 {
        self.instructions.iter().map(|i| i.length).sum()
    }
}

/// Parses and checks a request body.
pub fn parse(body: &[u8], limits: Limits) -> Result<ComputeRequest, EdgeError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| EdgeError::bad("", format!("body is not valid JSON: {e}")))?;
    let Value::Object(obj) = v else {
        return Err(EdgeError::bad("", "body must be a JSON object"));
    };
    for key in obj.keys() {
        if key != "data_url" && key != "instructions" {
            return Err(EdgeError::bad(
                format!("/{}", escape(key)),
                format!("unknown field {key:?} (expected data_url, instructions)"),
            ));
        }
    }
    let data_url_text = match obj.get("data_url") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(EdgeError::bad("/data_url", "must be a string")),
        None => return Err(EdgeError::bad("/data_url", "is required")),
    };
    let data_url = parse_data_url(&data_url_text)?;
    let list = match obj.get("instructions") {
        Some(Value::Array(a)) => a,
        Some(_) => return Err(EdgeError::bad("/instructions", "must be an array")),
        None => return Err(EdgeError::bad("/instructions", "is required")),
    };
    if list.is_empty() {
        return Err(EdgeError::bad(
            "/instructions",
            "must hold at least one instruction",
        ));
    }
    if list.len() > limits.max_instructions {
        return Err(EdgeError::TooLarge {
            pointer: "/instructions".into(),
            message: format!(
                "{} instructions; this server allows at most {} per request",
                list.len(),
                limits.max_instructions
            ),
        });
    }
    let mut instructions = Vec::with_capacity(list.len());
    let mut total: u64 = 0;
    for (i, item) in list.iter().enumerate() {
        let ins = parse_instruction(i, item)?;
        total = total.saturating_add(ins.length);
        if total > limits.max_bytes {
            return Err(EdgeError::TooLarge {
                pointer: format!("/instructions/{i}/length"),
                message: format!(
                    "the instructions up to here cover {total} bytes; this server allows at most {} per request",
                    limits.max_bytes
                ),
            });
        }
        instructions.push(ins);
    }
    Ok(ComputeRequest {
        data_url,
        data_url_text,
        instructions,
    })
}

/// Parses a `data_url`: `file:///ABS/PATH`, `http://HOST[:PORT]/...` or `https://...`.
pub fn parse_data_url(text: &str) -> Result<DataUrl, EdgeError> {
    let url = reqwest::Url::parse(text)
        .map_err(|e| EdgeError::bad("/data_url", format!("{text:?} is not a URL: {e}")))?;
    match url.scheme() {
        "file" => {
            if url
                .host_str()
                .is_some_and(|h| !h.is_empty() && h != "localhost")
            {
                return Err(EdgeError::bad(
                    "/data_url",
                    format!("{text:?}: file:// URLs name no host"),
                ));
            }
            let path = url.to_file_path().map_err(|()| {
                EdgeError::bad(
                    "/data_url",
                    format!("{text:?} is not an absolute file path"),
                )
            })?;
            Ok(DataUrl::File(path))
        }
        "http" | "https" => {
            if url.host_str().is_none() {
                return Err(EdgeError::bad(
                    "/data_url",
                    format!("{text:?} names no host"),
                ));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(EdgeError::bad(
                    "/data_url",
                    "credentials in the URL are not accepted",
                ));
            }
            Ok(DataUrl::Http(url))
        }
        other => Err(EdgeError::bad(
            "/data_url",
            format!("scheme {other:?} is not supported (expected file, http or https)"),
        )),
    }
}

fn parse_instruction(i: usize, item: &Value) -> Result<Instruction, EdgeError> {
    let at = |field: &str| format!("/instructions/{i}/{field}");
    let Value::Object(obj) = item else {
        return Err(EdgeError::bad(
            format!("/instructions/{i}"),
            "must be an object {op, imm, offset, length}",
        ));
    };
    for key in obj.keys() {
        if !matches!(key.as_str(), "op" | "imm" | "offset" | "length") {
            return Err(EdgeError::bad(
                format!("/instructions/{i}/{}", escape(key)),
                format!("unknown field {key:?} (expected op, imm, offset, length)"),
            ));
        }
    }
    let op_name = match obj.get("op") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(EdgeError::bad(at("op"), "must be a string")),
        None => return Err(EdgeError::bad(at("op"), "is required")),
    };
    let imm = match obj.get("imm") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(v) => Some(v),
            None => {
                return Err(EdgeError::bad(
                    at("imm"),
                    format!("{n} is not an integer in 0..=255"),
                ));
            }
        },
        Some(_) => return Err(EdgeError::bad(at("imm"), "must be an integer in 0..=255")),
    };
    let op = Op::parse(op_name, imm).map_err(|e| {
        let field = if matches!(e, pfs_dataplane::kernels::KernelError::UnknownOp(_)) {
            "op"
        } else {
            "imm"
        };
        EdgeError::bad(at(field), e.to_string())
    })?;
    let offset = u64_field(obj, "offset", &at("offset"))?;
    let length = u64_field(obj, "length", &at("length"))?;
    if length == 0 {
        return Err(EdgeError::bad(
            at("length"),
            "0 is not allowed (an instruction covers at least one byte)",
        ));
    }
    if offset.checked_add(length).is_none() {
        return Err(EdgeError::bad(
            at("length"),
            format!("offset {offset} + length {length} overflows u64"),
        ));
    }
    Ok(Instruction { op, offset, length })
}

fn u64_field(obj: &Map<String, Value>, name: &str, pointer: &str) -> Result<u64, EdgeError> {
    match obj.get(name) {
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| EdgeError::bad(pointer, format!("{n} is not an integer in 0..=2^64-1"))),
        Some(_) => Err(EdgeError::bad(pointer, "must be a non-negative integer")),
        None => Err(EdgeError::bad(pointer, "is required")),
    }
}

/// Escapes a key for a JSON pointer (RFC 6901: `~` → `~0`, `/` → `~1`).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> EdgeError {
        parse(body.as_bytes(), Limits::default()).unwrap_err()
    }

    #[test]
    fn good_request_parses() {
        let r = parse(
            br#"{"data_url":"file:///dev/shm/x.bin","instructions":[{"op":"counteq","imm":0,"offset":0,"length":1048576},{"op":"fnv","offset":5,"length":3}]}"#,
            Limits::default(),
        )
        .unwrap();
        assert_eq!(r.data_url, DataUrl::File("/dev/shm/x.bin".into()));
        assert_eq!(r.instructions.len(), 2);
        assert_eq!(r.instructions[0].op, Op::CountEq(0));
        assert_eq!(r.bytes(), 1048579);
    }

    #[test]
    fn bad_fields_are_pointed_at() {
        let cases = [
            ("{", ""),
            ("[]", ""),
            (r#"{"instructions":[]}"#, "/data_url"),
            (r#"{"data_url":5,"instructions":[]}"#, "/data_url"),
            (r#"{"data_url":"ftp://x/y","instructions":[]}"#, "/data_url"),
            (
                r#"{"data_url":"file:///x","instructions":[]}"#,
                "/instructions",
            ),
            (
                r#"{"data_url":"file:///x","instructions":{}}"#,
                "/instructions",
            ),
            (r#"{"data_url":"file:///x","extra":1}"#, "/extra"),
            (
                r#"{"data_url":"file:///x","instructions":[{"op":"mul","offset":0,"length":1}]}"#,
                "/instructions/0/op",
            ),
            (
                r#"{"data_url":"file:///x","instructions":[{"op":"xor","offset":0,"length":1},{"op":"counteq","offset":0,"length":1}]}"#,
                "/instructions/1/imm",
            ),
            (
                r#"{"data_url":"file:///x","instructions":[{"op":"counteq","imm":256,"offset":0,"length":1}]}"#,
                "/instructions/0/imm",
            ),
            (
                r#"{"data_url":"file:///x","instructions":[{"op":"xor","offset":-1,"length":1}]}"#,
                "/instructions/0/offset",
            ),
            (
                r#"{"data_url":"file:///x","instructions":[{"op":"xor","offset":0,"length":0}]}"#,
                "/instructions/0/length",
            ),
            (
                r#"{"data_url":"file:///x","instructions":[{"op":"xor","offset":18446744073709551615,"length":2}]}"#,
                "/instructions/0/length",
            ),
            (
                r#"{"data_url":"file:///x","instructions":[{"op":"xor","offset":0,"length":1.5}]}"#,
                "/instructions/0/length",
            ),
            (
                r#"{"data_url":"file:///x","instructions":[{"op":"xor","offset":0,"length":1,"a/b":1}]}"#,
                "/instructions/0/a~1b",
            ),
            (
                r#"{"data_url":"file:///x","instructions":[7]}"#,
                "/instructions/0",
            ),
        ];
        for (body, pointer) in cases {
            let e = err(body);
            assert_eq!(e.status(), 400, "{body}: {e}");
            assert_eq!(e.pointer(), pointer, "{body}: {e}");
        }
    }

    #[test]
    fn limits_are_413() {
        let limits = Limits {
            max_instructions: 2,
            max_bytes: 10,
        };
        let e = parse(
            br#"{"data_url":"file:///x","instructions":[{"op":"xor","offset":0,"length":1},{"op":"xor","offset":0,"length":1},{"op":"xor","offset":0,"length":1}]}"#,
            limits,
        )
        .unwrap_err();
        assert_eq!((e.status(), e.pointer()), (413, "/instructions"));
        let e = parse(
            br#"{"data_url":"file:///x","instructions":[{"op":"xor","offset":0,"length":6},{"op":"xor","offset":0,"length":6}]}"#,
            limits,
        )
        .unwrap_err();
        assert_eq!((e.status(), e.pointer()), (413, "/instructions/1/length"));
    }
}
