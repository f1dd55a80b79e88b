//! Checksum lines as `sha256sum`, `b3sum` and `xxhsum` write and read them.
//!
//! Two forms:
//! - GNU: `<hex>  <name>` (or `<hex> *<name>`, the binary-mode marker);
//! - BSD (`--tag`): `<TAG> (<name>) = <hex>`, as `sha256sum --tag` and `xxhsum -H3` print.
//!
//! A name holding a newline, a carriage return or a backslash is escaped (`\n`, `\r`, `\\`) and the
//! line starts with `\`, as sha256sum does, so that every line stays one line.
//!
//! Each tool reads lists by its own rules, and [`Convention`] names them: [`parse_line_in`] reads
//! as `sha256sum -c` (coreutils 9.1), [`parse_b3sum_line`] as `b3sum -c` (1.2.0) and
//! [`parse_xxhsum_line`] as `xxhsum -c` (0.8.1, plus the `XXH3_<hex>` lines later versions write).

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

/// One line of `ringread sum` output (with its newline), byte-identical to `sha256sum`'s (or
/// `sha256sum --tag`'s).
pub fn format_line(algorithm: Algorithm, hex: &str, name: &[u8], tag: bool) -> Vec<u8> {
    let style = LineStyle {
        tag,
        ..LineStyle::default()
    };
    format_line_as(Convention::Coreutils, algorithm, hex, name, style)
}

/// How a checksum line is written, beyond its tool's convention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineStyle {
    /// BSD form: `TAG (name) = hex`.
    pub tag: bool,
    /// sha256sum's binary marker: `hex *name`.
    pub binary: bool,
    /// Ended by NUL instead of newline, the name not escaped (`sha256sum -z`).
    pub zero: bool,
    /// The digest's bytes in little-endian order, the tag marked `_LE` (`xxhsum --little-endian`).
    pub little_endian: bool,
}

/// One checksum line (with its end) as the tool of `convention` writes it: its escaping, and for
/// xxhsum the BSD form of XXH3 lines.
pub fn format_line_as(
    convention: Convention,
    algorithm: Algorithm,
    hex: &str,
    name: &[u8],
    style: LineStyle,
) -> Vec<u8> {
    let (shown, escaped) = if style.zero {
        (name.to_vec(), false)
    } else {
        convention.shown_name(name)
    };
    let hex = if style.little_endian {
        reverse_hex(hex)
    } else {
        hex.to_owned()
    };
    let mut line = Vec::with_capacity(shown.len() + hex.len() + 16);
    if escaped {
        line.push(b'\\');
    }
    // xxhsum writes XXH3 lines in the BSD form only.
    if style.tag || (convention == Convention::Xxhsum && algorithm.name() == "xxh3") {
        line.extend_from_slice(algorithm.tag().as_bytes());
        if style.little_endian {
            line.extend_from_slice(b"_LE");
        }
        line.extend_from_slice(b" (");
        line.extend_from_slice(&shown);
        line.extend_from_slice(b") = ");
        line.extend_from_slice(hex.as_bytes());
    } else {
        line.extend_from_slice(hex.as_bytes());
        line.extend_from_slice(if style.binary { b" *" } else { b"  " });
        line.extend_from_slice(&shown);
    }
    line.push(if style.zero { b'\0' } else { b'\n' });
    line
}

/// Whose rules a checksum list follows: the tool that writes it and checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convention {
    /// GNU coreutils (`sha256sum`): escapes `\`, newline and carriage return.
    Coreutils,
    /// `b3sum`: escapes `\` and newline; names that are not UTF-8 are written lossily.
    B3sum,
    /// `xxhsum`: names as they are; XXH3 lines always in the BSD form.
    Xxhsum,
}

impl Convention {
    /// The convention of the tool that prints `algorithm`'s digests: `b3sum` for BLAKE3, `xxhsum`
    /// for the xxHash family, coreutils for the rest.
    pub fn of(algorithm: Algorithm) -> Convention {
        match algorithm.name() {
            "blake3" => Convention::B3sum,
            "xxh3" | "xxh128" | "xxh64" | "xxh32" => Convention::Xxhsum,
            _ => Convention::Coreutils,
        }
    }

    /// A file's name as it appears in a line, and whether the line must start with `\`.
    pub fn shown_name(self, name: &[u8]) -> (Vec<u8>, bool) {
        match self {
            Convention::Coreutils if needs_escape(name) => (escape(name), true),
            Convention::Coreutils | Convention::Xxhsum => (name.to_vec(), false),
            Convention::B3sum => {
                let lossy = String::from_utf8_lossy(name);
                if lossy.contains(['\\', '\n']) {
                    let e = lossy.replace('\\', "\\\\").replace('\n', "\\n");
                    (e.into_bytes(), true)
                } else {
                    (lossy.into_owned().into_bytes(), false)
                }
            }
        }
    }
}

/// The `\`-escaped name of a check message (`name: OK`): sha256sum escapes names holding a
/// newline (all of `\`, newline and carriage return then), b3sum repeats the list's own text.
pub fn message_name(name: &[u8]) -> (Vec<u8>, bool) {
    if name.contains(&b'\n') {
        (escape(name), true)
    } else {
        (name.to_vec(), false)
    }
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

/// What `sha256sum -c` carries from one line of a list to the next: whether the list is in the
/// "reversed BSD" form `<hex> <name>` (one space, as `md5 -r` writes), which the first checksum
/// line decides.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListState {
    reversed: Option<bool>,
}

/// Parses one line of a checksum file (without its newline; a trailing `\r` is ignored) as
/// `sha256sum -c` does, the line on its own (see [`parse_line_in`]).
pub fn parse_line(line: &[u8], algorithm: Algorithm) -> Option<Entry> {
    parse_line_in(line, algorithm, &mut ListState::default())
}

fn is_white(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex_ok(h: &[u8], a: Algorithm) -> bool {
    h.len() == a.hex_len() && h.iter().all(u8::is_ascii_hexdigit)
}

/// Parses one line of a list as `sha256sum -c` (coreutils 9.1) does, `state` carried from the
/// list's earlier lines.
///
/// BSD lines (`TAG (name) = hex`, also OpenSSL's `TAG(name)= hex`) name their algorithm; other
/// lines (`hex  name`, `hex *name`, or `hex name` when the list is in that form) are read as
/// `algorithm`'s, and must have its number of hex digits. Leading white space is skipped; a
/// leading `\` means the name is escaped; a name holding a NUL byte ends there, as C strings do.
/// Returns `None` for anything else (comments and blank lines included).
pub fn parse_line_in(line: &[u8], algorithm: Algorithm, state: &mut ListState) -> Option<Entry> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let start = line
        .iter()
        .position(|&b| !is_white(b))
        .unwrap_or(line.len());
    let line = &line[start..];
    let (escaped, line) = match line.strip_prefix(b"\\") {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let unescape_name = |n: &[u8]| {
        let n = if escaped { unescape(n)? } else { n.to_vec() };
        // The name is a C string to coreutils.
        Some(match n.iter().position(|&b| b == 0) {
            Some(nul) => n[..nul].to_vec(),
            None => n,
        })
    };

    // BSD: TAG (name) = hex, with the spaces optional.
    let tag_end = line
        .iter()
        .position(|&b| b == b' ' || b == b'(')
        .unwrap_or(line.len());
    if let Some(tag) = std::str::from_utf8(&line[..tag_end])
        .ok()
        .and_then(Algorithm::from_tag)
    {
        let mut rest = &line[tag_end..];
        rest = rest.strip_prefix(b" ").unwrap_or(rest);
        let rest = rest.strip_prefix(b"(")?;
        let close = rest.iter().rposition(|&b| b == b')')?;
        let mut after = &rest[close + 1..];
        while after.first().is_some_and(|&b| is_white(b)) {
            after = &after[1..];
        }
        let mut hex = after.strip_prefix(b"=")?;
        while hex.first().is_some_and(|&b| is_white(b)) {
            hex = &hex[1..];
        }
        if !hex_ok(hex, tag) {
            return None;
        }
        return Some(Entry {
            algorithm: tag,
            hex: String::from_utf8_lossy(hex).to_ascii_lowercase(),
            name: unescape_name(&rest[..close])?,
        });
    }

    // GNU: hex, white space, then " " or "*" and the name (or, in a reversed list, the name).
    let n = algorithm.hex_len();
    if line.len() < n + 2 || !is_white(line[n]) || !hex_ok(&line[..n], algorithm) {
        return None;
    }
    let rest = &line[n + 1..];
    let name = if rest.len() == 1 || !matches!(rest[0], b' ' | b'*') {
        if state.reversed == Some(false) {
            return None;
        }
        state.reversed = Some(true);
        rest
    } else if state.reversed == Some(true) {
        rest
    } else {
        state.reversed = Some(false);
        &rest[1..]
    };
    if name.is_empty() {
        return None;
    }
    Some(Entry {
        algorithm,
        hex: String::from_utf8_lossy(&line[..n]).to_ascii_lowercase(),
        name: unescape_name(name)?,
    })
}

/// Why `b3sum -c` refuses a line: its own words (`Short line`, `Invalid hex`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct B3sumLineError(pub &'static str);

/// Parses one line of a list (without its newline) as `b3sum -c` (1.2.0) does: `hex  name`
/// with exactly 64 lower-case hex digits and two spaces, or the same after a `\` whose name is
/// escaped (`\\` and `\n` only).
pub fn parse_b3sum_line(line: &str) -> Result<Entry, B3sumLineError> {
    let bad = |why| Err(B3sumLineError(why));
    let Some(first) = line.chars().next() else {
        return bad("Empty line");
    };
    let (escaped, line) = if first == '\\' {
        (true, &line[1..])
    } else {
        (false, line)
    };
    const HEX: usize = 64;
    if line.len() <= HEX + 2 {
        return bad("Short line");
    }
    if !line.bytes().take(HEX + 2).all(|b| b.is_ascii()) {
        return bad("Non-ASCII prefix");
    }
    if &line[HEX..HEX + 2] != "  " {
        return bad("Invalid space");
    }
    if !line[..HEX]
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return bad("Invalid hex");
    }
    let text = &line[HEX + 2..];
    let name = if escaped {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find('\\') {
            out.push_str(&rest[..i]);
            match rest[i + 1..].chars().next() {
                Some('n') => out.push('\n'),
                Some('\\') => out.push('\\'),
                _ => return bad("Invalid backslash escape"),
            }
            rest = &rest[i + 2..];
        }
        out.push_str(rest);
        out
    } else {
        text.to_owned()
    };
    if name.contains('\0') {
        return bad("Null character in path");
    }
    if name.contains('\u{FFFD}') {
        return bad("Unicode replacement character in path");
    }
    Ok(Entry {
        #[cfg(feature = "blake3")]
        algorithm: Algorithm::Blake3,
        #[cfg(not(feature = "blake3"))]
        algorithm: Algorithm::ALL[0],
        hex: line[..HEX].to_owned(),
        name: name.into_bytes(),
    })
}

/// Reverses the bytes a digest's hex stands for: the little-endian form `xxhsum --little-endian`
/// writes, and back.
pub fn reverse_hex(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .rev()
        .map(|pair| String::from_utf8_lossy(pair).into_owned())
        .collect()
}

/// Parses one line of a list (without its newline) as `xxhsum -c` does: BSD lines `XXH32 (name) =
/// hex`, `XXH64`, `XXH128` and `XXH3` (each also `_LE`, little-endian), and `hex  name` or
/// `hex *name` whose number of digits says the algorithm (8: XXH32, 16: XXH64, 32: XXH128), and
/// the `XXH3_<hex>  name` lines xxhsum 0.8.2 and later write for XXH3. The digest is returned
/// big-endian (as xxhsum prints by default), whichever way the line has it.
pub fn parse_xxhsum_line(line: &[u8]) -> Option<Entry> {
    #[cfg(feature = "xxh3")]
    {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let algo = |tag: &[u8]| -> Option<(Algorithm, bool)> {
            let (tag, le) = match tag.strip_suffix(b"_LE") {
                Some(t) => (t, true),
                None => (tag, false),
            };
            let a = match tag {
                b"XXH32" => Algorithm::Xxh32,
                b"XXH64" => Algorithm::Xxh64,
                b"XXH128" => Algorithm::Xxh128,
                b"XXH3" => Algorithm::Xxh3,
                _ => return None,
            };
            Some((a, le))
        };
        let entry = |a: Algorithm, le: bool, hex: &[u8], name: &[u8]| {
            if !hex_ok(hex, a) || name.is_empty() {
                return None;
            }
            let hex = String::from_utf8_lossy(hex).to_ascii_lowercase();
            Some(Entry {
                algorithm: a,
                hex: if le { reverse_hex(&hex) } else { hex },
                name: name.to_vec(),
            })
        };
        if let Some(open) = line.windows(2).position(|w| w == b" (") {
            if let Some((a, le)) = algo(&line[..open]) {
                let rest = &line[open + 2..];
                let close = rest.windows(4).rposition(|w| w == b") = ")?;
                return entry(a, le, &rest[close + 4..], &rest[..close]);
            }
        }
        let space = line.iter().position(|&b| b == b' ')?;
        let (digest, rest) = line.split_at(space);
        if !matches!(rest.get(1), Some(b' ' | b'*')) {
            return None;
        }
        let name = &rest[2..];
        if let Some(under) = digest.iter().position(|&b| b == b'_') {
            let (a, le) = algo(&digest[..under])?;
            return entry(a, le, &digest[under + 1..], name);
        }
        let a = match digest.len() {
            8 => Algorithm::Xxh32,
            16 => Algorithm::Xxh64,
            32 => Algorithm::Xxh128,
            _ => return None,
        };
        entry(a, false, digest, name)
    }
    #[cfg(not(feature = "xxh3"))]
    {
        let _ = line;
        None
    }
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

    #[test]
    fn reads_lists_as_sha256sum_does() {
        let a = Algorithm::Sha256;
        let name =
            |l: String, st: &mut ListState| parse_line_in(l.as_bytes(), a, st).map(|e| e.name);
        // OpenSSL's form and the BSD form with optional spaces, after leading white space.
        for l in [
            format!("SHA256(f)= {H}"),
            format!("  SHA256 (f)={H}"),
            format!(" \\SHA256 (f) = {H}"),
        ] {
            assert_eq!(name(l, &mut ListState::default()), Some(b"f".to_vec()));
        }
        // "hex name" with one space: accepted when the list's first line is of that form, not after
        // a "hex  name" line; and the other way round the second space belongs to the name.
        let mut st = ListState::default();
        assert_eq!(name(format!("{H} f"), &mut st), Some(b"f".to_vec()));
        assert_eq!(name(format!("{H}  f"), &mut st), Some(b" f".to_vec()));
        let mut st = ListState::default();
        assert_eq!(name(format!("{H}  f"), &mut st), Some(b"f".to_vec()));
        assert_eq!(name(format!("{H} f"), &mut st), None);
        // A NUL ends the name; "hex  " names " ".
        let mut st = ListState::default();
        assert_eq!(name(format!("{H}  a\0b"), &mut st), Some(b"a".to_vec()));
        assert_eq!(
            name(format!("{H}  "), &mut ListState::default()),
            Some(b" ".to_vec())
        );
    }

    #[test]
    fn reads_lists_as_b3sum_does() {
        let ok = format!("{H}  f");
        assert_eq!(parse_b3sum_line(&ok).unwrap().name, b"f");
        assert_eq!(
            parse_b3sum_line(&format!("\\{H}  a\\nb\\\\")).unwrap().name,
            b"a\nb\\"
        );
        for (line, why) in [
            (String::new(), "Empty line"),
            ("0000  f".into(), "Short line"),
            (format!("{H} *f"), "Invalid space"),
            (H.to_uppercase() + "  f", "Invalid hex"),
            (format!("\\{H}  a\\r"), "Invalid backslash escape"),
            (format!("{H}  a\0"), "Null character in path"),
        ] {
            assert_eq!(
                parse_b3sum_line(&line),
                Err(B3sumLineError(why)),
                "{line:?}"
            );
        }
    }

    #[test]
    fn reads_lists_as_xxhsum_does() {
        let p = |l: &str| parse_xxhsum_line(l.as_bytes()).map(|e| (e.algorithm, e.hex, e.name));
        let f = b"f".to_vec();
        assert_eq!(
            p("946b5bf9  f"),
            Some((Algorithm::Xxh32, "946b5bf9".into(), f.clone()))
        );
        assert_eq!(
            p("E4C191D091BD8853 *f"),
            Some((Algorithm::Xxh64, "e4c191d091bd8853".into(), f.clone()))
        );
        assert_eq!(
            p("XXH3 (f) = 99fc819aaba2462a"),
            Some((Algorithm::Xxh3, "99fc819aaba2462a".into(), f.clone()))
        );
        assert_eq!(
            p("XXH3_99fc819aaba2462a  f"),
            Some((Algorithm::Xxh3, "99fc819aaba2462a".into(), f.clone()))
        );
        assert_eq!(
            p("XXH64_LE (f) = 5388bd91d091c1e4"),
            Some((Algorithm::Xxh64, "e4c191d091bd8853".into(), f))
        );
        for bad in [
            "",
            "# c",
            " 946b5bf9  f",
            "\\946b5bf9  f",
            "946b5bf  f",
            "XXH3 (f) = 99",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }
}
