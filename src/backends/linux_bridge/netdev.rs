//! Names and addresses of network devices as the kernel accepts them: interface names
//! (`dev_valid_name`) and MAC addresses. Pure checks, no I/O.

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

/// Checks `name` the way the kernel's `dev_valid_name` does, saying what is wrong.
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("interface name is empty".into());
    }
    if name.len() > MAX_IFNAME {
        return Err(format!(
            "interface name `{}` is {} bytes; the kernel allows at most {MAX_IFNAME} bytes",
            name.escape_debug(),
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("`{name}` cannot be an interface name"));
    }
    if name.contains('/') {
        return Err(format!(
            "interface name `{}` contains `/`",
            name.escape_debug()
        ));
    }
    if name.contains(':') {
        return Err(format!(
            "interface name `{}` contains `:`",
            name.escape_debug()
        ));
    }
    if name.contains('\0') {
        return Err(format!(
            "interface name `{}` contains a NUL byte",
            name.escape_debug()
        ));
    }
    if name.chars().any(char::is_whitespace) {
        return Err(format!(
            "interface name `{}` contains whitespace",
            name.escape_debug()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "interface name `{}` contains control characters",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// Parses `52:54:00:12:34:56` (either case) into bytes.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Formats a MAC the way libvirt prints it: lowercase, colon-separated.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifnames_as_the_kernel_sees_them() {
        for ok in [
            "eth0",
            "br0",
            "vnet12",
            "a",
            "fifteen-bytes-x",
            "veth.100",
            "é",
        ] {
            assert!(check_ifname(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("sixteen-bytes-xx", "16 bytes"),
            (".", "cannot be"),
            ("..", "cannot be"),
            ("a/b", "/"),
            ("a:b", ":"),
            ("a b", "whitespace"),
            ("a\tb", "whitespace"),
            ("a\nb", "whitespace"),
            ("a\u{1}b", "control"),
            ("a\0b", "NUL"),
        ] {
            let e = check_ifname(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        // multi-byte characters count in bytes, as the kernel counts
        assert!(check_ifname("ééééééééé").is_err());
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("52:54:00:AB:cd:0f"),
            Some([0x52, 0x54, 0, 0xab, 0xcd, 0x0f])
        );
        for bad in [
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0f:00",
            "5254.00ab.cd0f",
            "52:54:00:ab:cd:g0",
            "",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
        assert_eq!(
            format_mac(&[0x52, 0x54, 0, 0xab, 0xcd, 0x0f]),
            "52:54:00:ab:cd:0f"
        );
    }
}
