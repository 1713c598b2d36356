//! Entry points: the commands (`apply`, `show`, `check`, `install`, `import`), libvirt's hooks
//! and the kvmvlan-style script dispatcher, the watcher, and the locked run every one of them
//! goes through (`session`).

pub mod check;
pub mod commands;
pub mod dispatcher;
pub mod hook;
pub mod hook_call;
pub mod install;
pub mod session;
pub mod show;
pub mod watch;
