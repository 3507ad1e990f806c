//! The load generator: a minimal keep-alive HTTP/1.1 client ([`Conn`]) that writes a request
//! in one syscall and parses only the status line and `Content-Length`, so the measuring
//! side takes as little of the shared CPU as possible; plus the helpers the scenarios share
//! (submitting many jobs, watching terminal transitions).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One answer.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The `"id"` member of a JSON job body.
    pub fn job_id(&self) -> Option<String> {
        let text = std::str::from_utf8(&self.body).ok()?;
        let start = text.find("\"id\":\"")? + 6;
        let len = text[start..].find('"')?;
        Some(text[start..start + len].to_owned())
    }
}

/// A keep-alive HTTP/1.1 connection.
pub struct Conn {
    stream: TcpStream,
    addr: SocketAddr,
    buf: Vec<u8>,
    request: Vec<u8>,
}

impl Conn {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            addr,
            buf: Vec::with_capacity(4096),
            request: Vec::with_capacity(1024),
        })
    }

    /// Sends one request and reads its answer. `bearer` may be empty.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<&[u8]>,
    ) -> anyhow::Result<Response> {
        use std::io::Write;
        self.request.clear();
        write!(
            self.request,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n",
            self.addr
        )?;
        if !bearer.is_empty() {
            write!(self.request, "Authorization: Bearer {bearer}\r\n")?;
        }
        if let Some(body) = body {
            write!(
                self.request,
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )?;
            self.request.extend_from_slice(body);
        } else {
            self.request.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&self.request).await?;
        self.read_response().await
    }

    async fn read_response(&mut self) -> anyhow::Result<Response> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).context("non-UTF-8 head")?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("no status line")?;
        let mut length = None;
        for line in head.split("\r\n").skip(1) {
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse::<usize>().ok();
            }
        }
        let length = length.context("an answer without Content-Length")?;
        while self.buf.len() < head_end + length {
            self.fill().await?;
        }
        let body = self.buf[head_end..head_end + length].to_vec();
        self.buf.drain(..head_end + length);
        Ok(Response { status, body })
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let len = self.buf.len();
        self.buf.resize(len + 8192, 0);
        let n = self.stream.read(&mut self.buf[len..]).await?;
        self.buf.truncate(len + n);
        if n == 0 {
            bail!("connection closed by the server");
        }
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The body of a `generation` job; `tag` makes the prompt unique (no cache hits).
pub fn generation_body(tag: &str) -> Vec<u8> {
    format!(r#"{{"kind":"generation","input":{{"prompt":"Write a haiku about queues ({tag})"}}}}"#)
        .into_bytes()
}

/// What [`submit_many`] did.
pub struct Submitted {
    /// Job ids, in no particular order.
    pub ids: Vec<String>,
    /// From the first request sent to the last answer received.
    pub elapsed: Duration,
    /// When the first request was sent.
    pub first_sent: Instant,
}

/// Submits `n` unique generation jobs over `clients` keep-alive connections; every answer
/// must be `202`.
pub async fn submit_many(
    addr: SocketAddr,
    key: &str,
    n: usize,
    clients: usize,
    tag: &str,
) -> anyhow::Result<Submitted> {
    let next = Arc::new(AtomicUsize::new(0));
    let first_sent = Instant::now();
    let tasks: Vec<_> = (0..clients.max(1))
        .map(|_| {
            let next = next.clone();
            let key = key.to_owned();
            let tag = tag.to_owned();
            tokio::spawn(async move {
                let mut conn = Conn::connect(addr).await?;
                let mut ids = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return anyhow::Ok(ids);
                    }
                    let body = generation_body(&format!("{tag}-{i}"));
                    let r = conn.request("POST", "/v1/jobs", &key, Some(&body)).await?;
                    if r.status != 202 {
                        bail!(
                            "submit answered {}: {}",
                            r.status,
                            String::from_utf8_lossy(&r.body)
                        );
                    }
                    ids.push(r.job_id().context("no id in the answer")?);
                }
            })
        })
        .collect();
    let mut ids = Vec::with_capacity(n);
    for task in tasks {
        ids.extend(task.await??);
    }
    Ok(Submitted {
        ids,
        elapsed: first_sent.elapsed(),
        first_sent,
    })
}

/// Terminal transitions announced on `{prefix}:done`, as they arrive.
pub struct DoneWatch {
    rx: tokio::sync::mpsc::UnboundedReceiver<(String, Instant)>,
    task: tokio::task::JoinHandle<()>,
}

impl DoneWatch {
    /// Subscribes; returns once the subscription is active.
    pub async fn subscribe(redis_url: &str) -> anyhow::Result<DoneWatch> {
        let client = redis::Client::open(redis_url)?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub
            .subscribe(format!("{{{}}}:done", super::deploy::PREFIX))
            .await?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                let id: String = message.get_payload().unwrap_or_default();
                if tx.send((id, Instant::now())).is_err() {
                    return;
                }
            }
        });
        Ok(DoneWatch { rx, task })
    }

    /// The next terminal transition (job id and when it was seen), within `limit`.
    pub async fn next(&mut self, limit: Duration) -> anyhow::Result<(String, Instant)> {
        tokio::time::timeout(limit, self.rx.recv())
            .await
            .context("no terminal transition in time")?
            .context("the done subscription ended")
    }

    /// Waits until each of `ids` ended; returns when the last one did.
    pub async fn wait_all(&mut self, ids: &[String], limit: Duration) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + limit;
        let mut waiting: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let mut last = Instant::now();
        while !waiting.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let (id, at) = self.next(left).await.with_context(|| {
                format!("{} of {} jobs still running", waiting.len(), ids.len())
            })?;
            if waiting.remove(id.as_str()) {
                last = at;
            }
        }
        Ok(last)
    }
}

impl Drop for DoneWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `HMGET status created_at started_at finished_at` of one job.
type JobTimesRow = (Option<String>, Option<i64>, Option<i64>, Option<i64>);

/// `(status, created_at, started_at, finished_at)` of each job, read from Redis in pipelines.
pub async fn job_times(
    conn: &mut redis::aio::MultiplexedConnection,
    ids: &[String],
) -> anyhow::Result<Vec<(String, i64, i64, i64)>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        let mut pipe = redis::pipe();
        for id in chunk {
            pipe.cmd("HMGET")
                .arg(format!("{{{}}}:job:{id}", super::deploy::PREFIX))
                .arg("status")
                .arg("created_at")
                .arg("started_at")
                .arg("finished_at");
        }
        let rows: Vec<JobTimesRow> = pipe.query_async(conn).await?;
        out.extend(rows.into_iter().map(|(s, c, st, f)| {
            (
                s.unwrap_or_default(),
                c.unwrap_or(0),
                st.unwrap_or(0),
                f.unwrap_or(0),
            )
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_id_is_read_from_the_body() {
        let r = Response {
            status: 202,
            body: br#"{"id":"0198-abc","kind":"generation"}"#.to_vec(),
        };
        assert_eq!(r.job_id().as_deref(), Some("0198-abc"));
    }

    #[tokio::test]
    async fn a_keep_alive_connection_reads_consecutive_answers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for body in ["{\"id\":\"a\"}", "{}"] {
                let _ = s.read(&mut buf).await.unwrap();
                let answer = format!(
                    "HTTP/1.1 202 Accepted\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        let mut conn = Conn::connect(addr).await.unwrap();
        let first = conn
            .request("POST", "/v1/jobs", "k", Some(b"{}"))
            .await
            .unwrap();
        assert_eq!((first.status, first.job_id().as_deref()), (202, Some("a")));
        let second = conn.request("GET", "/x", "", None).await.unwrap();
        assert_eq!(second.body, b"{}");
    }
}
