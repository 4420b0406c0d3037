//! A pool of read-only connections to one DuckDB file, so queries run side by side.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use duckdb::Connection;
use sqlrft_core::ResultSet;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::catalog::{self, TableDescription, TableInfo};
use crate::direct::{Direct, DirectConnection, RawDatabase};
use crate::{Limits, OpenError, QueryError, gate};

/// How many connections to keep open, how many callers may wait for one, and the default
/// limits each query runs under.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// How many read-only connections to open: the number of queries that run at once.
    pub connections: usize,
    /// How many callers may wait for a connection before [`QueryError::Busy`] answers.
    pub max_waiting: usize,
    /// The limits a query runs under unless the caller gives its own.
    pub limits: Limits,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            connections: 8,
            max_waiting: 256,
            limits: Limits::default(),
        }
    }
}

/// Hardened read-only connections to one database file, opened once and reused.
///
/// The database is opened read-only with external access, extension loading and configuration
/// changes disabled. A query that is plainly one SELECT runs on the direct path
/// ([`crate::direct`]); anything else passes [`gate::parse_select`] first, which refuses all but
/// single SELECT statements, as it also decides for a query the direct path saw fail.
#[derive(Clone)]
pub struct ReadOnlyPool {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    idle: Arc<Mutex<Vec<Lane>>>,
    /// The lane given back last: the one the next query will get (the idle stack is LIFO).
    newest_idle: Arc<AtomicUsize>,
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    /// Queries sent to a lane and not yet answered to their caller.
    in_flight: AtomicUsize,
    options: PoolOptions,
    /// Every lane's thread, stopped and joined when the pool goes, so the database is closed
    /// when the last handle to the pool is dropped.
    threads: Vec<(Sender<Message>, std::thread::JoinHandle<()>)>,
}

/// Two connections to the database for one query at a time: the direct one, and duckdb-rs's
/// for the checked path and the catalog.
struct Slot {
    // Declared first, so it is dropped while `direct` still holds the database open.
    checked: Connection,
    direct: Arc<DirectConnection>,
}

/// One slot's own thread, which runs every query on that slot, and the handles that interrupt
/// it from elsewhere.
///
/// A thread of its own, not tokio's shared blocking pool: after a burst of concurrent queries
/// that pool has many idle threads and hands each next query to any of them, whose caches and
/// allocator heaps are cold (measured: sequential analytical queries 15% slower, p99 2–3×).
#[derive(Clone)]
struct Lane {
    id: usize,
    jobs: Sender<Message>,
    checked: Arc<duckdb::InterruptHandle>,
    direct: Arc<DirectConnection>,
}

enum Message {
    Run(Box<dyn FnOnce(&Slot) + Send>),
    Stop,
}

/// How long the lane given back last waits for the next query awake before it sleeps. A
/// sleeping thread on an idle vCPU took 50–100 µs to wake on our 2-core VM (its guest halts
/// at once: `haltpoll.guest_halt_poll_ns=0`), a fifth of a point query; one caller's next
/// query usually comes within this (measured: `sqlrft bench mcp`, point queries, one client).
const STAY_AWAKE: Duration = Duration::from_micros(300);

/// How long a caller whose query is the only one in flight waits for its answer awake before
/// its tokio worker sleeps. The answer's way back wakes that worker, the same 50–100 µs as a
/// lane's wake-up on our VM; a point query answers within this, an analytical one does not and
/// is then awaited as usual.
const AWAIT_AWAKE: Duration = Duration::from_millis(1);

impl Lane {
    fn start(
        id: usize,
        slot: Slot,
        newest_idle: Arc<AtomicUsize>,
    ) -> std::io::Result<(Lane, std::thread::JoinHandle<()>)> {
        let (jobs, inbox) = std::sync::mpsc::channel::<Message>();
        let lane = Lane {
            id,
            jobs,
            checked: slot.checked.interrupt_handle(),
            direct: slot.direct.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("sqlrft-duckdb".into())
            .spawn(move || {
                while let Some(Message::Run(job)) = next_message(&inbox, id, &newest_idle) {
                    job(&slot);
                }
            })?;
        Ok((lane, thread))
    }
}

/// The lane's next message. While it is the lane the next query will get, it first waits
/// awake for up to [`STAY_AWAKE`]; every other idle lane sleeps at once, so at most one thread
/// per pool spins.
fn next_message(
    inbox: &Receiver<Message>,
    id: usize,
    newest_idle: &AtomicUsize,
) -> Option<Message> {
    match receive_awake(inbox, STAY_AWAKE, || {
        newest_idle.load(Ordering::Relaxed) == id
    }) {
        AwakeReceive::Received(message) => Some(message),
        AwakeReceive::Closed => None,
        AwakeReceive::NotYet => inbox.recv().ok(),
    }
}

/// What [`receive_awake`] saw.
#[derive(Debug, PartialEq)]
enum AwakeReceive<T> {
    Received(T),
    /// Every sender has gone.
    Closed,
    /// Nothing came while the receiver was allowed to wait awake: go to sleep on it.
    NotYet,
}

/// A message tried awake on the calling thread (yielding its CPU to any thread that can run)
/// for up to `window`, and only while `still_next` says this receiver is the one the next
/// message will come to.
fn receive_awake<T>(
    inbox: &Receiver<T>,
    window: Duration,
    still_next: impl Fn() -> bool,
) -> AwakeReceive<T> {
    let until = Instant::now() + window;
    loop {
        match inbox.try_recv() {
            Ok(message) => return AwakeReceive::Received(message),
            Err(TryRecvError::Disconnected) => return AwakeReceive::Closed,
            Err(TryRecvError::Empty) if still_next() && Instant::now() < until => {
                std::thread::yield_now()
            }
            Err(TryRecvError::Empty) => return AwakeReceive::NotYet,
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for (jobs, _) in &self.threads {
            let _ = jobs.send(Message::Stop);
        }
        for (_, thread) in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl ReadOnlyPool {
    /// Opens `options.connections` connections to the database at `path`.
    pub fn open(path: &Path, options: PoolOptions) -> Result<Self, OpenError> {
        crate::scratch::ensure_exists(path)?;
        let failed = |message: String| OpenError::DuckDb {
            path: path.to_path_buf(),
            message,
        };
        let database = Arc::new(
            RawDatabase::open(path, &crate::scratch::lockdown(crate::scratch::READ_ONLY))
                .map_err(failed)?,
        );
        let size = options.connections.max(1);
        let mut idle = Vec::with_capacity(size);
        let mut threads = Vec::with_capacity(size);
        // No lane was given back yet: none spins until one has run a query.
        let newest_idle = Arc::new(AtomicUsize::new(usize::MAX));
        for id in 0..size {
            let slot = Slot {
                checked: database.rust_connection().map_err(failed)?,
                direct: Arc::new(DirectConnection::connect(&database).map_err(failed)?),
            };
            let (lane, thread) = Lane::start(id, slot, newest_idle.clone())
                .map_err(|e| failed(format!("could not start a connection's thread: {e}")))?;
            threads.push((lane.jobs.clone(), thread));
            idle.push(lane);
        }
        Ok(ReadOnlyPool {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                threads,
                idle: Arc::new(Mutex::new(idle)),
                newest_idle,
                permits: Arc::new(Semaphore::new(size)),
                waiting: AtomicUsize::new(0),
                in_flight: AtomicUsize::new(0),
                options,
            }),
        })
    }

    /// The database file this pool reads.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The limits queries run under unless told otherwise.
    pub fn limits(&self) -> &Limits {
        &self.inner.options.limits
    }

    /// Runs one read-only SELECT under the pool's default limits.
    pub async fn query(&self, sql: &str) -> Result<ResultSet, QueryError> {
        let limits = self.inner.options.limits.clone();
        self.query_with(sql, &limits).await
    }

    /// Runs one read-only SELECT under `limits`.
    pub async fn query_with(&self, sql: &str, limits: &Limits) -> Result<ResultSet, QueryError> {
        let sql = sql.to_string();
        let run_limits = limits.clone();
        self.with_connection(limits, move |slot| {
            match slot.direct.select(&sql, &run_limits) {
                Direct::Answered(answer) => answer,
                Direct::Failed(message) => {
                    gate::parse_select(&slot.checked, &sql)?;
                    Err(QueryError::Sql(message))
                }
                Direct::NotHere => {
                    gate::parse_select(&slot.checked, &sql)?;
                    crate::cells::run_query(&slot.checked, &sql, &run_limits)
                }
            }
        })
        .await
    }

    /// Parses `sql` with DuckDB's parser; the AST if it is a single SELECT.
    pub async fn parse_select(&self, sql: &str) -> Result<serde_json::Value, QueryError> {
        let sql = sql.to_string();
        let limits = self.inner.options.limits.clone();
        self.with_connection(&limits, move |slot| gate::parse_select(&slot.checked, &sql))
            .await
    }

    /// The user tables of the database, with column counts and estimated sizes.
    pub async fn list_tables(&self) -> Result<Vec<TableInfo>, QueryError> {
        let limits = self.inner.options.limits.clone();
        self.with_connection(&limits, |slot| catalog::list_tables(&slot.checked))
            .await
    }

    /// Columns, types, nullability and row count of one table.
    pub async fn describe_table(&self, table: &str) -> Result<TableDescription, QueryError> {
        let table = table.to_string();
        let limits = self.inner.options.limits.clone();
        self.with_connection(&limits, move |slot| {
            catalog::describe_table(&slot.checked, &table)
        })
        .await
    }

    /// Runs blocking work on an idle connection's own thread, interrupting it when
    /// `limits.timeout` passes or when the caller stops waiting (a client that disconnects
    /// must not leave a query running).
    ///
    /// Running the query on the calling worker instead saves the two thread hand-offs (~140 µs
    /// on a 2-core VM) but blocks a runtime worker for as long as the query runs (and a caller
    /// that goes away can no longer stop it), and measured no faster through the servers;
    /// ARCHITECTURE.md ("Where a query's time goes") has the figures. The lane given back last
    /// stays awake for the next query instead ([`STAY_AWAKE`]), which saves one of the two, and
    /// a caller whose query is the only one in flight takes its answer awake for a moment
    /// ([`AWAIT_AWAKE`]), which saves the other when the query is short.
    async fn with_connection<T, F>(&self, limits: &Limits, work: F) -> Result<T, QueryError>
    where
        T: Send + 'static,
        F: FnOnce(&Slot) -> Result<T, QueryError> + Send + 'static,
    {
        let permit = self.permit().await?;
        let lane = self
            .inner
            .idle
            .lock()
            .map_err(|_| QueryError::Internal("connection pool poisoned".into()))?
            .pop()
            .ok_or_else(|| QueryError::Internal("no idle connection under a permit".into()))?;
        let alarm = Arc::new(Alarm::new(&lane));
        let _on_drop = RingOnDrop(alarm.clone());
        let (answer, mut answered) = tokio::sync::oneshot::channel();
        let (idle, silenced, returned) = (self.inner.idle.clone(), alarm.clone(), lane.clone());
        let newest_idle = self.inner.newest_idle.clone();
        let job = Box::new(move |slot: &Slot| {
            let result = work(slot);
            // Silenced before the lane goes back, so a late alarm never interrupts its next
            // query.
            let timed_out = silenced.silence();
            // The lane goes back from its own thread, so it is returned even if nobody is
            // waiting for the result any more.
            if let Ok(mut idle) = idle.lock() {
                newest_idle.store(returned.id, Ordering::Relaxed);
                idle.push(returned);
            }
            drop(permit);
            let _ = answer.send((result, timed_out));
        });
        let deadline = tokio::time::Instant::now() + limits.timeout;
        let flight = InFlight::enter(&self.inner.in_flight);
        if lane.jobs.send(Message::Run(job)).is_err() {
            return Err(QueryError::Internal(
                "a connection's thread has stopped".into(),
            ));
        }
        let awake = if flight.alone && may_hold_worker() {
            answer_awake(&mut answered, AWAIT_AWAKE.min(limits.timeout))
        } else {
            None
        };
        let answer = match awake {
            Some(answer) => Ok(answer),
            None => tokio::select! {
                answer = &mut answered => answer,
                _ = tokio::time::sleep_until(deadline) => {
                    alarm.ring();
                    answered.await
                }
            },
        };
        drop(flight);
        let (result, timed_out) = answer.map_err(|_| {
            QueryError::Internal("a connection's thread stopped during a query".into())
        })?;
        match result {
            // Interrupted because its time ran out: a timeout, not DuckDB's "interrupted".
            Err(QueryError::Sql(_)) if timed_out => Err(QueryError::Timeout(limits.timeout)),
            other => other,
        }
    }

    /// A permit for one connection, waiting for it unless the waiting room is full.
    async fn permit(&self) -> Result<OwnedSemaphorePermit, QueryError> {
        let inner = &self.inner;
        if let Ok(permit) = inner.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        if inner.waiting.fetch_add(1, Ordering::SeqCst) >= inner.options.max_waiting {
            inner.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(QueryError::Busy(inner.options.connections));
        }
        let permit = inner.permits.clone().acquire_owned().await;
        inner.waiting.fetch_sub(1, Ordering::SeqCst);
        permit.map_err(|_| QueryError::Internal("connection pool closed".into()))
    }
}

/// Counts one query in flight for as long as it lives.
struct InFlight<'a> {
    count: &'a AtomicUsize,
    /// No other query was in flight when this one started.
    alone: bool,
}

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        let alone = count.fetch_add(1, Ordering::SeqCst) == 0;
        InFlight { count, alone }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether the calling task may hold its worker for a moment: only on a runtime with another
/// worker to run everything else meanwhile (a current-thread runtime would stall).
fn may_hold_worker() -> bool {
    tokio::runtime::Handle::try_current().is_ok_and(|runtime| {
        runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
            && runtime.metrics().num_workers() >= 2
    })
}

/// The answer, if it comes within `window`, tried awake on the calling thread (yielding its
/// CPU to any thread that can run). `None` once the window has passed or the sender has gone,
/// with `answered` left to await as usual.
fn answer_awake<T>(
    answered: &mut tokio::sync::oneshot::Receiver<T>,
    window: Duration,
) -> Option<T> {
    use tokio::sync::oneshot::error::TryRecvError;
    let until = Instant::now() + window;
    loop {
        match answered.try_recv() {
            Ok(answer) => return Some(answer),
            Err(TryRecvError::Empty) if Instant::now() < until => std::thread::yield_now(),
            Err(_) => return None,
        }
    }
}

/// Interrupts the query on a slot's connections (either may be running it) once, unless
/// silenced first.
struct Alarm {
    state: Mutex<AlarmState>,
}

enum AlarmState {
    Armed(Arc<duckdb::InterruptHandle>, Arc<DirectConnection>),
    Rang,
    Silenced,
}

impl Alarm {
    fn new(lane: &Lane) -> Self {
        Alarm {
            state: Mutex::new(AlarmState::Armed(lane.checked.clone(), lane.direct.clone())),
        }
    }

    fn ring(&self) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        // Under the lock, so a query that has already finished is never interrupted.
        if let AlarmState::Armed(checked, direct) = &*state {
            checked.interrupt();
            direct.interrupt();
            *state = AlarmState::Rang;
        }
    }

    /// Disarms the alarm; true if it had rung.
    fn silence(&self) -> bool {
        self.state.lock().is_ok_and(|mut state| {
            matches!(
                std::mem::replace(&mut *state, AlarmState::Silenced),
                AlarmState::Rang
            )
        })
    }
}

/// Rings the alarm when dropped, unless it was silenced first.
struct RingOnDrop(Arc<Alarm>);

impl Drop for RingOnDrop {
    fn drop(&mut self) {
        self.0.ring();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_holds_its_worker_only_where_another_worker_runs_the_rest() {
        assert!(!may_hold_worker(), "outside a runtime");
        let current = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(!current.block_on(async { may_hold_worker() }));
        for (workers, expected) in [(1, false), (2, true)] {
            let multi = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .build()
                .unwrap();
            assert_eq!(
                multi.block_on(async { may_hold_worker() }),
                expected,
                "{workers} worker(s)"
            );
        }
    }

    #[test]
    fn only_the_first_of_overlapping_queries_is_alone() {
        let count = AtomicUsize::new(0);
        let first = InFlight::enter(&count);
        let second = InFlight::enter(&count);
        assert!(first.alone);
        assert!(!second.alone);
        drop((first, second));
        assert_eq!(count.load(Ordering::SeqCst), 0);
        assert!(InFlight::enter(&count).alone, "after both have finished");
    }

    #[test]
    fn an_answer_sent_within_the_window_is_taken_awake() {
        let (answer, mut answered) = tokio::sync::oneshot::channel();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1));
            answer.send(42).unwrap();
        });
        assert_eq!(
            answer_awake(&mut answered, Duration::from_secs(60)),
            Some(42)
        );
        sender.join().unwrap();
    }

    #[test]
    fn after_the_window_the_answer_is_left_to_await() {
        let (answer, mut answered) = tokio::sync::oneshot::channel();
        assert_eq!(answer_awake(&mut answered, Duration::from_millis(2)), None);
        answer.send(7).unwrap();
        assert_eq!(answered.try_recv(), Ok(7));
    }

    #[test]
    fn a_sender_that_goes_away_ends_the_wait_before_its_window() {
        let (answer, mut answered) = tokio::sync::oneshot::channel::<u8>();
        let started = Instant::now();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1));
            drop(answer);
        });
        let window = Duration::from_secs(600);
        assert_eq!(answer_awake(&mut answered, window), None);
        assert!(started.elapsed() < window / 10, "waited out the window");
        sender.join().unwrap();
    }

    #[test]
    fn the_lane_the_next_query_gets_takes_it_awake() {
        let (jobs, inbox) = std::sync::mpsc::channel();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1));
            jobs.send(5).unwrap();
        });
        let received = receive_awake(&inbox, Duration::from_secs(60), || true);
        assert_eq!(received, AwakeReceive::Received(5));
        sender.join().unwrap();
    }

    #[test]
    fn any_other_idle_lane_goes_to_sleep_at_once() {
        let (_jobs, inbox) = std::sync::mpsc::channel::<u8>();
        let started = Instant::now();
        let window = Duration::from_secs(10);
        assert_eq!(
            receive_awake(&inbox, window, || false),
            AwakeReceive::NotYet
        );
        assert!(started.elapsed() < window / 10, "waited awake");
    }

    #[test]
    fn a_lane_stops_waiting_awake_once_another_is_given_back_after_it() {
        let (_jobs, inbox) = std::sync::mpsc::channel::<u8>();
        let newest = Arc::new(AtomicUsize::new(0));
        let other_lane = {
            let newest = newest.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(1));
                newest.store(1, Ordering::Relaxed);
            })
        };
        let started = Instant::now();
        let window = Duration::from_secs(10);
        let still_next = || newest.load(Ordering::Relaxed) == 0;
        assert_eq!(
            receive_awake(&inbox, window, still_next),
            AwakeReceive::NotYet
        );
        assert!(started.elapsed() < window / 10, "waited out the window");
        other_lane.join().unwrap();
    }

    #[test]
    fn after_its_window_the_lane_sleeps_on_the_inbox() {
        let (jobs, inbox) = std::sync::mpsc::channel();
        let window = Duration::from_millis(2);
        assert_eq!(receive_awake(&inbox, window, || true), AwakeReceive::NotYet);
        jobs.send(9).unwrap();
        drop(jobs);
        assert_eq!(
            receive_awake(&inbox, window, || true),
            AwakeReceive::Received(9)
        );
        assert_eq!(receive_awake(&inbox, window, || true), AwakeReceive::Closed);
    }
}
