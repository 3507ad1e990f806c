//! The Lua scripts of the state machine, loaded once. `invoke_async` sends `EVALSHA` and falls
//! back to `EVAL` when Redis lost its script cache (a restart), so callers need not care.

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
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    enqueue: Script::new(include_str!("lua/enqueue.lua")),
    claim: Script::new(include_str!("lua/claim.lua")),
    heartbeat: Script::new(include_str!("lua/heartbeat.lua")),
    complete: Script::new(include_str!("lua/complete.lua")),
    fail: Script::new(include_str!("lua/fail.lua")),
    release: Script::new(include_str!("lua/release.lua")),
    maintain: Script::new(include_str!("lua/maintain.lua")),
    retry: Script::new(include_str!("lua/retry.lua")),
    cancel: Script::new(include_str!("lua/cancel.lua")),
});

/// The scripts.
pub(crate) fn get() -> &'static Scripts {
    &SCRIPTS
}
