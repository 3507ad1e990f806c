//! The Lua scripts of the state machine, loaded once. `invoke_async` sends `EVALSHA` and falls
//! back to `EVAL` when Redis lost its script cache (a restart), so callers need not care.
//!
//! `gcra.lua` is not a script: it is prepended to `enqueue.lua` and `rate.lua`, so both use
//! one implementation of the rate limit.

use std::sync::LazyLock;

use redis::Script;

/// Every transition script.
pub(crate) struct Scripts {
    pub enqueue: Script,
    pub claim: Script,
    pub heartbeat: Script,
    pub complete: Script,
    pub fail: Script,
    pub release: Script,
    pub maintain: Script,
    pub retry: Script,
    pub cancel: Script,
    pub rate: Script,
    pub trim_index: Script,
    pub cache_join: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    enqueue: Script::new(concat!(
        include_str!("lua/gcra.lua"),
        include_str!("lua/enqueue.lua")
    )),
    claim: Script::new(include_str!("lua/claim.lua")),
    heartbeat: Script::new(include_str!("lua/heartbeat.lua")),
    complete: Script::new(include_str!("lua/complete.lua")),
    fail: Script::new(include_str!("lua/fail.lua")),
    release: Script::new(include_str!("lua/release.lua")),
    maintain: Script::new(include_str!("lua/maintain.lua")),
    retry: Script::new(include_str!("lua/retry.lua")),
    cancel: Script::new(include_str!("lua/cancel.lua")),
    rate: Script::new(concat!(
        include_str!("lua/gcra.lua"),
        include_str!("lua/rate.lua")
    )),
    trim_index: Script::new(include_str!("lua/trim_index.lua")),
    cache_join: Script::new(include_str!("lua/cache_join.lua")),
});

/// The scripts.
pub(crate) fn get() -> &'static Scripts {
    &SCRIPTS
}

/// `(name, SHA1)` of every script, so a tool can tell which script an `EVALSHA` ran (the
/// benchmark and the round-trip test attribute the commands they see in `MONITOR`).
pub fn script_hashes() -> Vec<(&'static str, String)> {
    let s = get();
    [
        ("enqueue", &s.enqueue),
        ("claim", &s.claim),
        ("heartbeat", &s.heartbeat),
        ("complete", &s.complete),
        ("fail", &s.fail),
        ("release", &s.release),
        ("maintain", &s.maintain),
        ("retry", &s.retry),
        ("cancel", &s.cancel),
        ("rate", &s.rate),
        ("trim_index", &s.trim_index),
        ("cache_join", &s.cache_join),
    ]
    .into_iter()
    .map(|(name, script)| (name, script.get_hash().to_owned()))
    .collect()
}
