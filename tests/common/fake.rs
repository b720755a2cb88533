//! A vendor's API on loopback for tests: one handler answers every request, and every
//! request is kept for the test to inspect.

use actix_web::{App as ActixApp, HttpRequest, HttpResponse, HttpServer, web};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn form(&self) -> BTreeMap<String, String> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }
}

/// The fake's answer.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(status: u16, body: serde_json::Value) -> Answer {
        Answer {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    pub fn empty(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn redirect(to: &str) -> Answer {
        Answer {
            status: 302,
            headers: vec![("location".into(), to.into())],
            body: String::new(),
        }
    }
}

type Handler = Arc<dyn Fn(&Request) -> Answer + Send + Sync>;

/// A vendor's API on loopback, answering through one handler and keeping every request.
pub struct Fake {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    log: Arc<Mutex<Vec<Request>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Fake {
    pub async fn start(handler: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> Fake {
        let handler: Handler = Arc::new(handler);
        let log = Arc::new(Mutex::new(Vec::new()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let kept = log.clone();
        let server = HttpServer::new(move || {
            let handler = handler.clone();
            let kept = kept.clone();
            ActixApp::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let handler = handler.clone();
                let kept = kept.clone();
                async move {
                    let request = Request {
                        method: req.method().to_string(),
                        path: req.path().to_owned(),
                        query: url::form_urlencoded::parse(req.query_string().as_bytes())
                            .into_owned()
                            .collect(),
                        headers: req
                            .headers()
                            .iter()
                            .map(|(k, v)| {
                                (
                                    k.as_str().to_lowercase(),
                                    v.to_str().unwrap_or_default().to_owned(),
                                )
                            })
                            .collect(),
                        body: body.to_vec(),
                    };
                    let answer = handler(&request);
                    kept.lock().unwrap().push(request);
                    let mut response = HttpResponse::build(
                        actix_web::http::StatusCode::from_u16(answer.status).unwrap(),
                    );
                    for (name, value) in &answer.headers {
                        response.insert_header((name.as_str(), value.as_str()));
                    }
                    response.body(answer.body)
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Fake { base, log, handle }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    /// The requests to paths starting with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}
