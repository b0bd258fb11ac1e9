//! Group commit for the embedded store's hot writes (the post ledger's claims, settlements and
//! releases): writes that arrive while one commit is on its way to the disk are run together, each in
//! a savepoint of its own, inside one IMMEDIATE transaction, and committed with one `fsync`.
//!
//! Why: with `synchronous = FULL` every commit waits for the disk, and one connection serialises the
//! commits; two per post (claim, then settle) made the disk's sync latency the ceiling of the whole
//! sidecar (about 1,300 posts/s on the benchmark machine, with the CPUs idle in `fsync`). Durability is
//! unchanged: no caller is answered before the transaction holding its write has committed, and a
//! write that fails is rolled back to its own savepoint without touching the others in its batch.
//! Atomicity is unchanged too: the batch's transaction holds SQLite's write lock from its start, so a
//! claim's read-decide-write sees no other process's write in between, and the writes of one batch run
//! one after another, each seeing the ones before it.
//!
//! No thread of its own: the first write to find no batch running becomes the flusher, on tokio's
//! blocking pool, and drains the queue until it is empty.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::{StoreError, StoreResult};

/// Told once the batch's fate is known: `Ok` once it committed, or why it did not.
type Finish = Box<dyn FnOnce(StoreResult<()>) + Send>;
/// A queued write: run on the connection (`None`: it will not run, the batch failed first); answers
/// whether it succeeded (else its savepoint is rolled back) and what to tell its caller.
type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Finish) + Send>;

#[derive(Default)]
pub(super) struct Batches {
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    flushing: bool,
}

/// The most writes one transaction takes, so that one batch's callers do not wait on a huge commit.
const MAX_BATCH: usize = 256;

impl Batches {
    /// Runs `f` in the next batch on `conn`; answers its result once that batch has committed.
    pub(super) async fn write<T, F>(
        self: &Arc<Self>,
        conn: &Arc<Mutex<Connection>>,
        f: F,
    ) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |c| {
            let result = match c {
                Some(c) => f(c),
                None => Err(StoreError::Database(
                    "the write's batch did not start".into(),
                )),
            };
            let ok = result.is_ok();
            let finish: Finish = Box::new(move |committed| {
                let _ = answer.send(match result {
                    Err(e) => Err(e),
                    Ok(value) => committed.map(|()| value),
                });
            });
            (ok, finish)
        });
        let start = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.jobs.push(job);
            !std::mem::replace(&mut queue.flushing, true)
        };
        if start {
            let (batches, conn) = (Arc::clone(self), Arc::clone(conn));
            tokio::task::spawn_blocking(move || batches.flush(&conn));
        }
        answered
            .await
            .map_err(|_| StoreError::Database("store task failed: a write was lost".into()))?
    }

    /// Runs batches until the queue is empty, then lets the next write start a flusher.
    fn flush(&self, conn: &Mutex<Connection>) {
        loop {
            let jobs = {
                let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                if queue.jobs.is_empty() {
                    queue.flushing = false;
                    return;
                }
                let take = queue.jobs.len().min(MAX_BATCH);
                queue.jobs.drain(..take).collect::<Vec<_>>()
            };
            // A panic while holding the lock cannot leave a half-written row (SQLite is
            // transactional), so a poisoned lock is safe to take over.
            let guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            run(&guard, jobs);
        }
    }
}

/// One batch: BEGIN IMMEDIATE, each job in its savepoint, COMMIT; then every caller is told.
fn run(c: &Connection, jobs: Vec<Job>) {
    if let Err(e) = exec(c, "BEGIN IMMEDIATE") {
        let message = e.to_string();
        for job in jobs {
            let (_, finish) = job(None);
            finish(Err(StoreError::Database(message.clone())));
        }
        return;
    }
    let mut finishes: Vec<Finish> = Vec::with_capacity(jobs.len());
    let mut broken: Option<String> = None;
    for job in jobs {
        if broken.is_some() {
            finishes.push(job(None).1);
            continue;
        }
        if let Err(e) = exec(c, "SAVEPOINT batched_write") {
            broken = Some(e.to_string());
            finishes.push(job(None).1);
            continue;
        }
        // A job that panics is answered as lost (its sender dropped) and rolled back; the batch goes on.
        let (ok, finish) = catch_unwind(AssertUnwindSafe(|| job(Some(c))))
            .unwrap_or_else(|_| (false, Box::new(|_| {}) as Finish));
        let end = if ok {
            exec(c, "RELEASE batched_write")
        } else {
            exec(c, "ROLLBACK TO batched_write").and_then(|()| exec(c, "RELEASE batched_write"))
        };
        if let Err(e) = end {
            broken = Some(e.to_string());
        }
        finishes.push(finish);
    }
    let outcome = match broken {
        None => exec(c, "COMMIT").map_err(|e| e.to_string()),
        Some(e) => Err(e),
    };
    if outcome.is_err() {
        // Nothing of the batch is kept; a failed COMMIT may leave the transaction open.
        let _ = exec(c, "ROLLBACK");
    }
    for finish in finishes {
        finish(
            outcome
                .as_ref()
                .map(|_| ())
                .map_err(|e| StoreError::Database(e.clone())),
        );
    }
}

/// One statement, prepared once per connection (rusqlite's statement cache): these run several times
/// per post, and parsing them each time cost more than running them.
fn exec(c: &Connection, sql: &str) -> rusqlite::Result<()> {
    c.prepare_cached(sql)?.execute([]).map(|_| ())
}
