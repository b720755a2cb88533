//! The one outbound HTTP client. Every call to a provider or OAuth server goes through
//! here: timeouts, a response size limit, no redirects on OAuth calls, and the SSRF guard —
//! private, loopback, link-local and other non-public addresses are refused (for names:
//! after DNS resolution, so rebinding cannot sneak past) unless `SLUICE_OUTBOUND_ALLOW`
//! lists them. The built-in sandbox is reached like any provider: start-up adds this
//! server's own address (host and port of the public URL) to the allow list, and no URL
//! is let through by its spelling.

use crate::config::OriginRoute;
use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Connect timeout for every outbound call.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Total timeout for every outbound call.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest response body read (bigger answers are refused, not truncated).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// Why an outbound call was not made or failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The URL is malformed or not http(s).
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The destination is a private or otherwise non-public address.
    #[error(
        "refused to connect to a non-public address ({0}); allow it with SLUICE_OUTBOUND_ALLOW"
    )]
    Forbidden(String),
    /// Connecting, sending or reading failed (includes timeouts).
    #[error("request failed: {0}")]
    Transport(String),
    /// The response was larger than allowed.
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
}

/// A network range allowed despite being non-public (`SLUICE_OUTBOUND_ALLOW`, e.g.
/// `10.0.0.0/8`), or one address on one port (this server's own, for the built-in sandbox).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowedNet {
    net: IpNet,
    port: Option<u16>,
}

impl From<IpNet> for AllowedNet {
    fn from(net: IpNet) -> Self {
        Self { net, port: None }
    }
}

impl AllowedNet {
    /// Parses `a.b.c.d/n`, `::1/128`, or a bare address.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let net = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| format!("'{text}' is not an address or CIDR range"))?;
        Ok(Self { net, port: None })
    }

    /// Exactly this address and port.
    pub fn socket(addr: SocketAddr) -> Self {
        Self {
            net: IpNet::from(addr.ip()),
            port: Some(addr.port()),
        }
    }

    /// Whether a connection to `ip` on `port` (when known) falls in this entry. An entry
    /// for one port never matches when the port is not known.
    fn matches(&self, ip: IpAddr, port: Option<u16>) -> bool {
        self.net.contains(&ip) && (self.port.is_none() || self.port == port)
    }
}

/// Whether an address is on the public internet (not private, loopback, link-local,
/// carrier-grade NAT, documentation, multicast, unspecified, …). An IPv6 address that
/// embeds an IPv4 one is judged by that IPv4 address, since that is where it leads.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// The IPv4 address an IPv6 one stands for, if any: IPv4-mapped (`::ffff:0:0/96`),
/// IPv4-translated (`::ffff:0:0:0/96`, RFC 6145), NAT64 (`64:ff9b::/96`, RFC 6052),
/// IPv4-compatible (`::/96`, deprecated) and 6to4 (`2002::/16`). Everything else is
/// returned as it is.
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    let seg = v6.segments();
    let v4 = |hi: u16, lo: u16| {
        IpAddr::V4(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        ))
    };
    match seg {
        [0, 0, 0, 0, 0, 0xffff, hi, lo]
        | [0, 0, 0, 0, 0xffff, 0, hi, lo]
        | [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => v4(hi, lo),
        // `::` and `::1` are IPv6's own unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0, hi, lo] if !v6.is_loopback() && !v6.is_unspecified() => v4(hi, lo),
        [0x2002, hi, lo, ..] => v4(hi, lo),
        _ => ip,
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    let first = seg[0];
    !(ip.is_loopback()
        || (first & 0xffc0) == 0xfec0
        || (first == 0x2001 && seg[1] == 0)
        || (first == 0x0100 && seg[1..4] == [0, 0, 0])
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || first == 0x2001 && seg[1] == 0x0db8
        // The rest of 64:ff9b::/32 (local-use NAT64, RFC 8215) is not public.
        || first == 0x0064 && seg[1] == 0xff9b)
}

/// The allow list and the decision.
#[derive(Clone, Debug, Default)]
pub struct OutboundPolicy {
    allow: Vec<AllowedNet>,
    /// Total time a call may take; [`TOTAL_TIMEOUT`] when not set.
    timeout: Option<Duration>,
    own: Option<OwnAddress>,
}

/// This server's own address (the built-in sandbox lives there). When the public URL
/// names a host, calls to that name on that port reach the sandbox; the resolver, which
/// sees names but not ports, relies on [`Outbound::client_for`] having refused any other
/// port of that name.
#[derive(Clone, Debug)]
struct OwnAddress {
    name: Option<String>,
    port: u16,
    ips: Vec<IpAddr>,
}

impl OwnAddress {
    fn is_named(&self, name: &str) -> bool {
        self.name
            .as_deref()
            .is_some_and(|own| own.eq_ignore_ascii_case(name))
    }
}

impl OutboundPolicy {
    /// A policy allowing public addresses plus `allow`.
    pub fn new(allow: Vec<AllowedNet>) -> Self {
        Self {
            allow,
            own: None,
            timeout: None,
        }
    }

    /// The same policy with calls cut off after `timeout` (at most [`TOTAL_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout.min(TOTAL_TIMEOUT));
        self
    }

    /// Also allows this server's own address, `url`'s host and port (the built-in
    /// sandbox lives there), resolving a host name once, now.
    pub async fn allow_own(&mut self, url: &url::Url) -> anyhow::Result<()> {
        let port = url
            .port_or_known_default()
            .ok_or_else(|| anyhow::anyhow!("{url} has no port"))?;
        let (name, ips) = match url.host() {
            Some(url::Host::Ipv4(v4)) => (None, vec![IpAddr::V4(v4)]),
            Some(url::Host::Ipv6(v6)) => (None, vec![IpAddr::V6(v6)]),
            Some(url::Host::Domain(name)) => (
                Some(name.to_ascii_lowercase()),
                tokio::net::lookup_host((name, port))
                    .await?
                    .map(|a| a.ip())
                    .collect(),
            ),
            None => anyhow::bail!("{url} has no host"),
        };
        self.allow.extend(
            ips.iter()
                .map(|ip| AllowedNet::socket(SocketAddr::new(*ip, port))),
        );
        self.own = Some(OwnAddress { name, port, ips });
        Ok(())
    }

    /// Whether connecting to `ip` on `port` (`None`: not known) is allowed. Allowed
    /// ranges are matched against the address as given and the IPv4 address it embeds.
    pub fn permits(&self, ip: IpAddr, port: Option<u16>) -> bool {
        let embedded = canonical(ip);
        is_public(ip)
            || self
                .allow
                .iter()
                .any(|net| net.matches(ip, port) || net.matches(embedded, port))
    }

    /// The port a name is resolved for, as far as the resolver can tell: this server's
    /// own name always means its own port (other ports were refused before resolving).
    fn port_of_name(&self, name: &str) -> Option<u16> {
        self.own
            .as_ref()
            .filter(|own| own.is_named(name))
            .map(|own| own.port)
    }

    /// Whether `url` addresses this server's own host and port.
    fn is_own(&self, url: &url::Url) -> bool {
        let Some(own) = &self.own else { return false };
        let host_matches = match url.host() {
            Some(url::Host::Domain(name)) => own.is_named(name),
            _ => literal_ip(url).is_some_and(|ip| own.name.is_none() && own.ips.contains(&ip)),
        };
        host_matches && url.port_or_known_default() == Some(own.port)
    }

    /// Checks what can be checked before connecting: a literal address with its port,
    /// and this server's own name only on its own port. Other names are checked after
    /// resolution.
    fn check_url(&self, url: &url::Url) -> Result<(), OutboundError> {
        let port = url.port_or_known_default();
        match url.host() {
            Some(url::Host::Domain(name)) => self.check_name(name, port.unwrap_or(0)),
            _ => match literal_ip(url) {
                Some(ip) if !self.permits(ip, port) => {
                    Err(OutboundError::Forbidden(ip.to_string()))
                }
                _ => Ok(()),
            },
        }
    }

    /// Refuses this server's own name on another port than its own, unless its addresses
    /// are allowed there anyway: the resolver could not tell the ports apart.
    fn check_name(&self, name: &str, port: u16) -> Result<(), OutboundError> {
        match &self.own {
            Some(own)
                if own.is_named(name)
                    && own.port != port
                    && !own.ips.iter().all(|ip| self.permits(*ip, None)) =>
            {
                Err(OutboundError::Forbidden(name.to_owned()))
            }
            _ => Ok(()),
        }
    }
}

/// Resolves names and drops every address the policy refuses; refuses the name when none
/// is left. Checking resolved addresses (not names) defeats DNS tricks.
struct GuardedResolver {
    policy: OutboundPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let port = policy.port_of_name(&host);
            let allowed: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| policy.permits(a.ip(), port))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(OutboundError::Forbidden(host))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The outbound clients; cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    policy: OutboundPolicy,
    api: reqwest::Client,
    oauth: reqwest::Client,
    /// `SLUICE_PROVIDER_ORIGINS`: vendor origins answered elsewhere.
    routes: Arc<[OriginRoute]>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("policy", &self.policy)
            .finish()
    }
}

/// Which kind of call: OAuth endpoints never follow redirects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Provider API calls (up to 5 redirects, each re-checked).
    Api,
    /// Authorization-server calls (token, revoke): no redirects.
    OAuth,
    /// Outbound notifications (alert webhooks): no redirects, so a receiver cannot
    /// bounce a signed payload somewhere else.
    Notification,
}

impl Outbound {
    /// Builds the clients.
    pub fn new(policy: OutboundPolicy) -> anyhow::Result<Self> {
        // TLS uses ring (no aws-lc build); installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let timeout = policy.timeout.unwrap_or(TOTAL_TIMEOUT);
        let base = || {
            reqwest::Client::builder()
                // An environment proxy would resolve names itself and bypass the guard.
                .no_proxy()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(timeout)
                .user_agent(concat!("Sluice/", env!("CARGO_PKG_VERSION")))
        };
        let redirect_policy = policy.clone();
        let api = base()
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 5 {
                    return attempt.error("too many redirects");
                }
                match redirect_policy.check_url(attempt.url()) {
                    Err(refused) => attempt.error(refused),
                    Ok(()) => attempt.follow(),
                }
            }))
            .build()?;
        let oauth = base()
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            policy,
            api,
            oauth,
            routes: Arc::new([]),
        })
    }

    /// The same clients, sending calls to the vendor origins of `routes` to their
    /// replacements (contract fakes, local development).
    pub fn with_routes(mut self, routes: Vec<OriginRoute>) -> Self {
        self.routes = routes.into();
        self
    }

    /// Where a call to `url` really goes: its replacement when its origin is rerouted,
    /// else `url` itself. Everything above this layer sees the vendor's URLs only.
    pub fn destination(&self, url: &str) -> String {
        url::Url::parse(url)
            .ok()
            .and_then(|parsed| self.routes.iter().find_map(|r| r.reroute(&parsed)))
            .map_or_else(|| url.to_owned(), String::from)
    }

    /// Checks a URL before any connection: scheme, and literal addresses (names are
    /// checked after resolution). Returns the client to use.
    pub fn client_for(
        &self,
        url: &str,
        purpose: Purpose,
    ) -> Result<&reqwest::Client, OutboundError> {
        let parsed = url::Url::parse(url).map_err(|e| OutboundError::InvalidUrl(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(OutboundError::InvalidUrl(
                "only http and https URLs are allowed".into(),
            ));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(OutboundError::InvalidUrl(
                "credentials in URLs are not allowed".into(),
            ));
        }
        self.policy.check_url(&parsed)?;
        Ok(match purpose {
            Purpose::Api => &self.api,
            Purpose::OAuth | Purpose::Notification => &self.oauth,
        })
    }

    /// Checks that a URL may be called at all — scheme, literal address, and every address
    /// its host resolves to — without calling it. Used before sending a user to an
    /// authorization server whose token endpoint we will call later.
    pub async fn check_destination(&self, url: &str) -> Result<(), OutboundError> {
        let url = &self.destination(url);
        self.client_for(url, Purpose::OAuth)?;
        let parsed = url::Url::parse(url).map_err(|e| OutboundError::InvalidUrl(e.to_string()))?;
        let host = parsed.host_str().unwrap_or_default().to_owned();
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addrs: Vec<IpAddr> = match parsed.host() {
            Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, port))
                .await
                .map(|a| a.map(|s| s.ip()).collect())
                // Same answer as a refusal: no oracle for internal names.
                .map_err(|_| OutboundError::Forbidden(host.clone()))?,
            _ => literal_ip(&parsed).into_iter().collect(),
        };
        // Judged as the call will be: a name by what the resolver knows of its port.
        let port = match parsed.host() {
            Some(url::Host::Domain(name)) => self.policy.port_of_name(name),
            _ => Some(port),
        };
        if addrs.is_empty() || addrs.iter().any(|ip| !self.policy.permits(*ip, port)) {
            return Err(OutboundError::Forbidden(host));
        }
        // Plain http would expose client secrets and codes; only explicitly allowed
        // (internal) networks, and this server itself (the sandbox), may use it.
        if parsed.scheme() == "http"
            && !self.policy.is_own(&parsed)
            && addrs.iter().any(|ip| is_public(*ip))
        {
            return Err(OutboundError::InvalidUrl(
                "authorization servers must use https".into(),
            ));
        }
        Ok(())
    }

    /// Sends a request built by the caller and reads the whole (bounded) body.
    pub async fn send(
        &self,
        mut request: reqwest::Request,
        purpose: Purpose,
    ) -> Result<Fetched, OutboundError> {
        if let Some(moved) = self.routes.iter().find_map(|r| r.reroute(request.url())) {
            *request.url_mut() = moved;
        }
        let client = self.client_for(request.url().as_str(), purpose)?;
        let started = std::time::Instant::now();
        let method = request.method().clone();
        let shown = redact(request.url());
        let response = client.execute(request).await.map_err(|e| transport(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_limited(response, MAX_BODY).await?;
        tracing::debug!(%method, url = %shown, status = status.as_u16(), ms = started.elapsed().as_millis() as u64, "outbound call");
        Ok(Fetched {
            status,
            headers,
            body,
        })
    }
}

/// A response read to the end.
#[derive(Debug)]
pub struct Fetched {
    /// Status.
    pub status: reqwest::StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body (at most [`MAX_BODY`]).
    pub body: Vec<u8>,
}

impl Fetched {
    /// The delay the vendor asked for: `Retry-After` (seconds or an HTTP date),
    /// `retry-after-ms`, or the moment a rate-limit window resets (`x-ratelimit-reset`,
    /// `ratelimit-reset`: epoch seconds, or seconds from now when small).
    pub fn retry_after(&self) -> Option<Duration> {
        let header = |name: &str| {
            self.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        if let Some(value) = header("retry-after") {
            if let Ok(secs) = value.parse::<f64>()
                && secs.is_finite()
                && secs >= 0.0
            {
                return Some(Duration::from_secs_f64(secs));
            }
            if let Ok(at) = httpdate::parse_http_date(value) {
                // A date already past asks for nothing.
                return at.duration_since(std::time::SystemTime::now()).ok();
            }
        }
        if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<u64>().ok()) {
            return Some(Duration::from_millis(ms));
        }
        let reset = header("x-ratelimit-reset")
            .or_else(|| header("ratelimit-reset"))
            .and_then(|v| v.parse::<u64>().ok())?;
        // Epoch seconds are large; a small number is a delay.
        if reset < 1_000_000_000 {
            return Some(Duration::from_secs(reset));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs();
        Some(Duration::from_secs(reset.saturating_sub(now)))
    }
}

fn transport(e: &reqwest::Error) -> OutboundError {
    // Walk the cause chain: a refusal by the guard surfaces as a connect error.
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        if let Some(OutboundError::Forbidden(host)) = err.downcast_ref::<OutboundError>() {
            return OutboundError::Forbidden(host.clone());
        }
        source = err.source();
    }
    // reqwest's message may contain the URL (and so a query secret); name only the kind.
    OutboundError::Transport(transport_kind(e).to_owned())
}

/// What went wrong on the wire, in words an operator can act on: reset, refused, closed
/// early, timed out, TLS or name resolution.
fn transport_kind(e: &reqwest::Error) -> &'static str {
    use std::io::ErrorKind;
    let mut source: Option<&dyn std::error::Error> = Some(e);
    let mut dns = false;
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                ErrorKind::ConnectionReset => return "connection reset by the server",
                ErrorKind::ConnectionRefused => return "connection refused",
                ErrorKind::ConnectionAborted => return "connection aborted",
                ErrorKind::BrokenPipe => return "connection closed while sending",
                ErrorKind::UnexpectedEof => {
                    return "connection closed before the answer was complete";
                }
                ErrorKind::TimedOut => return "timed out",
                _ => {}
            }
        }
        if err.downcast_ref::<rustls::Error>().is_some() {
            return "TLS handshake or certificate failed";
        }
        if let Some(h) = err.downcast_ref::<hyper::Error>()
            && h.is_incomplete_message()
        {
            return "connection closed before the answer was complete";
        }
        dns |= err.to_string().starts_with("dns error");
        source = err.source();
    }
    if e.is_timeout() {
        "timed out"
    } else if dns {
        "the host name could not be resolved"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off while it was read"
    } else {
        "the request failed on the way"
    }
}

async fn read_limited(response: reqwest::Response, limit: usize) -> Result<Vec<u8>, OutboundError> {
    if response
        .content_length()
        .is_some_and(|len| len as usize > limit)
    {
        return Err(OutboundError::TooLarge(limit));
    }
    // Sized by the declared length: a page of a few hundred kilobytes is not copied over
    // and over as it grows. Only a few megabytes on trust; a larger body grows as it comes.
    let declared = response.content_length().unwrap_or(0) as usize;
    let mut body = Vec::with_capacity(declared.min(limit).min(4 << 20));
    let mut response = response;
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(&e))? {
        if body.len() + chunk.len() > limit {
            return Err(OutboundError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// A URL fit for logs: no query string or fragment (they may carry keys or codes).
pub fn redact(url: &url::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown.to_string()
}

#[cfg(test)]
mod transport_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds_or_as_an_http_date() {
        let answer = |value: &str| Fetched {
            status: reqwest::StatusCode::TOO_MANY_REQUESTS,
            headers: [(reqwest::header::RETRY_AFTER, value.parse().unwrap())]
                .into_iter()
                .collect(),
            body: Vec::new(),
        };
        assert_eq!(answer("120").retry_after(), Some(Duration::from_secs(120)));
        let in_a_minute =
            httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(61));
        let wait = answer(&in_a_minute).retry_after().unwrap();
        assert!(
            wait > Duration::from_secs(55) && wait <= Duration::from_secs(61),
            "{wait:?}"
        );
        assert_eq!(
            answer("Wed, 21 Oct 2015 07:28:00 GMT").retry_after(),
            None,
            "past"
        );
        assert_eq!(answer("soon").retry_after(), None);
    }

    #[test]
    fn vendor_rate_limit_headers_give_the_wait() {
        let answer = |name: &'static str, value: String| Fetched {
            status: reqwest::StatusCode::FORBIDDEN,
            headers: [(
                reqwest::header::HeaderName::from_static(name),
                value.parse().unwrap(),
            )]
            .into_iter()
            .collect(),
            body: Vec::new(),
        };
        assert_eq!(
            answer("retry-after-ms", "1500".into()).retry_after(),
            Some(Duration::from_millis(1500))
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let wait = answer("x-ratelimit-reset", (now + 30).to_string())
            .retry_after()
            .unwrap();
        assert!(
            wait > Duration::from_secs(27) && wait <= Duration::from_secs(30),
            "GitHub's epoch reset: {wait:?}"
        );
        assert_eq!(
            answer("ratelimit-reset", "7".into()).retry_after(),
            Some(Duration::from_secs(7)),
            "a small reset is a delay"
        );
    }

    #[test]
    fn a_rerouted_vendor_origin_keeps_path_and_query() {
        let route =
            crate::config::OriginRoute::parse("https://login.vendor.example=http://127.0.0.1:9000")
                .unwrap();
        let moved = route
            .reroute(&url::Url::parse("https://login.vendor.example/oauth/token?x=1").unwrap())
            .unwrap();
        assert_eq!(moved.as_str(), "http://127.0.0.1:9000/oauth/token?x=1");
        assert!(
            route
                .reroute(&url::Url::parse("https://other.vendor.example/x").unwrap())
                .is_none()
        );
        assert!(
            route
                .reroute(&url::Url::parse("https://login.vendor.example:8443/x").unwrap())
                .is_none(),
            "another port is another origin"
        );
        for bad in [
            "https://a.example",
            "https://a.example/path=http://127.0.0.1:1",
            "ftp://a.example=http://127.0.0.1:1",
        ] {
            assert!(crate::config::OriginRoute::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn non_public_addresses_are_refused_unless_allowed() {
        let policy = OutboundPolicy::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:0:7f00:1",
            "::ffff:0:a9fe:a9fe",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "::7f00:1",
            "2002:7f00:1::",
        ] {
            assert!(
                !policy.permits(ip.parse().unwrap(), None),
                "{ip} must be refused"
            );
        }
        for ip in [
            "93.184.216.34",
            "2606:4700::1111",
            "8.8.8.8",
            "::ffff:8.8.8.8",
            "::ffff:0:808:808",
            "64:ff9b::808:808",
        ] {
            assert!(policy.permits(ip.parse().unwrap(), None), "{ip} is public");
        }
        let allowed = OutboundPolicy::new(vec![AllowedNet::parse("10.0.0.0/8").unwrap()]);
        assert!(allowed.permits("10.200.0.1".parse().unwrap(), Some(443)));
        assert!(
            !allowed.permits("11.0.0.1".parse().unwrap(), None)
                || is_public("11.0.0.1".parse().unwrap())
        );
        assert!(!allowed.permits("192.168.0.1".parse().unwrap(), None));
        assert!(
            allowed.permits("::ffff:0:a00:1".parse().unwrap(), None),
            "an allowed IPv4 range covers its IPv6 forms"
        );
        assert!(AllowedNet::parse("10.0.0.0/33").is_err());
        assert!(AllowedNet::parse("nonsense").is_err());
    }

    #[tokio::test]
    async fn urls_are_checked_before_connecting() {
        let mut policy = OutboundPolicy::default();
        policy
            .allow_own(&url::Url::parse("http://127.0.0.1:8080/").unwrap())
            .await
            .unwrap();
        let out = Outbound::new(policy).unwrap();
        assert!(matches!(
            out.client_for("http://127.0.0.1:5432/x", Purpose::Api),
            Err(OutboundError::Forbidden(_))
        ));
        assert!(matches!(
            out.client_for("http://[::1]/x", Purpose::OAuth),
            Err(OutboundError::Forbidden(_))
        ));
        assert!(matches!(
            out.client_for("file:///etc/passwd", Purpose::Api),
            Err(OutboundError::InvalidUrl(_))
        ));
        assert!(matches!(
            out.client_for("http://user:pw@example.com/", Purpose::Api),
            Err(OutboundError::InvalidUrl(_))
        ));
        assert!(
            out.client_for("http://127.0.0.1:8080/sandbox/oauth/token", Purpose::OAuth)
                .is_ok(),
            "this server's own address and port (the sandbox)"
        );
        assert!(matches!(
            out.client_for("http://127.0.0.1:8081/sandbox/oauth/token", Purpose::OAuth),
            Err(OutboundError::Forbidden(_))
        ));
        assert!(
            out.client_for("https://api.example.com/v1", Purpose::Api)
                .is_ok()
        );
    }

    #[tokio::test]
    async fn this_servers_own_name_is_allowed_on_its_own_port_only() {
        let mut policy = OutboundPolicy::default();
        policy
            .allow_own(&url::Url::parse("http://localhost:8080/").unwrap())
            .await
            .unwrap();
        let out = Outbound::new(policy).unwrap();
        assert!(
            out.client_for("http://localhost:8080/sandbox/x", Purpose::Api)
                .is_ok()
        );
        assert!(
            out.check_destination("http://localhost:8080/sandbox/oauth/token")
                .await
                .is_ok()
        );
        for url in ["http://localhost:5432/", "http://LOCALHOST:9/x"] {
            assert!(
                matches!(
                    out.client_for(url, Purpose::Api),
                    Err(OutboundError::Forbidden(_))
                ),
                "{url}"
            );
            assert!(out.check_destination(url).await.is_err(), "{url}");
        }
        assert!(
            out.check_destination("http://127.0.0.1:5432/")
                .await
                .is_err()
        );
    }

    #[test]
    fn logged_urls_carry_no_query() {
        let url = url::Url::parse("https://api.example.com/v1/x?api_key=canary&x=1#f").unwrap();
        assert_eq!(redact(&url), "https://api.example.com/v1/x");
    }
}
