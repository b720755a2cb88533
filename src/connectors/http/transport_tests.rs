//! Transport failures are named by kind, against real sockets on loopback.

use super::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn outbound() -> Outbound {
    let policy = OutboundPolicy::new(vec![AllowedNet::parse("127.0.0.0/8").unwrap()])
        .with_timeout(Duration::from_millis(800));
    Outbound::new(policy).unwrap()
}

async fn failure(url: String) -> String {
    let request = reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap());
    match outbound().send(request, Purpose::Api).await {
        Err(OutboundError::Transport(kind)) => kind,
        other => panic!("expected a transport failure, got {other:?}"),
    }
}

/// A loopback server that handles one connection with `serve`.
async fn server<F, Fut>(serve: F) -> String
where
    F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/x?api_key=secret", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        serve(socket).await;
    });
    url
}

#[tokio::test]
async fn a_refused_connection_is_named() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    assert_eq!(failure(url).await, "connection refused");
}

#[tokio::test]
async fn a_reset_is_named() {
    // Closing a socket with unread data makes the kernel answer with a reset.
    let url = server(|socket| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(socket);
    })
    .await;
    let kind = failure(url).await;
    assert!(
        kind == "connection reset by the server"
            || kind == "connection closed before the answer was complete",
        "{kind}"
    );
}

#[tokio::test]
async fn an_answer_cut_short_is_named() {
    let url = server(|mut socket| async move {
        let mut buf = [0u8; 1024];
        let _ = socket.read(&mut buf).await;
        let _ = socket
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
            .await;
    })
    .await;
    assert_eq!(
        failure(url).await,
        "connection closed before the answer was complete"
    );
}

#[tokio::test]
async fn a_silent_server_times_out_and_no_url_is_shown() {
    let url = server(|socket| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(socket);
    })
    .await;
    let kind = failure(url).await;
    assert_eq!(kind, "timed out");
    assert!(!kind.contains("secret"));
}
