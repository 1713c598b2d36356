//! Linux bridges over rtnetlink: reading and writing bridge VLANs (`netlink`), link
//! notifications for the watcher (`linkwatch`), and netdev names and MACs (`netdev`).

pub mod linkwatch;
pub mod netdev;
pub mod netlink;
