//! Checksum lines as `sha256sum`, `b3sum` and `xxhsum` write and read them.
//!
//! Two forms:
//! - GNU: `<hex>  <name>` (or `<hex> *<name>`, the binary-mode marker);
//! - BSD (`--tag`): `<TAG> (<name>) = <hex>`, as `sha256sum --tag` and `xxhsum -H3` print.
//!
//! A name holding a newline, a carriage return or a backslash is escaped (`\n`, `\r`, `\\`) and the
//! line starts with `\`, as sha256sum does, so that every line stays one line.

use crate::processor::Algorithm;

/// Whether a name must be escaped in a checksum line (as sha256sum here: a backslash, a newline or
/// a carriage return).
pub fn needs_escape(name: &[u8]) -> bool {
    name.iter().any(|&b| matches!(b, b'\\' | b'\n' | b'\r'))
}

/// `name` with `\` written `\\`, newline `\n` and carriage return `\r`.
pub fn escape(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for &b in name {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
    out
}

/// The inverse of [`escape`]; `None` for an invalid escape.
pub fn unescape(name: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(name.len());
    let mut it = name.iter();
    while let Some(&b) = it.next() {
        if b == b'\\' {
            match it.next() {
                Some(b'\\') => out.push(b'\\'),
                Some(b'n') => out.push(b'\n'),
                Some(b'r') => out.push(b'\r'),
                _ => return None,
            }
        } else {
            out.push(b);
        }
    }
    Some(out)
}

/// One line of `ringread sum` output (with its newline), byte-identical to the standard tools'.
pub fn format_line(algorithm: Algorithm, hex: &str, name: &[u8], tag: bool) -> Vec<u8> {
    let escaped = needs_escape(name);
    let shown = if escaped { escape(name) } else { name.to_vec() };
    let mut line = Vec::with_capacity(shown.len() + hex.len() + 16);
    if escaped {
        line.push(b'\\');
    }
    if tag {
        line.extend_from_slice(algorithm.tag().as_bytes());
        line.extend_from_slice(b" (");
        line.extend_from_slice(&shown);
        line.extend_from_slice(b") = ");
        line.extend_from_slice(hex.as_bytes());
    } else {
        line.extend_from_slice(hex.as_bytes());
        line.extend_from_slice(b"  ");
        line.extend_from_slice(&shown);
    }
    line.push(b'\n');
    line
}

/// A well-formed line of a checksum file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The algorithm: the BSD tag's, or the one the caller gave for GNU lines.
    pub algorithm: Algorithm,
    /// The expected digest, lower-case hex.
    pub hex: String,
    /// The file's name, unescaped.
    pub name: Vec<u8>,
}

/// Parses one line of a checksum file (without its newline; a trailing `\r` is ignored).
///
/// BSD lines name their algorithm; GNU lines are read as `algorithm`'s, and must have its number of
/// hex digits. Returns `None` for anything else (comments and blank lines included).
pub fn parse_line(line: &[u8], algorithm: Algorithm) -> Option<Entry> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (escaped, line) = match line.strip_prefix(b"\\") {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let unescape_name = |n: &[u8]| {
        if escaped {
            unescape(n)
        } else {
            Some(n.to_vec())
        }
    };
    let hex_ok =
        |h: &[u8], a: Algorithm| h.len() == a.hex_len() && h.iter().all(u8::is_ascii_hexdigit);

    // BSD: TAG (name) = hex
    if let Some(open) = line.windows(2).position(|w| w == b" (") {
        if let Some(tag) = std::str::from_utf8(&line[..open])
            .ok()
            .and_then(Algorithm::from_tag)
        {
            let rest = &line[open + 2..];
            if let Some(close) = rest.windows(4).rposition(|w| w == b") = ") {
                let hex = &rest[close + 4..];
                if hex_ok(hex, tag) {
                    return Some(Entry {
                        algorithm: tag,
                        hex: String::from_utf8_lossy(hex).to_ascii_lowercase(),
                        name: unescape_name(&rest[..close])?,
                    });
                }
            }
            return None;
        }
    }

    // GNU: hex, then "  " or " *", then the name.
    let n = algorithm.hex_len();
    if line.len() < n + 3 || !hex_ok(&line[..n], algorithm) {
        return None;
    }
    if line[n] != b' ' || !matches!(line[n + 1], b' ' | b'*') {
        return None;
    }
    Some(Entry {
        algorithm,
        hex: String::from_utf8_lossy(&line[..n]).to_ascii_lowercase(),
        name: unescape_name(&line[n + 2..])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6";

    #[test]
    fn lines_match_sha256sum() {
        // Printed by sha256sum 9.1 for files named "plain" and "we\ird".
        assert_eq!(
            format_line(Algorithm::Sha256, H, b"plain", false),
            format!("{H}  plain\n").into_bytes()
        );
        assert_eq!(
            format_line(Algorithm::Sha256, H, b"we\\ird", false),
            format!("\\{H}  we\\\\ird\n").into_bytes()
        );
        assert_eq!(
            format_line(Algorithm::Sha256, H, b"new\nline", true),
            format!("\\SHA256 (new\\nline) = {H}\n").into_bytes()
        );
    }

    #[test]
    fn parses_both_forms_and_round_trips_names() {
        for name in [
            &b"plain"[..],
            b"we\\ird",
            b"new\nline",
            b"a (b) = c",
            b" lead",
            b"cr\r",
        ] {
            for tag in [false, true] {
                let line = format_line(Algorithm::Sha256, H, name, tag);
                // A tagged line names its algorithm whatever the default; a plain one takes the default.
                let default = if tag {
                    Algorithm::Blake3
                } else {
                    Algorithm::Sha256
                };
                let e = parse_line(&line[..line.len() - 1], default).unwrap();
                assert_eq!(e.name, name);
                assert_eq!(e.hex, H);
                assert_eq!(e.algorithm, Algorithm::Sha256);
            }
        }
    }

    #[test]
    fn rejects_malformed_lines() {
        let a = Algorithm::Sha256;
        for bad in [
            &b""[..],
            b"# comment",
            b"garbage line",
            &H.as_bytes()[1..],
            format!("{H} plain").as_bytes(),
            format!("{H}  ").as_bytes(),
            format!("SHA256 (x) = {}", &H[1..]).as_bytes(),
            format!("\\{H}  bad\\escape").as_bytes(),
            b"XXH3 (f) = 0123",
        ] {
            assert_eq!(
                parse_line(bad, a),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_line(format!("{H} *bin").as_bytes(), a).is_some());
        assert!(parse_line(format!("{H}  crlf\r").as_bytes(), a).is_some_and(|e| e.name == b"crlf"));
        assert!(parse_line(b"XXH3 (f) = 642f46e1b195a45e", a)
            .is_some_and(|e| e.algorithm == Algorithm::Xxh3));
    }
}
