//! The HTTP listener's timeouts on real TCP connections: a connection that never sends a request
//! head, and one that sends a head and then stalls in its body, are both closed by the server;
//! a normal request is answered. Limits are set far below their configurable minimums, through
//! the library API, so the test is quick.

use std::{sync::Arc, sync::atomic::Ordering::Relaxed, time::Duration};

use axum::{Router, routing::post};
use nexus_chat::listener::{self, ConnectionLimits, ConnectionStats};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// Generous bound on "the server closed it", far above the 1 s timeouts under test.
const CLOSED_WITHIN: Duration = Duration::from_secs(15);

async fn start() -> (std::net::SocketAddr, Arc<ConnectionStats>) {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let app = Router::new().route("/echo", post(|body: String| async move { body }));
    let limits = ConnectionLimits {
        max_connections: 100,
        max_per_address: 0,
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
    };
    let stats = Arc::new(ConnectionStats::default());
    tokio::spawn(listener::serve(
        tcp,
        app,
        limits,
        stats.clone(),
        std::future::pending(),
    ));
    (addr, stats)
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(CLOSED_WITHIN, async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server did not close the connection");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn a_connection_that_sends_no_request_head_is_closed() {
    let (addr, stats) = start().await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    read_to_close(&mut silent).await;
    read_to_close(&mut partial).await;
    assert_eq!(stats.header_timeouts.load(Relaxed), 2);
    assert_eq!(stats.open.load(Relaxed), 0, "both are counted out");
}

#[tokio::test]
async fn a_request_whose_body_stalls_is_closed_by_the_idle_timeout() {
    let (addr, stats) = start().await;
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
        .await
        .unwrap();
    read_to_close(&mut stalled).await;
    assert_eq!(stats.idle_timeouts.load(Relaxed), 1);

    // A complete request is answered (and counted neither way).
    let mut fine = TcpStream::connect(addr).await.unwrap();
    fine.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await
    .unwrap();
    let answer = read_to_close(&mut fine).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello"), "{answer}");
    assert_eq!(stats.idle_timeouts.load(Relaxed), 1);
}
