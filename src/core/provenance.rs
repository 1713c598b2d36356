//! What a port is to its bridge (its role) and where its VLANs came from (its origin): the
//! words the intent, the plan, the ownership record and every message share. Plain data.

use std::fmt;

/// What a port is to its bridge.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The bridge's own port: the host's access to the bridge.
    #[serde(rename = "self")]
    SelfPort,
    Uplink,
    Guest,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::SelfPort => "self",
            Role::Uplink => "uplink",
            Role::Guest => "guest",
        })
    }
}

/// Where a port's VLANs came from, for `show` and for messages.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Origin {
    /// Human description: `config t.toml:14`, `metadata`, `portgroup dmz-4 of network lan`…
    pub what: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The guest interface as libvirt names it (MAC, alias).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
}

impl Origin {
    pub fn new(what: impl Into<String>) -> Self {
        Origin {
            what: what.into(),
            domain: None,
            interface: None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.domain, &self.interface) {
            (Some(d), Some(i)) => write!(f, "{d} {i}: {}", self.what),
            (Some(d), None) => write!(f, "{d}: {}", self.what),
            _ => f.write_str(&self.what),
        }
    }
}
