//! Two schedulers, and a SIGKILL of the leader: the other one leads within one lease, and
//! every task keeps running, each tick of each task exactly once across both.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::harness::TestEnv;

const TASKS: [&str; 6] = [
    "rescue_leases",
    "promote_due",
    "cache_cleanup",
    "key_expiry",
    "result_retention",
    "metrics_rollup",
];
const LEASE: Duration = Duration::from_secs(2);

/// The JSON log events of `log` (a process's log text).
fn events(log: &str) -> impl Iterator<Item = Value> + '_ {
    log.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
}

/// The scheduler id a process logged at start.
fn scheduler_id(log: &str) -> Option<String> {
    events(log)
        .find(|e| e["message"] == "scheduler started")
        .and_then(|e| e["id"].as_str().map(str::to_owned))
}

/// `(task, tick, succeeded)` of every run a scheduler logged.
fn runs(log: &str) -> Vec<(String, i64, bool)> {
    events(log)
        .filter_map(|e| {
            let ok = match e["message"].as_str()? {
                "scheduler task ran" => true,
                "scheduler task failed; it runs again at its next tick" => false,
                _ => return None,
            };
            Some((e["task"].as_str()?.to_owned(), e["tick"].as_i64()?, ok))
        })
        .collect()
}

#[tokio::test]
async fn a_killed_leader_is_replaced_within_one_lease_and_no_tick_runs_twice() {
    let mut builder = TestEnv::builder("sched-failover").env("LONGHAUL_SCHEDULER_LEASE_SECS", "2");
    for task in TASKS {
        builder = builder.env(
            &format!("LONGHAUL_SCHEDULE_{}", task.to_uppercase()),
            "* * * * * *",
        );
    }
    let env = builder.build().await;
    let mut redis = env.redis().await;
    let leader_key = env.redis_key("scheduler:leader");
    let leader = async |redis: &mut redis::aio::MultiplexedConnection| -> Option<String> {
        redis::cmd("GET")
            .arg(&leader_key)
            .query_async(redis)
            .await
            .expect("GET leader")
    };

    let a = env.spawn("scheduler-a", &["scheduler"], &[]);
    let a_id = env
        .wait_for(Duration::from_secs(30), "scheduler a starts", async || {
            scheduler_id(&a.log_text())
        })
        .await;
    env.wait_until(Duration::from_secs(10), "scheduler a leads", async || {
        leader(&mut redis).await.as_deref() == Some(a_id.as_str())
    })
    .await;
    let b = env.spawn("scheduler-b", &["scheduler"], &[]);
    let b_id = env
        .wait_for(Duration::from_secs(30), "scheduler b starts", async || {
            scheduler_id(&b.log_text())
        })
        .await;
    // a runs every task for a few ticks while b stands by.
    env.wait_until(
        Duration::from_secs(20),
        "a ran every task twice",
        async || {
            let done = runs(&a.log_text());
            TASKS
                .iter()
                .all(|t| done.iter().filter(|(task, _, _)| task == t).count() >= 2)
        },
    )
    .await;
    assert_eq!(leader(&mut redis).await.as_deref(), Some(a_id.as_str()));
    assert!(runs(&b.log_text()).is_empty(), "a follower runs nothing");

    a.signal(Signal::SIGKILL);
    let killed = Instant::now();
    env.wait_until(Duration::from_secs(10), "scheduler b leads", async || {
        leader(&mut redis).await.as_deref() == Some(b_id.as_str())
    })
    .await;
    let takeover = killed.elapsed();
    assert!(
        takeover <= LEASE + Duration::from_millis(800),
        "b took {takeover:?} to lead; the lease is {LEASE:?}"
    );
    let a_runs = runs(&a.log_text());
    let a_last_tick = a_runs.iter().map(|(_, tick, _)| *tick).max().unwrap();
    env.wait_until(
        Duration::from_secs(20),
        "b ran every task three times",
        async || {
            let done = runs(&b.log_text());
            TASKS
                .iter()
                .all(|t| done.iter().filter(|(task, _, _)| task == t).count() >= 3)
        },
    )
    .await;
    b.signal(Signal::SIGTERM);
    let mut b = b;
    assert_eq!(b.wait_exit(Duration::from_secs(20)).await, Some(Some(0)));

    // Every (task, tick) ran once, by one scheduler; nothing failed.
    let b_runs = runs(&b.log_text());
    let mut count: HashMap<(String, i64), Vec<&str>> = HashMap::new();
    for (who, list) in [("a", &a_runs), ("b", &b_runs)] {
        for (task, tick, ok) in list {
            assert!(
                ok,
                "{task} failed at tick {tick} on {who}:\n{}",
                if who == "a" {
                    a.log_text()
                } else {
                    b.log_text()
                }
            );
            count.entry((task.clone(), *tick)).or_default().push(who);
        }
    }
    let twice: BTreeMap<_, _> = count.iter().filter(|(_, who)| who.len() > 1).collect();
    assert!(twice.is_empty(), "ticks run more than once: {twice:?}");
    for task in TASKS {
        let after: Vec<i64> = b_runs
            .iter()
            .filter(|(t, _, _)| t == task)
            .map(|(_, tick, _)| *tick)
            .collect();
        assert!(
            after
                .iter()
                .all(|tick| *tick > a_last_tick - LEASE.as_secs() as i64),
            "b ran only recent ticks of {task}: {after:?}"
        );
    }

    // The record in Redis agrees with the logs (a run whose scheduler was killed between
    // logging it and recording it may be missing from the record).
    let record: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(env.redis_key("scheduler:tasks"))
        .query_async(&mut redis)
        .await
        .unwrap();
    for task in TASKS {
        let logged = count.keys().filter(|(t, _)| t == task).count();
        let recorded: usize = record[&format!("{task}:runs_ok")].parse().unwrap();
        assert!(
            recorded == logged || recorded + 1 == logged,
            "{task}: {recorded} runs recorded, {logged} logged"
        );
        assert_eq!(record.get(&format!("{task}:leader")), Some(&b_id));
    }
}
