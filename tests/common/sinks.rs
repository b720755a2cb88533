//! Real receivers on loopback for notification tests: an SMTP sink that keeps every
//! message, and an HTTP endpoint that keeps every request and answers with scripted
//! statuses.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// An SMTP server that accepts everything and keeps the messages.
pub struct SmtpSink {
    /// `smtp://127.0.0.1:<port>`.
    pub url: String,
    messages: Arc<Mutex<Vec<String>>>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let messages = Arc::new(Mutex::new(Vec::new()));
        let kept = messages.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read).lines();
                    write.write_all(b"220 sink ESMTP\r\n").await.ok();
                    let mut data: Option<String> = None;
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Some(body) = data.as_mut() {
                            if line == "." {
                                kept.lock().unwrap().push(std::mem::take(body));
                                data = None;
                                write.write_all(b"250 queued\r\n").await.ok();
                            } else {
                                body.push_str(line.strip_prefix('.').unwrap_or(&line));
                                body.push('\n');
                            }
                            continue;
                        }
                        let verb = line.split_whitespace().next().unwrap_or("").to_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" | "HELO" => b"250 sink\r\n",
                            "DATA" => {
                                data = Some(String::new());
                                b"354 go ahead\r\n"
                            }
                            "QUIT" => {
                                write.write_all(b"221 bye\r\n").await.ok();
                                break;
                            }
                            _ => b"250 ok\r\n",
                        };
                        write.write_all(reply).await.ok();
                    }
                });
            }
        });
        SmtpSink { url, messages }
    }

    /// Messages received so far (headers and body, dot-unstuffed).
    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }
}

/// One request an [`HttpSink`] received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

/// Scripted answers: status and an optional `Retry-After`.
type Script = Arc<Mutex<VecDeque<(u16, Option<String>)>>>;

/// An HTTP endpoint that records requests and answers with scripted statuses (200 when
/// the script is empty).
#[derive(Clone)]
pub struct HttpSink {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    received: Arc<Mutex<Vec<Received>>>,
    script: Script,
}

impl HttpSink {
    pub async fn start() -> HttpSink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let sink = HttpSink {
            base,
            received: Arc::default(),
            script: Arc::default(),
        };
        let state = sink.clone();
        let server = actix_web::HttpServer::new(move || {
            let state = state.clone();
            actix_web::App::new().default_service(actix_web::web::to(
                move |req: actix_web::HttpRequest, body: actix_web::web::Bytes| {
                    let state = state.clone();
                    async move {
                        let mut headers = reqwest::header::HeaderMap::new();
                        for (k, v) in req.headers() {
                            headers.insert(
                                reqwest::header::HeaderName::from_bytes(k.as_str().as_bytes())
                                    .unwrap(),
                                reqwest::header::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
                            );
                        }
                        state.received.lock().unwrap().push(Received {
                            path: req.path().to_owned(),
                            headers,
                            body: body.to_vec(),
                        });
                        let (status, retry_after) = state
                            .script
                            .lock()
                            .unwrap()
                            .pop_front()
                            .unwrap_or((200, None));
                        let mut answer = actix_web::HttpResponse::build(
                            actix_web::http::StatusCode::from_u16(status).unwrap(),
                        );
                        if let Some(r) = retry_after {
                            answer.insert_header(("Retry-After", r));
                        }
                        answer.body("ok")
                    }
                },
            ))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        sink
    }

    /// Answers the next requests with these statuses (and `Retry-After` values).
    pub fn answer_next(&self, answers: &[(u16, Option<&str>)]) {
        self.script
            .lock()
            .unwrap()
            .extend(answers.iter().map(|(s, r)| (*s, r.map(str::to_owned))));
    }

    /// Requests received on `path` so far.
    pub fn received(&self, path: &str) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

/// Polls `check` every 100 ms for up to `secs` seconds.
pub async fn eventually<F: FnMut() -> bool>(secs: u64, what: &str, mut check: F) {
    for _ in 0..secs * 10 {
        if check() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}
