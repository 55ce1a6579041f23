//! The network service: HTTP(S) requests the supervisor makes for a plugin, only to
//! the hosts and ports its network_outbound grant names, never to internal addresses
//! unless the grant's entry says `private:`.

// How the checks hold together: the URL's host and port must be covered by a grant
// entry before anything happens. Names are resolved by our own resolver, which drops
// every address the entry in force may not reach; reqwest then connects only to the
// addresses it was handed, so a name cannot resolve to something else between check and
// connection (no DNS rebinding). IP literals skip resolution and are checked directly.
// Each redirect is checked the same way before it is followed: the redirect policy sets
// which entry is in force, then reqwest resolves the new host through our resolver.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::audit::short;
use crate::catalog::{host_entry_parts, ScopeShape};

/// Why a request was not made or did not complete.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NetError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    Exhausted(String),
    #[error("{0}")]
    DeadlineExceeded(String),
    #[error("{0}")]
    Unavailable(String),
}

impl From<NetError> for tonic::Status {
    fn from(e: NetError) -> tonic::Status {
        match e {
            NetError::Invalid(m) => tonic::Status::invalid_argument(m),
            NetError::Denied(m) => tonic::Status::permission_denied(m),
            NetError::Exhausted(m) => tonic::Status::resource_exhausted(m),
            NetError::DeadlineExceeded(m) => tonic::Status::deadline_exceeded(m),
            NetError::Unavailable(m) => tonic::Status::unavailable(m),
        }
    }
}

/// Bounds of one request.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub timeout: Duration,
    pub max_response_bytes: usize,
    pub max_redirects: usize,
}

/// One request as the plugin asked for it.
#[derive(Debug, Clone, Default)]
pub struct HttpCall {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The answer, after redirects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub url: String,
}

/// Why an address is internal, or `None` for a public one.
pub fn internal_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if v4.is_multicast() {
                Some("multicast")
            } else if v4.is_unspecified() || o[0] == 0 {
                Some("unspecified")
            } else if v4.is_broadcast() {
                Some("broadcast")
            } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
                Some("shared (carrier-grade NAT)")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_range(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if (seg[0] & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if (seg[0] & 0xfe00) == 0xfc00 {
                Some("private (unique local)")
            } else {
                None
            }
        }
    }
}

/// The plugin's live `network_outbound` scope entries.
#[derive(Debug, Clone, Default)]
pub struct Grant {
    pub entries: Vec<String>,
}

impl Grant {
    /// The entry covering `host:port`: whether one does, and whether it allows
    /// internal addresses.
    fn allows(&self, host: &str, port: u16) -> Option<bool> {
        let target = format!("{}:{port}", host.to_ascii_lowercase());
        let covering: Vec<bool> = self
            .entries
            .iter()
            .filter(|e| ScopeShape::Hosts.covers(e, &target))
            .map(|e| host_entry_parts(e).1)
            .collect();
        (!covering.is_empty()).then(|| covering.iter().any(|p| *p))
    }

    /// Checks `url` against the grant; returns its host, port and whether internal
    /// addresses are allowed for it.
    fn check(&self, url: &reqwest::Url) -> Result<(String, u16, bool), NetError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(NetError::Invalid(format!(
                "only http and https URLs, not `{}:`",
                short(url.scheme())
            )));
        }
        let host = url
            .host_str()
            .ok_or_else(|| NetError::Invalid(format!("`{}` has no host", short(url.as_str()))))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| NetError::Invalid(format!("`{}` has no port", short(url.as_str()))))?;
        let private = self.allows(&host, port).ok_or_else(|| {
            NetError::Denied(format!(
                "network_outbound is not granted for `{}:{port}`",
                short(&host)
            ))
        })?;
        if let (Ok(ip), false) = (host.parse::<IpAddr>(), private) {
            if let Some(range) = internal_range(ip) {
                return Err(NetError::Denied(format!(
                    "`{ip}` is a {range} address; the grant for `{host}:{port}` does not allow internal addresses (a `private:` entry would)"
                )));
            }
        }
        Ok((host, port, private))
    }
}

/// State one request shares with its resolver and redirect policy.
#[derive(Default)]
struct Hop {
    /// Whether the entry in force for the host being resolved allows internal addresses.
    private: bool,
    /// The first refusal, to report it as such rather than as a transport error.
    refused: Option<NetError>,
}

type SharedHop = Arc<Mutex<Hop>>;

fn refuse(hop: &SharedHop, e: NetError) -> NetError {
    if let Ok(mut h) = hop.lock() {
        h.refused.get_or_insert(e.clone());
    }
    e
}

/// Resolves with the system resolver and keeps only the addresses the entry in force
/// may reach; reqwest connects to exactly these.
struct CheckedResolver {
    hop: SharedHop,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let hop = Arc::clone(&self.hop);
        let host = name.as_str().to_string();
        Box::pin(async move {
            let private = hop.lock().map(|h| h.private).unwrap_or(false);
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| {
                    Box::new(refuse(
                        &hop,
                        NetError::Unavailable(format!("cannot resolve `{host}`: {e}")),
                    )) as Box<dyn std::error::Error + Send + Sync>
                })?
                .collect();
            let (ok, internal): (Vec<SocketAddr>, Vec<SocketAddr>) = found
                .into_iter()
                .partition(|a| private || internal_range(a.ip()).is_none());
            if ok.is_empty() {
                let why = internal
                    .iter()
                    .map(|a| format!("{} ({})", a.ip(), internal_range(a.ip()).unwrap_or("?")))
                    .collect::<Vec<_>>()
                    .join(", ");
                let e = refuse(
                    &hop,
                    NetError::Denied(format!(
                        "`{host}` resolves only to internal addresses: {why}; the grant does not allow them (a `private:` entry would)"
                    )),
                );
                return Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn client(grant: &Grant, hop: &SharedHop, limits: HttpLimits) -> Result<reqwest::Client, NetError> {
    let (grant, policy_hop) = (grant.clone(), Arc::clone(hop));
    let max = limits.max_redirects;
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > max {
            let e = refuse(
                &policy_hop,
                NetError::Denied(format!("more than {max} redirects")),
            );
            return attempt.error(e);
        }
        match grant.check(attempt.url()) {
            Ok((_, _, private)) => {
                if let Ok(mut h) = policy_hop.lock() {
                    h.private = private;
                }
                attempt.follow()
            }
            Err(e) => {
                let e = match e {
                    NetError::Denied(m) => NetError::Denied(format!("redirect refused: {m}")),
                    other => other,
                };
                attempt.error(refuse(&policy_hop, e))
            }
        }
    });
    reqwest::Client::builder()
        .dns_resolver(Arc::new(CheckedResolver {
            hop: Arc::clone(hop),
        }))
        .redirect(policy)
        .no_proxy()
        .timeout(limits.timeout)
        .connect_timeout(limits.timeout)
        .user_agent(concat!("plexichat-supervisor/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| NetError::Unavailable(format!("HTTP client: {e}")))
}

/// Headers a plugin may not set: they would let it speak for the connection itself.
/// Longest URL a plugin may ask for (the check comes before anything is recorded).
const MAX_URL_BYTES: usize = 8 * 1024;

const RESERVED_HEADERS: &[&str] = &[
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "te",
    "trailer",
];

fn request(
    client: &reqwest::Client,
    url: reqwest::Url,
    call: HttpCall,
) -> Result<reqwest::RequestBuilder, NetError> {
    let method =
        reqwest::Method::from_bytes(call.method.to_ascii_uppercase().as_bytes()).map_err(|_| {
            NetError::Invalid(format!("`{}` is not an HTTP method", short(&call.method)))
        })?;
    let mut req = client.request(method, url);
    for (name, value) in call.headers {
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(NetError::Invalid(format!(
                "the `{}` header is set by the supervisor",
                short(&name)
            )));
        }
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| NetError::Invalid(format!("`{}` is not a header name", short(&name))))?;
        let value = reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
            NetError::Invalid(format!("the value of `{name}` is not a valid header value"))
        })?;
        req = req.header(name, value);
    }
    Ok(req.body(call.body))
}

/// Makes `call` for a plugin holding `grant`, within `limits`.
pub async fn fetch(
    grant: &Grant,
    call: HttpCall,
    limits: HttpLimits,
) -> Result<HttpAnswer, NetError> {
    if call.url.len() > MAX_URL_BYTES {
        return Err(NetError::Invalid(format!(
            "the URL is {} bytes; at most {MAX_URL_BYTES}",
            call.url.len()
        )));
    }
    let url = reqwest::Url::parse(&call.url)
        .map_err(|e| NetError::Invalid(format!("`{}` is not a URL: {e}", short(&call.url))))?;
    let (_, _, private) = grant.check(&url)?;
    let hop: SharedHop = Arc::new(Mutex::new(Hop {
        private,
        refused: None,
    }));
    let client = client(grant, &hop, limits)?;
    let explain = |e: reqwest::Error| -> NetError {
        if let Some(refused) = hop.lock().ok().and_then(|mut h| h.refused.take()) {
            return refused;
        }
        if e.is_timeout() {
            NetError::DeadlineExceeded(format!(
                "no complete answer within {} ms",
                limits.timeout.as_millis()
            ))
        } else {
            // Without the URL: it may be long (and carry credentials).
            NetError::Unavailable(format!("request failed: {}", e.without_url()))
        }
    };
    let mut response = request(&client, url, call)?.send().await.map_err(explain)?;
    let status = response.status().as_u16();
    let final_url = response.url().to_string();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(explain)? {
        if body.len() + chunk.len() > limits.max_response_bytes {
            return Err(NetError::Exhausted(format!(
                "the response body exceeds {} bytes",
                limits.max_response_bytes
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpAnswer {
        status,
        headers,
        body,
        url: final_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(entries: &[&str]) -> Grant {
        Grant {
            entries: entries.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn url(u: &str) -> reqwest::Url {
        reqwest::Url::parse(u).expect("url")
    }

    #[test]
    fn internal_ranges_are_named() {
        for (ip, range) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("224.0.0.1", "multicast"),
            ("0.0.0.0", "unspecified"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("::1", "loopback"),
            ("fe80::1", "link-local"),
            ("fd00::1", "private (unique local)"),
            ("::ffff:127.0.0.1", "loopback"),
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(internal_range(ip), Some(range), "{ip}");
        }
        for ip in [
            "93.184.215.14",
            "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
            "172.32.0.1",
        ] {
            assert_eq!(internal_range(ip.parse().expect("ip")), None, "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_against_host_port_and_wildcards() {
        let g = grant(&["*.example.com", "api.example.org:8443"]);
        assert!(g.check(&url("https://api.example.com/x")).is_ok());
        assert!(
            g.check(&url("http://api.example.com/x")).is_ok(),
            "port 80 too"
        );
        for bad in [
            "https://example.com/",
            "https://example.com.evil.net/",
            "https://api.example.com:8080/",
            "https://api.example.org/",
            "https://evil.net/?https://api.example.com",
        ] {
            assert!(
                matches!(g.check(&url(bad)), Err(NetError::Denied(_))),
                "{bad}"
            );
        }
        assert!(g.check(&url("https://api.example.org:8443/")).is_ok());
        assert!(matches!(
            g.check(&url("ftp://api.example.com/")),
            Err(NetError::Invalid(_))
        ));
    }

    #[test]
    fn ip_literals_in_internal_ranges_need_the_private_mark() {
        let plain = grant(&["127.0.0.1:8080", "169.254.169.254"]);
        let err = plain
            .check(&url("http://127.0.0.1:8080/"))
            .expect_err("loopback");
        assert!(
            matches!(&err, NetError::Denied(m) if m.contains("loopback")),
            "{err:?}"
        );
        assert!(plain
            .check(&url("http://169.254.169.254/latest/meta-data"))
            .is_err());
        let marked = grant(&["private:127.0.0.1:8080"]);
        assert!(marked.check(&url("http://127.0.0.1:8080/")).is_ok());
    }
}
