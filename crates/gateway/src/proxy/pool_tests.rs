//! The upstream pool against a hand-written upstream that counts its
//! connections and misbehaves on cue.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Either, Full};
use idem_middleware::UpstreamNotReached;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::ProxyBody;
use super::body::BodyStalled;
use super::pool::{ConnectTimedOut, Pool, within};

/// How the test upstream treats each connection.
#[derive(Clone, Copy)]
enum Upstream {
    /// Answers every request with `ok`, keeping the connection open.
    KeepAlive,
    /// Answers one request with `ok`, then closes the connection (as an
    /// upstream whose keep-alive timeout ran out).
    CloseAfterOne,
    /// As `CloseAfterOne`, but closes 100 ms after answering: long after
    /// the gateway has read the answer and put the connection back.
    CloseAfterOneLater,
    /// Sends a head announcing a large body, a little of it, then sends
    /// nothing more until the gateway closes the connection.
    HangMidBody,
    /// Answers every request `204 No Content`, keeping the connection open.
    NoContent,
    /// Sends a head announcing four bytes, half of them 100 ms later, and
    /// the other half 900 ms after that.
    SlowSecondHalf,
    /// Reads a request, then closes the connection without an answer (an
    /// upstream that crashed while executing it).
    ReadThenClose,
}

struct TestUpstream {
    port: u16,
    /// Connections accepted, and connections that have since closed.
    connections: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

async fn upstream(behaviour: Upstream) -> TestUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let (accepted, ended) = (Arc::clone(&connections), Arc::clone(&closed));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            accepted.fetch_add(1, Ordering::SeqCst);
            let ended = Arc::clone(&ended);
            tokio::spawn(async move {
                serve(stream, behaviour).await;
                ended.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    TestUpstream {
        port,
        connections,
        closed,
    }
}

async fn serve(mut stream: TcpStream, behaviour: Upstream) {
    while read_request(&mut stream).await {
        match behaviour {
            Upstream::KeepAlive | Upstream::CloseAfterOne | Upstream::CloseAfterOneLater => {
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if stream.write_all(answer).await.is_err() {
                    return;
                }
                match behaviour {
                    Upstream::CloseAfterOne => return,
                    Upstream::CloseAfterOneLater => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        return;
                    }
                    _ => {}
                }
            }
            Upstream::NoContent => {
                let answer = b"HTTP/1.1 204 No Content\r\n\r\n";
                if stream.write_all(answer).await.is_err() {
                    return;
                }
            }
            Upstream::ReadThenClose => return,
            Upstream::SlowSecondHalf => {
                let head = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n";
                for (pause, part) in [(0, &head[..]), (100, b"ab"), (900, b"cd")] {
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    if stream.write_all(part).await.is_err() {
                        return;
                    }
                }
            }
            Upstream::HangMidBody => {
                let head = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\npartial";
                let _ = stream.write_all(head).await;
                // Returns (counted as closed) once the gateway closes it.
                let mut rest = Vec::new();
                let _ = stream.read_to_end(&mut rest).await;
                return;
            }
        }
    }
}

/// Reads one request without a body; false at the end of the stream.
async fn read_request(stream: &mut TcpStream) -> bool {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => seen.push(byte[0]),
            _ => return false,
        }
    }
    true
}

fn request() -> Request<ProxyBody> {
    Request::builder()
        .uri("/")
        .header("host", "test")
        .body(Either::Right(Full::new(Bytes::new())))
        .unwrap()
}

fn pool(port: u16, idle_timeout: Duration) -> Pool {
    pool_with_stall_limit(port, idle_timeout, Duration::from_secs(30))
}

fn pool_with_stall_limit(port: u16, idle_timeout: Duration, stall_limit: Duration) -> Pool {
    let origin = format!("http://127.0.0.1:{port}/").parse().unwrap();
    Pool::new(origin, Duration::from_secs(2), idle_timeout, stall_limit)
}

async fn body_of(pool: &Pool) -> Bytes {
    let response = pool.send(request()).await.expect("an answer");
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn sequential_requests_share_one_connection() {
    let upstream = upstream(Upstream::KeepAlive).await;
    let pool = pool(upstream.port, Duration::from_secs(30));
    for _ in 0..20 {
        assert_eq!(body_of(&pool).await, "ok");
    }
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn concurrent_requests_open_connections_and_then_reuse_them() {
    let upstream = upstream(Upstream::KeepAlive).await;
    let pool = pool(upstream.port, Duration::from_secs(30));
    for _round in 0..5 {
        let sent: Vec<_> = (0..8)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { body_of(&pool).await })
            })
            .collect();
        for answer in sent {
            assert_eq!(answer.await.unwrap(), "ok");
        }
    }
    let opened = upstream.connections.load(Ordering::SeqCst);
    assert!(
        (1..=8).contains(&opened),
        "40 requests, 8 at a time, opened {opened} connections"
    );
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_not_used() {
    let upstream = upstream(Upstream::CloseAfterOne).await;
    let pool = pool(upstream.port, Duration::from_secs(30));
    for _ in 0..5 {
        assert_eq!(body_of(&pool).await, "ok");
        // Time for the connection task to see the close (a request written
        // before it does has an unknown outcome: see the next test).
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 5);
}

/// End to end, through hyper: hyper closes a connection whose response
/// body was dropped, and refuses a second request on it; the pool's part
/// is to not give it back, and to take a refused request elsewhere. No
/// single change to the pool alone makes this fail (a mutation that gives
/// the connection back on drop still passes); it guards the whole.
#[tokio::test]
async fn a_body_dropped_before_its_end_closes_its_connection() {
    let upstream = upstream(Upstream::HangMidBody).await;
    let pool = pool(upstream.port, Duration::from_secs(30));
    for expected in 1..=3 {
        let response = pool.send(request()).await.expect("a head");
        let mut body = response.into_body();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "partial");
        drop(body);
        // The next request must not be written behind the rest of a body
        // still on the wire: it opens a connection of its own. (hyper also
        // refuses a second request on an unfinished exchange; the pool's
        // retry then takes it to another connection.)
        assert_eq!(upstream.connections.load(Ordering::SeqCst), expected);
        // And the connection holding the rest of the body is closed, not
        // kept waiting.
        let closed_by = tokio::time::Instant::now() + Duration::from_secs(2);
        while upstream.closed.load(Ordering::SeqCst) < expected {
            assert!(
                tokio::time::Instant::now() < closed_by,
                "connection {expected} is still open"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[test]
fn a_connection_closed_while_idle_but_not_yet_seen_closed_is_never_not_reached() {
    // The upstream runs on a thread of its own, so that it can close the
    // idle connection while the test's one-thread runtime is blocked: the
    // pool then still sees the connection as ready. hyper writes the
    // request into it before it reads the close (hyper 1.12), so the
    // outcome is unknown: the upstream may have read the request. Either
    // hyper hands the request back unwritten and it goes out on a new
    // connection, or the failure must not count as "never sent".
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let upstream = upstream(Upstream::CloseAfterOneLater).await;
            port_tx.send((upstream.port, upstream.connections)).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let (port, connections) = port_rx.recv().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let pool = pool(port, Duration::from_secs(30));
        assert_eq!(body_of(&pool).await, "ok");
        // Blocks this runtime (no task of it runs) while the upstream
        // closes the connection.
        std::thread::sleep(Duration::from_millis(400));
        match pool.send(request()).await {
            Ok(response) => {
                let body = response.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(body, "ok");
                assert_eq!(connections.load(Ordering::SeqCst), 2);
            }
            Err(error) => assert!(!error.is::<UpstreamNotReached>(), "{error}"),
        }
    });
}

#[tokio::test]
async fn a_request_written_before_the_connection_broke_was_reached() {
    // The upstream may have executed it: it must not count as never sent,
    // or its record would be released and a retry would run it again.
    let upstream = upstream(Upstream::ReadThenClose).await;
    let error = pool(upstream.port, Duration::from_secs(30))
        .send(request())
        .await
        .expect_err("no answer");
    assert!(!error.is::<UpstreamNotReached>(), "{error}");
}

#[tokio::test]
async fn an_empty_body_gives_its_connection_back_unread() {
    let upstream = upstream(Upstream::NoContent).await;
    let pool = pool(upstream.port, Duration::from_secs(30));
    for _ in 0..10 {
        let response = pool.send(request()).await.expect("an answer");
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        // Never polled: a server writing a 204 need not read its body.
        drop(response);
    }
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_idle_past_the_timeout_is_not_reused() {
    let upstream = upstream(Upstream::KeepAlive).await;
    let pool = pool(upstream.port, Duration::from_millis(400));
    assert_eq!(body_of(&pool).await, "ok");
    assert_eq!(body_of(&pool).await, "ok");
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(body_of(&pool).await, "ok");
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn idle_time_counts_from_the_response_head_not_from_a_slow_reader() {
    // The upstream's keep-alive clock starts once it has written the
    // response; a client that takes its time to read the body must not
    // make the connection look fresher than that.
    let upstream = upstream(Upstream::KeepAlive).await;
    let pool = pool(upstream.port, Duration::from_millis(300));
    let response = pool.send(request()).await.expect("an answer");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "ok");
    assert_eq!(body_of(&pool).await, "ok");
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn idle_connections_are_closed_without_traffic() {
    let upstream = upstream(Upstream::KeepAlive).await;
    let pool = pool(upstream.port, Duration::from_millis(200));
    assert_eq!(body_of(&pool).await, "ok");
    // Closed by the pool's own task, between one and two idle timeouts
    // later, with no request to trigger it.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(upstream.closed.load(Ordering::SeqCst), 1);
    drop(pool);
}

#[tokio::test]
async fn a_refused_connection_is_upstream_not_reached() {
    // Bound, then closed: nothing listens on the port.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let error = pool(port, Duration::from_secs(30))
        .send(request())
        .await
        .expect_err("nothing listens");
    assert!(error.is::<UpstreamNotReached>(), "{error}");
}

#[tokio::test]
async fn a_body_the_upstream_stops_sending_fails_and_closes_its_connection() {
    let upstream = upstream(Upstream::HangMidBody).await;
    let pool = pool_with_stall_limit(
        upstream.port,
        Duration::from_secs(30),
        Duration::from_millis(200),
    );
    let response = pool.send(request()).await.expect("a head");
    let error = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect())
        .await
        .expect("the body fails within its limit, not never")
        .expect_err("the body never ends");
    assert!(error.is::<BodyStalled>(), "{error}");
    // Not given back: the rest of the response was never read.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(upstream.closed.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_given_back_stale_does_not_empty_the_pool() {
    let upstream = upstream(Upstream::KeepAlive).await;
    let pool = pool(upstream.port, Duration::from_millis(1000));
    // Two connections: `slow`'s body is read long after its head came.
    let (slow, quick) = tokio::join!(pool.send(request()), pool.send(request()));
    let (slow, quick) = (slow.expect("an answer"), quick.expect("an answer"));
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 2);
    quick.into_body().collect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Keeps `quick`'s connection fresh.
    assert_eq!(body_of(&pool).await, "ok");
    tokio::time::sleep(Duration::from_millis(700)).await;
    // 1.2 s after its head: stale when given back.
    slow.into_body().collect().await.unwrap();
    // The fresh connection (idle 0.7 s) is still used.
    assert_eq!(body_of(&pool).await, "ok");
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_connection_attempt_is_bounded_whole() {
    // A name lookup that never answers stands for any part of the attempt
    // the connector's own timeout does not cover.
    let pending = std::future::pending::<Result<(), std::io::Error>>();
    let error = within(Duration::from_millis(50), pending)
        .await
        .expect_err("never connects");
    let not_reached = error
        .downcast_ref::<UpstreamNotReached>()
        .expect("told apart as never reached");
    let source = std::error::Error::source(not_reached).expect("a cause");
    assert!(source.is::<ConnectTimedOut>(), "{source}");
    // A failure within the bound is never reached too.
    let refused =
        async { Err::<(), _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)) };
    let error = within(Duration::from_secs(1), refused)
        .await
        .expect_err("refused");
    assert!(error.is::<UpstreamNotReached>(), "{error}");
}

#[tokio::test]
async fn a_slow_reader_does_not_make_the_upstream_look_stalled() {
    // The reader waits for the first half (so the stall timer is made),
    // then pauses longer than the stall limit; the upstream sends the
    // second half 200 ms after the reader is back, well within a limit
    // counted from then (and long after one counted from the first half).
    let upstream = upstream(Upstream::SlowSecondHalf).await;
    let pool = pool_with_stall_limit(
        upstream.port,
        Duration::from_secs(30),
        Duration::from_millis(400),
    );
    let response = pool.send(request()).await.expect("a head");
    let mut body = response.into_body();
    let first = body.frame().await.expect("a frame").expect("data");
    assert_eq!(first.into_data().unwrap(), "ab");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let rest = body.collect().await.expect("the rest arrives in time");
    assert_eq!(rest.to_bytes(), "cd");
}

#[tokio::test]
async fn a_stale_connection_on_top_of_the_stack_does_not_close_fresh_ones_under_it() {
    let upstream = upstream(Upstream::KeepAlive).await;
    let pool = pool(upstream.port, Duration::from_millis(1000));
    // The pool's own sweep runs at 0 s, 1 s, 2 s...: starting 400 ms in,
    // the checkout at 1.55 s comes after `late` turned stale (1.4 s) and
    // before a sweep could have closed it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    // `late`'s head comes first, its body is read last: it is given back
    // on top of `early`, with an older idle clock.
    let late = pool.send(request()).await.expect("an answer");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(body_of(&pool).await, "ok");
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 2);
    tokio::time::sleep(Duration::from_millis(600)).await;
    late.into_body().collect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    // `late` (idle 1.15 s) is stale, the one under it (0.85 s) is not.
    assert_eq!(body_of(&pool).await, "ok");
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 2);
}
