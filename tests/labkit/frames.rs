//! Real frames on one interface, seen from the host: an AF_PACKET socket bound to a port sees
//! every frame the kernel sends out of it (and every frame it receives). On a guest's tap that
//! is exactly what the bridge delivers towards the guest, so isolation can be checked with
//! frames even when the guest runs no operating system. Everything here is bounded in time.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const ETH_P_ARP: u16 = 0x0806;

/// The sender IPs (`"10.9.1.43"`) of the ARP requests that left or entered `ifname` while
/// `during` ran.
pub fn arp_senders_seen_on(ifname: &str, during: impl FnOnce()) -> BTreeSet<String> {
    arp_senders_seen_on_each(&[ifname], during).remove(0)
}

/// As `arp_senders_seen_on`, capturing on several interfaces at once: one set per interface,
/// in the order given.
pub fn arp_senders_seen_on_each(ifnames: &[&str], during: impl FnOnce()) -> Vec<BTreeSet<String>> {
    let captures: Vec<Capture> = ifnames.iter().map(|n| Capture::open(n)).collect();
    during();
    captures
        .iter()
        .map(|c| {
            c.drain()
                .iter()
                .filter_map(|f| arp_request_sender(f))
                .collect()
        })
        .collect()
}

/// The sender protocol address of an Ethernet/IPv4 ARP request, after any 802.1Q or 802.1ad
/// tags written into the frame; `None` for anything else.
pub fn arp_request_sender(frame: &[u8]) -> Option<String> {
    let mut off = 12;
    loop {
        let ethertype = u16::from_be_bytes(frame.get(off..off + 2)?.try_into().ok()?);
        match ethertype {
            ETH_P_8021Q | ETH_P_8021AD => off += 4,
            ETH_P_ARP => break,
            _ => return None,
        }
    }
    let arp = frame.get(off + 2..off + 2 + 28)?;
    // htype Ethernet, ptype IPv4, hlen 6, plen 4, op request
    if arp[..8] != [0, 1, 8, 0, 6, 4, 0, 1] {
        return None;
    }
    Some(format!("{}.{}.{}.{}", arp[14], arp[15], arp[16], arp[17]))
}

/// A packet socket bound to one interface.
struct Capture {
    fd: OwnedFd,
    ifname: String,
}

impl Capture {
    fn open(ifname: &str) -> Capture {
        let name = CString::new(ifname).unwrap();
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert!(
            ifindex != 0,
            "capture: no interface {ifname}: {}",
            std::io::Error::last_os_error()
        );
        // Protocol 0: the socket receives nothing until it is bound, so no frame of another
        // interface slips in between socket() and bind().
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        assert!(
            raw >= 0,
            "capture: AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // Frames queue here while `during` runs: room for many, a bounded wait for each read.
        let size: libc::c_int = 4 << 20;
        let _ = setsockopt(&fd, libc::SO_RCVBUFFORCE, &size);
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        setsockopt(&fd, libc::SO_RCVTIMEO, &timeout)
            .unwrap_or_else(|e| panic!("capture: SO_RCVTIMEO: {e}"));
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as libc::c_ushort;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as libc::c_int;
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert!(
            rc == 0,
            "capture: bind to {ifname}: {}",
            std::io::Error::last_os_error()
        );
        Capture {
            fd,
            ifname: ifname.to_string(),
        }
    }

    /// Every frame queued so far and arriving until the socket stays quiet for one read
    /// timeout; at most 5 s and 100000 frames.
    fn drain(&self) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = vec![0u8; 65536];
        let mut frames = Vec::new();
        while Instant::now() < deadline && frames.len() < 100_000 {
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                match e.kind() {
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => break,
                    std::io::ErrorKind::Interrupted => continue,
                    _ => panic!("capture on {}: recv: {e}", self.ifname),
                }
            }
            frames.push(buf[..n as usize].to_vec());
        }
        frames
    }
}

fn setsockopt<T>(fd: &OwnedFd, opt: libc::c_int, value: &T) -> std::io::Result<()> {
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
