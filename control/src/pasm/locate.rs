//! Names the JSON pointer at a byte offset of a (possibly malformed) JSON text, so
//! that a syntax error or a byte that is not UTF-8 can be reported as "step N,
//! /N/field" rather than only as a line and column.

/// One level of nesting seen while scanning.
#[derive(Debug)]
enum Frame {
    Array {
        index: usize,
    },
    Object {
        key: Option<String>,
        expect_key: bool,
    },
}

/// The JSON pointer (RFC 6901) of the value being read at the end of `prefix`.
/// Never fails and never panics: malformed input yields the best pointer so far.
pub fn pointer_at(prefix: &str) -> String {
    let mut stack: Vec<Frame> = Vec::new();
    let mut chars = prefix.chars();
    while let Some(c) = chars.next() {
        match c {
            '[' => stack.push(Frame::Array { index: 0 }),
            '{' => stack.push(Frame::Object {
                key: None,
                expect_key: true,
            }),
            ']' | '}' => {
                stack.pop();
            }
            ',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { key, expect_key }) => {
                    *key = None;
                    *expect_key = true;
                }
                None => {}
            },
            ':' => {
                if let Some(Frame::Object { expect_key, .. }) = stack.last_mut() {
                    *expect_key = false;
                }
            }
            '"' => {
                let mut s = String::new();
                let mut escaped = false;
                for c in chars.by_ref() {
                    if escaped {
                        s.push(match c {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => other,
                        });
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    } else {
                        s.push(c);
                    }
                }
                if let Some(Frame::Object { key, expect_key }) = stack.last_mut()
                    && *expect_key
                {
                    *key = Some(s);
                }
            }
            _ => {}
        }
    }
    let mut out = String::new();
    for f in &stack {
        match f {
            Frame::Array { index } => {
                out.push('/');
                out.push_str(&index.to_string());
            }
            Frame::Object { key: Some(k), .. } => {
                out.push('/');
                out.push_str(&escape_token(k));
            }
            Frame::Object { key: None, .. } => {}
        }
    }
    out
}

/// Escapes one reference token of a JSON pointer (`~` → `~0`, `/` → `~1`).
pub fn escape_token(t: &str) -> String {
    t.replace('~', "~0").replace('/', "~1")
}

/// The step index named by a pointer's first token, if it is one.
pub fn step_of(pointer: &str) -> Option<usize> {
    pointer.strip_prefix('/')?.split('/').next()?.parse().ok()
}

/// Byte offset of 1-based `line` and `column` (in characters) within `text`.
pub fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let col_bytes: usize = l
                .chars()
                .take(column.saturating_sub(1))
                .map(char::len_utf8)
                .sum();
            return offset + col_bytes;
        }
        offset += l.len();
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers() {
        assert_eq!(pointer_at(""), "");
        assert_eq!(pointer_at("["), "/0");
        assert_eq!(pointer_at("[{\"op\":1},{\"a\":"), "/1/a");
        assert_eq!(pointer_at("[{}, {\"meta\": {\"ttl\": "), "/1/meta/ttl");
        assert_eq!(pointer_at("[{\"a/b\":\"x"), "/0/a~1b");
        assert_eq!(pointer_at("[{\"a\":\"x\\\"y\", \"b\": [1,2,"), "/0/b/2");
        assert_eq!(pointer_at("]]]}}{,,::\"\\"), "");
        assert_eq!(step_of("/12/payload"), Some(12));
        assert_eq!(step_of(""), None);
    }

    #[test]
    fn offsets() {
        let t = "ab\ncdé\nf";
        assert_eq!(offset_of(t, 1, 1), 0);
        assert_eq!(offset_of(t, 2, 3), 5);
        assert_eq!(offset_of(t, 3, 1), 8);
        assert_eq!(offset_of(t, 9, 9), t.len());
    }
}
