//! Where log lines go. Commands log to stderr. Hooks also keep a log file
//! (`/var/log/virt-vlan/virt-vlan.log`, `VIRT_VLAN_LOG_DIR` to move it): libvirt shows a
//! hook's stderr only when the hook fails, and a detached helper has no stderr at all. The
//! file is rotated to `.1` past 1 MiB, so it stays bounded (by hand: no logging crate rotates
//! by size and renames the way logrotate users expect, in a few lines). The `watch` daemon,
//! under systemd (`JOURNAL_STREAM` set), logs to journald natively with tracing-journald
//! (priorities, `SYSLOG_IDENTIFIER=virt-vlan`); elsewhere to stderr with timestamps.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tracing::Level;

const ROTATE_AT: u64 = 1 << 20;

pub fn log_dir() -> PathBuf {
    std::env::var_os("VIRT_VLAN_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/log/virt-vlan"))
}

/// Where a process logs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// stderr at `level`.
    Stderr(Level),
    /// The log file only (hooks print their one-line verdict on stderr themselves).
    File(Level),
    /// A long-running daemon: journald when under systemd, else stderr with timestamps.
    Daemon(Level),
}

fn open_log() -> Option<File> {
    let dir = log_dir();
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join("virt-vlan.log");
    if std::fs::metadata(&path).is_ok_and(|m| m.len() > ROTATE_AT) {
        let _ = std::fs::rename(&path, dir.join("virt-vlan.log.1"));
    }
    OpenOptions::new().create(true).append(true).open(path).ok()
}

/// A shared append handle usable as a tracing writer.
#[derive(Clone)]
struct FileWriter(Arc<Mutex<File>>);

impl std::io::Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_or(Ok(buf.len()), |mut f| f.write(buf))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn init(sink: Sink) {
    let builder = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_target(false);
    let file = || open_log().map(|f| FileWriter(Arc::new(Mutex::new(f))));
    match sink {
        Sink::Stderr(level) => builder
            .without_time()
            .with_max_level(level)
            .with_writer(std::io::stderr)
            .init(),
        Sink::Daemon(level) if std::env::var_os("JOURNAL_STREAM").is_some() => {
            match tracing_journald::layer() {
                Ok(journal) => {
                    use tracing_subscriber::layer::SubscriberExt;
                    use tracing_subscriber::util::SubscriberInitExt;
                    tracing_subscriber::registry()
                        .with(journal.with_syslog_identifier("virt-vlan".into()))
                        .with(tracing_subscriber::filter::LevelFilter::from_level(level))
                        .init()
                }
                // no journal socket after all: plain lines on stderr, which systemd keeps
                Err(_) => builder
                    .without_time()
                    .with_max_level(level)
                    .with_writer(std::io::stderr)
                    .init(),
            }
        }
        Sink::Daemon(level) => builder
            .with_max_level(level)
            .with_writer(std::io::stderr)
            .init(),
        Sink::File(level) => match file() {
            Some(f) => builder
                .with_max_level(level)
                .with_writer(move || f.clone())
                .init(),
            None => builder
                .with_max_level(level)
                .with_writer(std::io::sink)
                .init(),
        },
    }
}
