//! The transport to ovsdb-server: a small synchronous JSON-RPC 1.0 client over a Unix stream
//! socket (RFC 7047 §4). It owns request ids, matches replies to requests by id, answers the
//! server's `echo` requests, and queues notifications (`update`, `update2`, `locked`, …) for
//! the caller. Nothing here knows about tables or VLANs.
//!
//! Hand-written on purpose: no maintained synchronous Rust OVSDB client exists (the crates are
//! async, tied to a runtime, or carry the schema's types without a client), and the protocol
//! subset needed is a few dozen lines.
//!
//! Framing: JSON-RPC over a stream has no length prefix; messages are concatenated JSON texts.
//! Bytes go into a buffer and a `serde_json::StreamDeserializer` over that buffer takes every
//! whole message off its front, leaving a partial one for the next read — so a reply split over
//! several reads, and several replies in one read, both work. (A deserializer reading the
//! socket directly would be poisoned by the first read timeout; over our own buffer a timeout
//! loses nothing.) Every wait is bounded by a deadline; every error names the socket path.

use serde_json::{Value, json};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a request waits for its reply unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why talking to the server failed. Every variant names the socket.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("cannot connect to OVSDB at {path}: {source} (is ovsdb-server running?)")]
    Connect { path: PathBuf, source: io::Error },
    #[error("OVSDB at {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("OVSDB at {path} closed the connection")]
    Closed { path: PathBuf },
    #[error("OVSDB at {path} did not answer `{method}` within {after:?}")]
    Timeout {
        path: PathBuf,
        method: String,
        after: Duration,
    },
    #[error("OVSDB at {path} sent something that is not JSON-RPC: {detail}")]
    Protocol { path: PathBuf, detail: String },
    #[error("OVSDB at {path} refused `{method}`: {error}")]
    Server {
        path: PathBuf,
        method: String,
        error: Value,
    },
}

/// A message from the server that asks for no answer (`"id": null`).
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub method: String,
    pub params: Value,
}

/// One connection to ovsdb-server.
pub struct Client {
    path: PathBuf,
    stream: UnixStream,
    buf: Vec<u8>,
    next_id: u64,
    notifications: VecDeque<Notification>,
    timeout: Duration,
}

impl Client {
    /// Connects to the server's Unix socket.
    pub fn connect(path: &Path) -> Result<Self, RpcError> {
        let stream = UnixStream::connect(path).map_err(|source| RpcError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::from_stream(stream, path))
    }

    /// Wraps a connected stream; `path` only names it in errors (tests pass a socketpair).
    pub fn from_stream(stream: UnixStream, path: &Path) -> Self {
        Client {
            path: path.to_path_buf(),
            stream,
            buf: Vec::new(),
            next_id: 1,
            notifications: VecDeque::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The socket this client talks to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The socket's descriptor, for a caller's `poll`.
    pub fn fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.stream)
    }

    /// How long `call` waits for a reply.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sends a request and waits for its reply, answering `echo` and queueing notifications
    /// that arrive meanwhile. Returns the reply's `result`; a non-null `error` is an error.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, RpcError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"method": method, "params": params, "id": id}))?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let msg = match self.next_message(deadline)? {
                Some(m) => m,
                None => {
                    return Err(RpcError::Timeout {
                        path: self.path.clone(),
                        method: method.to_string(),
                        after: self.timeout,
                    });
                }
            };
            if let Some(reply) = self.dispatch(msg)? {
                if reply.get("id") != Some(&json!(id)) {
                    tracing::debug!(path = %self.path.display(), ?reply, "dropping a reply to an earlier request");
                    continue;
                }
                let error = reply.get("error").cloned().unwrap_or(Value::Null);
                if !error.is_null() {
                    return Err(RpcError::Server {
                        path: self.path.clone(),
                        method: method.to_string(),
                        error,
                    });
                }
                return Ok(reply.get("result").cloned().unwrap_or(Value::Null));
            }
        }
    }

    /// The first queued or arriving notification that `wanted` accepts, waiting until
    /// `deadline`; `None` when the deadline passes. Others stay queued, in order.
    pub fn wait_notification(
        &mut self,
        deadline: Instant,
        mut wanted: impl FnMut(&Notification) -> bool,
    ) -> Result<Option<Notification>, RpcError> {
        let mut seen = 0;
        loop {
            if let Some(i) = self.notifications.iter().skip(seen).position(&mut wanted) {
                return Ok(self.notifications.remove(seen + i));
            }
            seen = self.notifications.len();
            match self.next_message(deadline)? {
                None => return Ok(None),
                Some(msg) => {
                    if let Some(reply) = self.dispatch(msg)? {
                        tracing::debug!(path = %self.path.display(), ?reply, "dropping a reply nobody waits for");
                    }
                }
            }
        }
    }

    /// Takes every queued notification.
    pub fn take_notifications(&mut self) -> Vec<Notification> {
        self.notifications.drain(..).collect()
    }

    /// Handles one message: answers `echo`, queues notifications, returns replies.
    fn dispatch(&mut self, msg: Value) -> Result<Option<Value>, RpcError> {
        let Some(method) = msg.get("method").and_then(Value::as_str) else {
            if msg.get("id").is_some()
                && (msg.get("result").is_some() || msg.get("error").is_some())
            {
                return Ok(Some(msg));
            }
            return Err(self.protocol(format!("neither a request nor a reply: {msg}")));
        };
        let params = msg.get("params").cloned().unwrap_or(Value::Null);
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        if id.is_null() {
            self.notifications.push_back(Notification {
                method: method.to_string(),
                params,
            });
        } else if method == "echo" {
            self.send(&json!({"result": params, "error": null, "id": id}))?;
        } else {
            let error = format!("virt-vlan does not serve `{method}`");
            self.send(&json!({"result": null, "error": error, "id": id}))?;
        }
        Ok(None)
    }

    fn send(&mut self, msg: &Value) -> Result<(), RpcError> {
        let bytes = serde_json::to_vec(msg).expect("a JSON value serializes");
        let io = |source| RpcError::Io {
            path: self.path.clone(),
            source,
        };
        self.stream
            .set_write_timeout(Some(self.timeout))
            .map_err(io)?;
        self.stream.write_all(&bytes).map_err(io)
    }

    /// The next whole message, reading until `deadline`; `None` when it passes first.
    fn next_message(&mut self, deadline: Instant) -> Result<Option<Value>, RpcError> {
        loop {
            if let Some(msg) = self.take_buffered()? {
                return Ok(Some(msg));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let io = |path: &Path, source| RpcError::Io {
                path: path.to_path_buf(),
                source,
            };
            self.stream
                .set_read_timeout(Some(deadline - now))
                .map_err(|e| io(&self.path, e))?;
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(RpcError::Closed {
                        path: self.path.clone(),
                    });
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(&self.path, e)),
            }
        }
    }

    /// Takes the first whole message off the buffer, if there is one.
    fn take_buffered(&mut self) -> Result<Option<Value>, RpcError> {
        let mut stream = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
        let msg = match stream.next() {
            None => {
                self.buf.clear(); // only whitespace
                return Ok(None);
            }
            Some(Err(e)) if e.is_eof() => return Ok(None), // the rest is still on its way
            Some(Err(e)) => return Err(self.protocol(e.to_string())),
            Some(Ok(msg)) => msg,
        };
        let used = stream.byte_offset();
        self.buf.drain(..used);
        if !msg.is_object() {
            return Err(self.protocol(format!("a message that is not an object: {msg}")));
        }
        Ok(Some(msg))
    }

    fn protocol(&self, detail: String) -> RpcError {
        RpcError::Protocol {
            path: self.path.clone(),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::thread;

    fn pair() -> (Client, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        let mut c = Client::from_stream(a, Path::new("/test/db.sock"));
        c.set_timeout(Duration::from_secs(5));
        (c, b)
    }

    /// Reads one request the client sent (the client writes each as one JSON text; the fake
    /// server reads them with the same stream deserializer over a buffered reader).
    fn read_request(server: &mut BufReader<UnixStream>) -> Value {
        let mut de = serde_json::Deserializer::from_reader(server).into_iter::<Value>();
        de.next().unwrap().unwrap()
    }

    #[test]
    fn reply_split_over_several_reads() {
        let (mut c, server) = pair();
        let t = thread::spawn(move || {
            let mut r = BufReader::new(server.try_clone().unwrap());
            let req = read_request(&mut r);
            assert_eq!(req["method"], "list_dbs");
            let reply =
                json!({"id": req["id"], "result": ["Open_vSwitch", "_Server"], "error": null})
                    .to_string();
            let mut w = server;
            for piece in reply.as_bytes().chunks(7) {
                w.write_all(piece).unwrap();
                w.flush().unwrap();
                thread::sleep(Duration::from_millis(5));
            }
        });
        let r = c.call("list_dbs", json!([])).unwrap();
        assert_eq!(r, json!(["Open_vSwitch", "_Server"]));
        t.join().unwrap();
    }

    #[test]
    fn several_messages_in_one_read_echo_answered_notifications_queued() {
        let (mut c, server) = pair();
        let t = thread::spawn(move || {
            let mut r = BufReader::new(server.try_clone().unwrap());
            let mut w = server;
            let req = read_request(&mut r);
            let id = req["id"].clone();
            // A stale reply, an echo request, a notification and the reply, in one write.
            let burst = format!(
                "{}\n{}{}  {}",
                json!({"id": 999, "result": "stale", "error": null}),
                json!({"method": "echo", "params": ["ping"], "id": "echo"}),
                json!({"method": "update2", "params": ["mon", {"Port": {}}], "id": null}),
                json!({"id": id, "result": {"ok": 1}, "error": null}),
            );
            w.write_all(burst.as_bytes()).unwrap();
            // The client must answer the echo.
            let echo = read_request(&mut r);
            assert_eq!(
                echo,
                json!({"result": ["ping"], "error": null, "id": "echo"})
            );
            // Then a second request; its reply comes with a notification behind it.
            let req = read_request(&mut r);
            let burst = format!(
                "{}{}",
                json!({"id": req["id"], "result": 2, "error": null}),
                json!({"method": "update", "params": ["mon2", {}]}),
            );
            w.write_all(burst.as_bytes()).unwrap();
        });
        assert_eq!(c.call("transact", json!([])).unwrap(), json!({"ok": 1}));
        assert_eq!(c.call("transact", json!([])).unwrap(), json!(2));
        let deadline = Instant::now() + Duration::from_secs(5);
        let n = c
            .wait_notification(deadline, |n| n.method == "update")
            .unwrap()
            .unwrap();
        assert_eq!(n.params, json!(["mon2", {}]));
        let rest = c.take_notifications();
        assert_eq!(
            rest,
            vec![Notification {
                method: "update2".into(),
                params: json!(["mon", {"Port": {}}])
            }]
        );
        t.join().unwrap();
    }

    #[test]
    fn ids_increase_and_errors_name_the_socket() {
        let (mut c, server) = pair();
        let t = thread::spawn(move || {
            let mut r = BufReader::new(server.try_clone().unwrap());
            let mut w = server;
            let a = read_request(&mut r);
            w.write_all(
                json!({"id": a["id"], "result": null, "error": "unknown database"})
                    .to_string()
                    .as_bytes(),
            )
            .unwrap();
            let b = read_request(&mut r);
            assert!(b["id"].as_u64().unwrap() > a["id"].as_u64().unwrap());
            // Garbage, then hang up.
            w.write_all(b"]").unwrap();
        });
        let e = c.call("get_schema", json!(["nope"])).unwrap_err();
        assert!(matches!(e, RpcError::Server { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("/test/db.sock") && msg.contains("unknown database"),
            "{msg}"
        );
        let e = c.call("get_schema", json!(["x"])).unwrap_err();
        assert!(matches!(e, RpcError::Protocol { .. }), "{e}");
        t.join().unwrap();
    }

    #[test]
    fn silence_times_out_and_a_hangup_is_reported() {
        let (mut c, server) = pair();
        c.set_timeout(Duration::from_millis(200));
        let started = Instant::now();
        let e = c.call("echo", json!([])).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(matches!(e, RpcError::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("/test/db.sock"), "{e}");
        // A notification wait with nothing coming returns None at its deadline.
        let none = c
            .wait_notification(Instant::now() + Duration::from_millis(50), |_| true)
            .unwrap();
        assert_eq!(none, None);
        drop(server);
        let e = c.call("echo", json!([])).unwrap_err();
        assert!(
            matches!(e, RpcError::Closed { .. } | RpcError::Io { .. }),
            "{e}"
        );
    }

    #[test]
    fn a_late_reply_to_a_timed_out_call_is_dropped() {
        let (mut c, server) = pair();
        c.set_timeout(Duration::from_millis(100));
        let t = thread::spawn(move || {
            let mut r = BufReader::new(server.try_clone().unwrap());
            let mut w = server;
            let first = read_request(&mut r);
            let second = read_request(&mut r);
            w.write_all(
                json!({"id": first["id"], "result": "late", "error": null})
                    .to_string()
                    .as_bytes(),
            )
            .unwrap();
            w.write_all(
                json!({"id": second["id"], "result": "right", "error": null})
                    .to_string()
                    .as_bytes(),
            )
            .unwrap();
            let _ = r.fill_buf();
        });
        assert!(c.call("a", json!([])).is_err());
        c.set_timeout(Duration::from_secs(5));
        assert_eq!(c.call("b", json!([])).unwrap(), json!("right"));
        drop(c);
        t.join().unwrap();
    }
}
