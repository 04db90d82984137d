//! Reads test vectors out of the normative specs: fenced code blocks whose info
//! string names their kind (e.g. a block opened with three backticks and `vectors`).

/// The bodies of every fenced block in `markdown` whose info string is `tag`.
pub fn blocks<'a>(markdown: &'a str, tag: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = markdown;
    let open = format!("```{tag}\n");
    while let Some(start) = rest.find(&open) {
        let body_start = start + open.len();
        let Some(end) = rest[body_start..].find("```") else {
            break;
        };
        out.push(&rest[body_start..body_start + end]);
        rest = &rest[body_start + end + 3..];
    }
    out
}

/// Decodes a hex string (whitespace ignored). `None` on an odd length or a
/// non-hex digit.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks_exact(2)
        .map(|p| {
            let hi = (p[0] as char).to_digit(16)?;
            let lo = (p[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tagged_blocks() {
        let md = "a\n```vectors\nx 1\n```\n```text\nno\n```\n```vectors\ny 2\n```\n";
        assert_eq!(blocks(md, "vectors"), vec!["x 1\n", "y 2\n"]);
    }

    #[test]
    fn unhex_works() {
        assert_eq!(unhex("00ff 10"), Some(vec![0, 255, 16]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }
}
