//! Static assets, embedded in the binary so `sluice` is a single file to deploy.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

/// (path under /static/, content type, bytes)
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "css/app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/css/app.css"),
    ),
    (
        "js/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/js/app.js"),
    ),
    (
        "img/logo.svg",
        "image/svg+xml",
        include_bytes!("../../static/img/logo.svg"),
    ),
    (
        "img/favicon.svg",
        "image/svg+xml",
        include_bytes!("../../static/img/favicon.svg"),
    ),
];

/// A content hash per build, for conditional requests.
fn etag(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("\"{}\"", &hex::encode(Sha256::digest(bytes))[..16])
}

/// GET /static/{path}
pub async fn serve(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let Some((_, content_type, bytes)) = ASSETS.iter().find(|(p, _, _)| *p == path.as_str()) else {
        return HttpResponse::NotFound().finish();
    };
    let tag = etag(bytes);
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == tag);
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response.insert_header((header::ETAG, tag)).insert_header((
        header::CACHE_CONTROL,
        "public, max-age=3600, must-revalidate",
    ));
    if fresh {
        response.finish()
    } else {
        response.content_type(*content_type).body(*bytes)
    }
}
