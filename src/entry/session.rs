//! One locked run against the real host: take the store lock, load the ownership record,
//! run the pipeline on the host's switches (netlink, and OVSDB where Open vSwitch runs; the
//! pipeline saves the record ahead of its writes), save the record. Every entry point
//! (apply, hooks, watch) goes through here, so they never fight. A run whose OVSDB
//! transaction lost to another client's change (it wrote nothing there) re-reads and runs
//! again, a bounded number of times.

use crate::apply::{Mode, Outcome, reconcile};
use crate::config::Config;
use crate::host_switch::HostSwitch;
use crate::intent::{GuestPort, Scope};
use crate::store::Store;
use anyhow::Result;

/// Runs after an OVSDB conflict before giving up.
const CONFLICT_ATTEMPTS: usize = 5;

/// Runs the pipeline for `scope` holding the lock; the record is saved only if the run
/// applied (a dry run or a declined confirmation leaves it as it was).
pub fn run(
    store: &Store,
    config: &Config,
    guests: &[GuestPort],
    scope: &Scope,
    mode: Mode,
) -> Result<Outcome> {
    run_on(
        HostSwitch::open(config)?,
        store,
        config,
        guests,
        scope,
        mode,
        &|| false,
    )
}

/// [`run`] on a switch the caller opened, maybe holding a read it made with it
/// ([`HostSwitch::reuse_read`]): that read stands for the run's first one only if
/// `unchanged_since_read` says, once the lock is held, that nothing changed since (the
/// watcher: no kernel notification has arrived since it read); otherwise the run reads again.
/// Open vSwitch changes by others need no such check: our transaction waits on every column
/// it read, so a change there makes it fail and the run read again.
pub fn run_on(
    mut sw: HostSwitch,
    store: &Store,
    config: &Config,
    guests: &[GuestPort],
    scope: &Scope,
    mode: Mode,
    unchanged_since_read: &dyn Fn() -> bool,
) -> Result<Outcome> {
    if matches!(mode, Mode::DryRun) {
        sw.forget_reused_read();
        let mut record = store.load_unlocked()?;
        return reconcile(
            &mut sw,
            config,
            guests,
            &mut record,
            scope,
            mode,
            &mut |_| Ok(()),
        );
    }
    let lock = store.lock()?;
    // a hook may have written between the caller's read and this lock
    if !unchanged_since_read() {
        sw.forget_reused_read();
    }
    let mut record = store.load(&lock)?;
    // written ahead of the kernel writes: a run that dies half-way leaves claims, not orphans
    let mut journal = |r: &crate::ownership::Record| store.save(&lock, r);
    let mut mode = mode;
    let mut attempt = 1;
    let outcome = loop {
        let confirm = matches!(mode, Mode::Confirm(_));
        let result = reconcile(
            &mut sw,
            config,
            guests,
            &mut record,
            scope,
            match &mut mode {
                Mode::DryRun => Mode::DryRun,
                Mode::Apply => Mode::Apply,
                Mode::Confirm(ask) => Mode::Confirm(&mut **ask),
            },
            &mut journal,
        );
        match result {
            // a confirmed plan is not re-planned behind the user's back
            Err(e) if sw.conflicted() && !confirm && attempt < CONFLICT_ATTEMPTS => {
                tracing::warn!("{e:#}; reading again (attempt {})", attempt + 1);
                attempt += 1;
                sw = HostSwitch::open(config)?;
            }
            other => break other?,
        }
    };
    if outcome.applied {
        store.save(&lock, &record)?;
    }
    for s in &outcome.skipped {
        tracing::info!("{s}");
    }
    for (b, p) in &outcome.stale {
        tracing::info!("forgot {p} on {b}: the port is gone or was re-created");
    }
    if outcome.applied {
        for v in &outcome.violations {
            tracing::error!("{v}");
        }
    }
    Ok(outcome)
}
