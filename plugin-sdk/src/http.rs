//! `Http`: HTTP(S) requests the supervisor makes for the plugin, within its
//! `network_outbound` grant. The plugin itself has no network at all.

use broker_proto::broker::v1 as pb;
use broker_proto::broker::v1::broker_client::BrokerClient;

use crate::SdkError;

/// An answer to [`Http::request`], after redirects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpResponse {
    /// The HTTP status code, e.g. 200.
    pub status: u16,
    /// Response headers as `(name, value)`, names lower-case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The whole body (up to the operator's cap; a bigger one is an error).
    pub body: Vec<u8>,
    /// The URL that answered.
    pub url: String,
}

/// Outbound HTTP through the supervisor's broker; obtain it with
/// [`PluginContext::http`](crate::PluginContext::http). Cheap to clone.
///
/// The URL's host and port must be covered by a live `network_outbound` grant entry
/// (`api.example.com` for ports 80 and 443, `api.example.com:8443`, `*.example.org`),
/// and the addresses the host resolves to must be public unless the entry is marked
/// `private:`. Redirects are followed only where the same rules allow. A refusal is
/// `is_permission_denied`; a timeout `is_deadline_exceeded`; a response body over the
/// operator's cap `is_resource_exhausted`; a connection failure `is_unavailable`.
///
/// ```no_run
/// # async fn demo(ctx: plexichat_plugin_sdk::PluginContext) -> Result<(), plexichat_plugin_sdk::SdkError> {
/// let weather = ctx.http().get("https://api.example.com/weather?city=Oslo").await?;
/// if weather.status == 200 {
///     println!("{}", String::from_utf8_lossy(&weather.body));
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Http {
    client: BrokerClient<crate::connection::Limited>,
}

impl Http {
    pub(crate) fn new(client: BrokerClient<crate::connection::Limited>) -> Http {
        Http { client }
    }

    /// Fetches `url` with a GET request, made by the supervisor, and returns the final
    /// answer after any allowed redirects. Any status is an answer, not an error:
    /// check [`HttpResponse::status`].
    ///
    /// The URL's host and port must be covered by a live `network_outbound` grant:
    /// an entry `api.example.com` covers ports 80 and 443, `api.example.com:8443` that
    /// port, `*.example.org` every subdomain. Hosts resolving to loopback, private or
    /// link-local addresses are refused unless the entry starts with `private:`.
    ///
    /// ```no_run
    /// # async fn demo(ctx: plexichat_plugin_sdk::PluginContext) -> Result<(), plexichat_plugin_sdk::SdkError> {
    /// // Allowed by the manifest entry `scope = ["api.open-meteo.com:443"]`.
    /// let answer = ctx.http().get("https://api.open-meteo.com/v1/search?name=Oslo").await?;
    /// if answer.status == 200 {
    ///     let found: serde_json::Value = serde_json::from_slice(&answer.body)?;
    ///     println!("{found}");
    /// } else {
    ///     eprintln!("{} answered {}", answer.url, answer.status);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ErrorCode::PermissionDenied`](crate::ErrorCode::PermissionDenied) when no
    /// grant covers the host and port (the message names them), the host resolves to
    /// internal addresses, or a redirect leaves the grant;
    /// [`ErrorCode::InvalidArgument`](crate::ErrorCode::InvalidArgument) for a URL
    /// that is not absolute http(s);
    /// [`ErrorCode::DeadlineExceeded`](crate::ErrorCode::DeadlineExceeded) on timeout;
    /// [`ErrorCode::ResourceExhausted`](crate::ErrorCode::ResourceExhausted) when the
    /// body is over the operator's cap or a rate limit is hit;
    /// [`ErrorCode::Unavailable`](crate::ErrorCode::Unavailable) when the host cannot
    /// be reached.
    pub async fn get(&self, url: &str) -> Result<HttpResponse, SdkError> {
        self.request("GET", url, &[], Vec::new()).await
    }

    /// Any method, with headers (not `Host`, `Connection` and the like, which the
    /// supervisor sets) and a body. The same rules as [`get`](Self::get) apply.
    ///
    /// # Errors
    /// As [`get`](Self::get); also `InvalidArgument` for a forbidden header or method.
    pub async fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<HttpResponse, SdkError> {
        let reply = self
            .client
            .clone()
            .http(pb::HttpRequest {
                method: method.to_string(),
                url: url.to_string(),
                headers: headers
                    .iter()
                    .map(|(name, value)| pb::HttpHeader {
                        name: name.to_string(),
                        value: value.to_string(),
                    })
                    .collect(),
                body,
            })
            .await
            .map_err(crate::error::from_status)?
            .into_inner();
        Ok(HttpResponse {
            status: u16::try_from(reply.status).unwrap_or(0),
            headers: reply
                .headers
                .into_iter()
                .map(|h| (h.name, h.value))
                .collect(),
            body: reply.body,
            url: reply.url,
        })
    }
}
