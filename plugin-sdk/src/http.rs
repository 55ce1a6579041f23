//! `Http`: HTTP(S) requests the supervisor makes for the plugin, within its
//! `network_outbound` grant. The plugin itself has no network at all.

use broker_proto::broker::v1 as pb;
use broker_proto::broker::v1::broker_client::BrokerClient;

use crate::SdkError;

/// An answer to [`Http::request`], after redirects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
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

    pub async fn get(&self, url: &str) -> Result<HttpResponse, SdkError> {
        self.request("GET", url, &[], Vec::new()).await
    }

    /// Any method, with headers (not `Host`, `Connection` and the like, which the
    /// supervisor sets) and a body.
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
            .await?
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
