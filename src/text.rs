//! Reading text a user or libvirt hands us — the config, kvmvlan's INI files, a hook's XML on
//! stdin — with a size limit (`/dev/zero` as a config must not eat the memory) and as UTF-8,
//! saying the line of the first byte that is not.

use std::io::Read;

/// Largest config or INI file read: real ones are kilobytes.
pub const MAX_FILE: u64 = 16 << 20;

/// Largest XML a hook reads on stdin: libvirt's own RPC limit (`VIR_NET_MESSAGE_MAX`), so no
/// domain or network XML libvirt holds is larger.
pub const MAX_STDIN: u64 = 32 << 20;

/// Reads all of `r` (at most `limit` bytes) as UTF-8. Errors are `what: …`, with the line of
/// the first invalid byte.
pub fn read_limited(r: impl Read, what: &str, limit: u64) -> Result<String, String> {
    let mut bytes = Vec::new();
    r.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{what}: cannot read: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "{what}: more than {} MiB; refused (nothing that large is a valid input)",
            limit >> 20
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let good = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line = bytes[..good].iter().filter(|b| **b == b'\n').count() + 1;
        format!(
            "{what}:{line}: not UTF-8 text (byte 0x{:02x} at offset {good})",
            bytes[good]
        )
    })
}

/// A value from the input as a message shows it: escaped, and cut after 64 characters (a
/// hostile megabyte-long attribute must not come back as a megabyte-long message).
pub fn shown(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(64)
        .collect::<String>()
        .escape_debug()
        .to_string();
    if s.chars().nth(64).is_some() {
        out.push_str(&format!("… ({} bytes)", s.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_line_of_the_first_bad_byte_and_refuses_too_much() {
        assert_eq!(read_limited(&b"a\nb"[..], "x", 10).unwrap(), "a\nb");
        let e = read_limited(&b"a\nb\n\xffc"[..], "f.toml", 10).unwrap_err();
        assert_eq!(e, "f.toml:3: not UTF-8 text (byte 0xff at offset 4)");
        let e = read_limited(std::io::repeat(b'a'), "stdin", 1 << 20).unwrap_err();
        assert!(e.starts_with("stdin: more than 1 MiB"), "{e}");
        assert_eq!(shown("a\nb"), "a\\nb");
        assert_eq!(
            shown(&"x".repeat(100)),
            format!("{}… (100 bytes)", "x".repeat(64))
        );
    }
}
