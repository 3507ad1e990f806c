//! A bad configuration stops the process at start with a message naming the variable.

use std::time::Duration;

use crate::harness::TestEnv;

#[tokio::test]
async fn a_bad_env_value_stops_every_role_naming_the_variable() {
    let env = TestEnv::new("badconfig").await;
    for (role, var, value) in [
        ("api", "LONGHAUL_LEASE_SECS", "soon"),
        ("worker", "LONGHAUL_WORKER_CONCURRENCY", "0"),
        ("scheduler", "LONGHAUL_LOG_FORMAT", "xml"),
        ("api", "PORT", "http"),
    ] {
        let mut proc = env.spawn(role, &[role], &[(var, value)]);
        let code = proc.wait_exit(Duration::from_secs(20)).await;
        assert_eq!(
            code,
            Some(Some(1)),
            "{role} with {var}={value} did not exit 1"
        );
        let log = proc.log_text();
        assert!(
            log.contains(var),
            "{role}: message does not name {var}: {log}"
        );
    }
    let mut proc = env.spawn("api", &["api"], &[("REDIS_URL", "")]);
    assert_eq!(proc.wait_exit(Duration::from_secs(20)).await, Some(Some(1)));
    assert!(proc.log_text().contains("REDIS_URL"));
}
