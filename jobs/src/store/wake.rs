//! [`WakeListener`]: how an idle worker waits for work without polling.
//!
//! Every push to a ready list also pushes a token to the kind's wake-up list; an idle worker
//! blocks on `BLPOP` of that list on a connection of its own (a blocking command would stall
//! every other command on a shared, multiplexed connection). The timeout bounds how long a
//! worker sleeps if a token is missed, e.g. across a Redis restart.

use std::time::Duration;

use redis::Client;
use redis::aio::MultiplexedConnection;

use super::StoreError;

/// Blocks until work may be ready.
pub struct WakeListener {
    client: Client,
    key: String,
    conn: Option<MultiplexedConnection>,
}

impl WakeListener {
    pub(super) fn new(client: Client, key: String) -> Self {
        Self {
            client,
            key,
            conn: None,
        }
    }

    /// Waits up to `timeout` for a wake-up token. `Ok(true)`: woken; `Ok(false)`: timed out.
    pub async fn wait(&mut self, timeout: Duration) -> Result<bool, StoreError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(timeout + Duration::from_secs(5)));
                let conn = self
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                self.conn.insert(conn)
            }
        };
        let reply: Result<Option<(String, String)>, _> = redis::cmd("BLPOP")
            .arg(&self.key)
            .arg(timeout.as_secs_f64())
            .query_async(conn)
            .await;
        match reply {
            Ok(token) => Ok(token.is_some()),
            Err(e) => {
                // Reconnect next time: the connection may be broken.
                self.conn = None;
                Err(e.into())
            }
        }
    }
}
