//! One locked run against the real kernel: take the store lock, load the ownership record,
//! run the pipeline with netlink (which saves the record ahead of its writes), save the
//! record. Every entry point (apply, hooks, watch)
//! goes through here, so they never fight.

use crate::apply::{Mode, Outcome, reconcile};
use crate::config::Config;
use crate::intent::{GuestPort, Scope};
use crate::netlink::Netlink;
use crate::store::Store;
use anyhow::Result;

/// Runs the pipeline for `scope` holding the lock; the record is saved only if the run
/// applied (a dry run or a declined confirmation leaves it as it was).
pub fn run(
    store: &Store,
    config: &Config,
    guests: &[GuestPort],
    scope: &Scope,
    mode: Mode,
) -> Result<Outcome> {
    let mut nl = Netlink::open()?;
    if matches!(mode, Mode::DryRun) {
        let mut record = store.load_unlocked()?;
        return reconcile(
            &mut nl,
            config,
            guests,
            &mut record,
            scope,
            mode,
            &mut |_| Ok(()),
        );
    }
    let lock = store.lock()?;
    let mut record = store.load(&lock)?;
    // written ahead of the kernel writes: a run that dies half-way leaves claims, not orphans
    let mut journal = |r: &crate::ownership::Record| store.save(&lock, r);
    let outcome = reconcile(
        &mut nl,
        config,
        guests,
        &mut record,
        scope,
        mode,
        &mut journal,
    )?;
    if outcome.applied {
        store.save(&lock, &record)?;
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
