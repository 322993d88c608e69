//! The batcher with a fake store: what gathers, what each caller hears.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use idem_batch::{Answers, Batcher, Failure, Kind, Limits};
use idem_core::{BoxFuture, RecordId};
use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
enum Fake {
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
    #[error("lane stopped")]
    LaneStopped,
    #[error(transparent)]
    Shared(Arc<Fake>),
    #[error("{0} sent, {1} answered")]
    Miscounted(usize, usize),
    #[error("the server said no")]
    Refused,
}

impl Failure for Fake {
    fn timed_out(budget: Duration) -> Self {
        Fake::TimedOut(budget)
    }
    fn lane_stopped() -> Self {
        Fake::LaneStopped
    }
    fn shared(failure: Arc<Self>) -> Self {
        Fake::Shared(failure)
    }
    fn miscounted(sent: usize, answered: usize) -> Self {
        Fake::Miscounted(sent, answered)
    }
}

/// A store that answers each job with twice its number, after `gate` opens
/// for the first batch, and records the batches it ran.
#[derive(Default)]
struct Doubler {
    batches: Mutex<Vec<Vec<u32>>>,
    gate: Notify,
    first: AtomicUsize,
    refuse_over: Option<u32>,
    drop_answers: bool,
    /// How long each batch takes, bounded by the deadline it runs under
    /// (as a real store's round trip is).
    takes: Duration,
    /// The jobs and answers handed to `orphaned`.
    orphans: Mutex<Vec<(u32, u32)>>,
}

impl Kind for Doubler {
    type Job = (u8, u32);
    type Output = u32;
    type Error = Fake;

    fn id(job: &(u8, u32)) -> RecordId {
        RecordId::from_bytes([job.0; 32])
    }

    fn run<'a>(
        &'a self,
        jobs: &'a [(u8, u32)],
        deadline: Instant,
    ) -> BoxFuture<'a, Answers<u32, Fake>> {
        Box::pin(async move {
            if self.first.fetch_add(1, Ordering::SeqCst) == 0 {
                self.gate.notified().await;
            }
            let numbers: Vec<u32> = jobs.iter().map(|j| j.1).collect();
            self.batches.lock().unwrap().push(numbers.clone());
            let took = tokio::time::timeout_at(deadline, tokio::time::sleep(self.takes));
            if took.await.is_err() {
                return Err(Fake::TimedOut(self.takes));
            }
            if self
                .refuse_over
                .is_some_and(|n| numbers.iter().any(|&x| x > n))
            {
                return Err(Fake::Refused);
            }
            let mut answers: Vec<Result<u32, Fake>> = numbers.iter().map(|x| Ok(x * 2)).collect();
            if self.drop_answers {
                answers.pop();
            }
            Ok(answers)
        })
    }

    fn orphaned(&self, job: (u8, u32), output: u32) {
        self.orphans.lock().unwrap().push((job.1, output));
    }
}

/// Limits whose lanes take each batch at once (no ready turns), so that
/// the tests below control exactly what is queued when a lane looks.
fn limits(lanes: usize) -> Limits {
    Limits {
        ready_turns: 0,
        ..Limits::new(lanes, 64, Duration::from_secs(5))
    }
}

/// Submits jobs 1..=n (job i on record i) while the first batch is held,
/// then opens the gate, and returns the answers in submission order.
async fn run_held(batcher: Arc<Batcher<Doubler>>, n: u8) -> Vec<Result<u32, Fake>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut tasks = Vec::new();
    for i in 1..=n {
        let b = Arc::clone(&batcher);
        tasks.push(tokio::spawn(async move {
            b.submit((i, u32::from(i)), deadline).await
        }));
        // Let each submission reach the queue in order.
        tokio::task::yield_now().await;
    }
    batcher.kind().gate.notify_one();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers
}

#[tokio::test]
async fn operations_queued_behind_a_busy_lane_share_one_batch() {
    let batcher = Arc::new(Batcher::new(Doubler::default(), limits(1)));
    let answers = run_held(Arc::clone(&batcher), 6).await;
    let answers: Vec<u32> = answers.into_iter().map(Result::unwrap).collect();
    assert_eq!(answers, [2, 4, 6, 8, 10, 12]);
    let batches = batcher.kind().batches.lock().unwrap().clone();
    assert_eq!(
        batches,
        [vec![1], vec![2, 3, 4, 5, 6]],
        "the first alone, the rest together"
    );
    let counted = batcher.counters();
    assert_eq!(
        (counted.batches, counted.operations, counted.largest),
        (2, 6, 5)
    );
}

#[tokio::test]
async fn a_failed_batch_fails_each_of_its_operations_and_no_other() {
    let kind = Doubler {
        refuse_over: Some(4),
        ..Doubler::default()
    };
    let batcher = Arc::new(Batcher::new(kind, limits(1)));
    let answers = run_held(Arc::clone(&batcher), 5).await;
    assert_eq!(
        *answers[0].as_ref().unwrap(),
        2,
        "the first batch ran alone"
    );
    for answer in &answers[1..] {
        assert!(
            matches!(answer, Err(Fake::Shared(f)) if matches!(**f, Fake::Refused)),
            "{answer:?}"
        );
    }
}

#[tokio::test]
async fn a_batch_with_too_few_answers_is_a_failure_for_all_of_it() {
    let kind = Doubler {
        drop_answers: true,
        ..Doubler::default()
    };
    let batcher = Arc::new(Batcher::new(kind, limits(1)));
    let answers = run_held(Arc::clone(&batcher), 3).await;
    for answer in &answers {
        assert!(
            matches!(answer, Err(Fake::Shared(f)) if matches!(**f, Fake::Miscounted(_, _))),
            "{answer:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_caller_waits_no_longer_than_its_deadline() {
    // A budget as long as the caller's deadline, as the stores give.
    let limits = Limits {
        ready_turns: 0,
        ..Limits::new(1, 64, Duration::from_millis(200))
    };
    let batcher = Batcher::new(Doubler::default(), limits);
    // The gate never opens: the first batch hangs.
    let deadline = Instant::now() + Duration::from_millis(200);
    let answer = batcher.submit((1, 1), deadline).await;
    assert!(matches!(answer, Err(Fake::TimedOut(_))), "{answer:?}");
    assert!(Instant::now() >= deadline);
}

/// Spawns job `i` (on record `i`) and lets it reach the queue.
async fn spawn_job(
    batcher: &Arc<Batcher<Doubler>>,
    i: u8,
    deadline: Instant,
) -> tokio::task::JoinHandle<Result<u32, Fake>> {
    let b = Arc::clone(batcher);
    let task = tokio::spawn(async move { b.submit((i, u32::from(i)), deadline).await });
    tokio::task::yield_now().await;
    task
}

// Paused time below: the clock moves only when every task waits, so a
// test sees exactly whether an operation was answered before its
// patience ran out.

#[tokio::test(start_paused = true)]
async fn a_second_lane_waits_until_the_first_falls_behind() {
    let batcher = Arc::new(Batcher::new(Doubler::default(), limits(2)));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(5);
    let held = spawn_job(&batcher, 1, deadline).await;
    let mut behind = Vec::new();
    for i in 2..=6 {
        behind.push(spawn_job(&batcher, i, deadline).await);
        settle().await;
    }
    assert!(
        batcher.kind().batches.lock().unwrap().is_empty(),
        "nothing went out beside the first batch"
    );
    assert_eq!(Instant::now(), start, "no patience ran out");
    batcher.kind().gate.notify_one();
    assert_eq!(held.await.unwrap().unwrap(), 2);
    for (task, i) in behind.into_iter().zip(2u32..) {
        assert_eq!(task.await.unwrap().unwrap(), 2 * i);
    }
    let batches = batcher.kind().batches.lock().unwrap().clone();
    assert_eq!(
        batches,
        [vec![1], vec![2, 3, 4, 5, 6]],
        "with two lanes allowed, what queued behind a short batch still went together"
    );
}

/// Lets every task that can run, run (the clock stays where it is).
async fn settle() {
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn operations_behind_a_hung_batch_get_a_lane_after_their_patience() {
    let batcher = Arc::new(Batcher::new(Doubler::default(), limits(2)));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(5);
    // The gate never opens: the first batch hangs.
    let hung = spawn_job(&batcher, 1, deadline).await;
    let behind = spawn_job(&batcher, 2, deadline).await;
    assert_eq!(behind.await.unwrap().unwrap(), 4);
    let waited = Instant::now() - start;
    assert!(
        waited >= idem_batch::EXTRA_LANE_AFTER && waited < Duration::from_secs(1),
        "answered by a second lane after its patience, not at its deadline: {waited:?}"
    );
    hung.abort();
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_waiting_starts_a_second_lane_at_once() {
    let limits = Limits {
        max_batch: 4,
        ..limits(2)
    };
    let batcher = Arc::new(Batcher::new(Doubler::default(), limits));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(5);
    let held = spawn_job(&batcher, 1, deadline).await;
    let mut full = Vec::new();
    for i in 2..=5 {
        full.push(spawn_job(&batcher, i, deadline).await);
    }
    for (task, i) in full.into_iter().zip(2u32..) {
        assert_eq!(task.await.unwrap().unwrap(), 2 * i);
    }
    assert_eq!(
        Instant::now(),
        start,
        "answered while the first batch was held, without waiting"
    );
    batcher.kind().gate.notify_one();
    assert_eq!(held.await.unwrap().unwrap(), 2);
    let batches = batcher.kind().batches.lock().unwrap().clone();
    assert_eq!(batches, [vec![2, 3, 4, 5], vec![1]]);
}

/// Requests woken together (here by one signal, in the gateway by one
/// batch's answers) each add an operation a moment apart. The lane that
/// the first of them starts runs next on tokio's scheduler, before the
/// others; its ready turns let them add theirs, and all go in one batch
/// instead of the first alone and the rest in a second round trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn operations_of_tasks_woken_together_share_one_batch() {
    let batcher = Arc::new(Batcher::new(
        Doubler::default(),
        Limits::new(2, 64, Duration::from_secs(5)),
    ));
    // The first batch is not held.
    batcher.kind().gate.notify_one();
    let go = Arc::new(Notify::new());
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut tasks = Vec::new();
    for i in 1..=8u8 {
        let (b, go) = (Arc::clone(&batcher), Arc::clone(&go));
        let waiting = go.notified_owned();
        tasks.push(tokio::spawn(async move {
            waiting.await;
            b.submit((i, u32::from(i)), deadline).await
        }));
    }
    // Every task is parked on the signal before it is given.
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    go.notify_waiters();
    for (task, i) in tasks.into_iter().zip(1u32..) {
        assert_eq!(task.await.unwrap().unwrap(), 2 * i);
    }
    let batches = batcher.kind().batches.lock().unwrap().clone();
    assert_eq!(
        batches.len(),
        1,
        "one round trip for all eight: {batches:?}"
    );
    let mut sent = batches.concat();
    sent.sort_unstable();
    assert_eq!(sent, (1..=8).collect::<Vec<u32>>());
}

#[tokio::test(start_paused = true)]
async fn an_operation_that_waited_long_does_not_fail_the_fresh_ones_in_its_batch() {
    let batcher = slow_batcher();
    let start = Instant::now();
    // Job 1 holds the lane for 300 ms; behind it wait job 2, with 450 ms
    // left when the lane takes the next batch at 300 ms... and 150 ms
    // left by then, and job 3, fresh with a whole second.
    let busy = spawn_job(&batcher, 1, start + Duration::from_secs(1)).await;
    let old = spawn_job(&batcher, 2, start + Duration::from_millis(450)).await;
    let fresh = spawn_job(&batcher, 3, start + Duration::from_secs(1)).await;
    assert_eq!(busy.await.unwrap().unwrap(), 2);
    // Under job 2's deadline the batch would have timed out at 450 ms and
    // failed job 3 with it.
    assert_eq!(fresh.await.unwrap().unwrap(), 6);
    assert!(matches!(old.await.unwrap(), Err(Fake::TimedOut(_))));
    assert_eq!(
        *batcher.kind().batches.lock().unwrap(),
        [vec![1], vec![2, 3]]
    );
    // Job 2 ran all the same; its answer, which nobody waited for, goes
    // to the store to undo.
    assert_eq!(*batcher.kind().orphans.lock().unwrap(), [(2, 4)]);
}

#[tokio::test(start_paused = true)]
async fn an_operation_nearly_out_of_time_is_not_sent() {
    let batcher = slow_batcher();
    let start = Instant::now();
    let busy = spawn_job(&batcher, 1, start + Duration::from_secs(1)).await;
    // 50 ms left when the lane looks at 300 ms: under a tenth of the
    // budget, so it is answered as timed out without being sent.
    let late = spawn_job(&batcher, 2, start + Duration::from_millis(350)).await;
    assert_eq!(busy.await.unwrap().unwrap(), 2);
    assert!(matches!(late.await.unwrap(), Err(Fake::TimedOut(_))));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(*batcher.kind().batches.lock().unwrap(), [vec![1]]);
    assert!(
        batcher.kind().orphans.lock().unwrap().is_empty(),
        "never sent"
    );
}

/// One lane, a budget of 1 s, and batches that take 300 ms each (no gate).
fn slow_batcher() -> Arc<Batcher<Doubler>> {
    let store = Doubler {
        first: AtomicUsize::new(1),
        takes: Duration::from_millis(300),
        ..Doubler::default()
    };
    let limits = Limits {
        ready_turns: 0,
        ..Limits::new(1, 64, Duration::from_secs(1))
    };
    Arc::new(Batcher::new(store, limits))
}
