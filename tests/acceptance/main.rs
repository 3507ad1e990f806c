//! Black-box acceptance tests: they start the real `longhaul` processes (api, worker,
//! scheduler, stub provider) against the real Redis and Postgres, each test with its own
//! Redis key prefix and its own Postgres database, and assert on what a client sees.

mod harness;

mod api_contract;
mod backlog;
mod cancel_and_wait;
mod chaos_drain;
mod chaos_kill;
mod chaos_redis;
mod chaos_stale;
mod config_errors;
mod dead_letter;
mod front_door_auth;
mod front_door_http;
mod front_door_limits;
mod jobs_flow;
mod knobs;
mod observability;
mod openapi;
mod provider_faults;
mod provider_outage;
mod readiness;
mod result_cache;
mod retention;
mod scheduler_failover;
mod timeouts;
mod up;
mod webhooks;

// The benchmark's deterministic figure (issue 8).
mod round_trips;
