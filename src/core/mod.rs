//! The core: the port model (VID sets, a port's VLANs, its role and origin), the host's state
//! as plain data, the desired state (`intent`), the diff (`plan`), the ownership record, and
//! the pipeline that runs them against a `Switch` (`apply`): read, plan, write, verify, roll
//! back. No I/O and nothing backend-specific: the switches are behind the `Switch` trait.

pub mod apply;
pub mod intent;
pub mod ownership;
pub mod plan;
pub mod port_vlans;
pub mod provenance;
pub mod state;
pub mod switch;
pub mod vid;
