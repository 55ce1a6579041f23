//! Test plugin speaking the broker protocol without the SDK, to send what the SDK
//! never does: `big-header <bytes>` makes a call carrying one metadata header of that
//! size, then an ordinary call on the same connection, and answers both outcomes;
//! `burst <count>` starts that many calls at once with no in-flight limit of its own.

use std::os::fd::FromRawFd;
use std::sync::{Arc, Mutex};

use broker_proto::broker::v1::broker_client::BrokerClient;
use broker_proto::broker::v1::host_message::Kind;
use broker_proto::broker::v1::{
    CommandReply, HandshakeRequest, HasPermissionRequest, PongRequest, SessionRequest,
};
use serde_json::json;
use tonic::transport::{Channel, Endpoint};

type Client = BrokerClient<Channel>;

async fn connect() -> Result<Client, Box<dyn std::error::Error>> {
    // SAFETY: fd 3 is the broker socket the supervisor passed down; nothing else in
    // this process owns it.
    let socket = unsafe { std::os::unix::net::UnixStream::from_raw_fd(3) };
    socket.set_nonblocking(true)?;
    let slot = Arc::new(Mutex::new(Some(tokio::net::UnixStream::from_std(socket)?)));
    let channel = Endpoint::from_static("http://plexichat.broker")
        .connect_with_connector(tower::service_fn(move |_| {
            let stream = slot.lock().ok().and_then(|mut s| s.take());
            async move {
                stream
                    .map(hyper_util::rt::TokioIo::new)
                    .ok_or_else(|| std::io::Error::other("the broker connection is used up"))
            }
        }))
        .await?;
    Ok(BrokerClient::new(channel))
}

fn outcome<T>(r: &Result<T, tonic::Status>) -> serde_json::Value {
    match r {
        Ok(_) => json!({ "code": "Ok" }),
        Err(s) => json!({
            "code": format!("{:?}", s.code()),
            "message": s.message().chars().take(300).collect::<String>(),
        }),
    }
}

async fn big_header(client: &Client, args: &[u8]) -> String {
    let bytes: usize = String::from_utf8_lossy(args).trim().parse().unwrap_or(0);
    let check = || HasPermissionRequest {
        permission: "file_read".into(),
        scope: String::new(),
    };
    let mut request = tonic::Request::new(check());
    if let Ok(pad) = "a".repeat(bytes).parse() {
        request.metadata_mut().insert("x-pad", pad);
    }
    let first = client.clone().has_permission(request).await;
    let next = client.clone().has_permission(check()).await;
    json!({ "first": outcome(&first), "next": outcome(&next) }).to_string()
}

async fn burst(client: &Client, args: &[u8]) -> String {
    let count: usize = String::from_utf8_lossy(args).trim().parse().unwrap_or(0);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let mut client = client.clone();
        tasks.spawn(async move {
            client
                .has_permission(HasPermissionRequest {
                    permission: "file_read".into(),
                    scope: String::new(),
                })
                .await
        });
    }
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    while let Some(joined) = tasks.join_next().await {
        let code = match joined {
            Ok(Ok(_)) => "Ok".to_string(),
            Ok(Err(s)) => format!("{:?}", s.code()),
            Err(_) => "Panicked".to_string(),
        };
        *counts.entry(code).or_default() += 1;
    }
    json!({ "counts": counts }).to_string()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut client = connect().await?;
    client
        .handshake(HandshakeRequest {
            protocol_versions: vec![1],
            plugin_name: std::env::var("PLEXICHAT_PLUGIN_NAME")?,
            plugin_version: std::env::var("PLEXICHAT_PLUGIN_VERSION").unwrap_or_default(),
            sdk_version: "raw".into(),
        })
        .await?;
    let mut session = client.session(SessionRequest {}).await?.into_inner();
    while let Some(message) = session.message().await? {
        match message.kind {
            Some(Kind::Ping(p)) => {
                client.pong(PongRequest { id: p.id }).await?;
            }
            Some(Kind::Invoke(call)) => {
                let (ok, output) = match call.command.as_str() {
                    "big-header" => (true, big_header(&client, &call.args).await),
                    "burst" => (true, burst(&client, &call.args).await),
                    other => (false, format!("unknown command {other}")),
                };
                let error = if ok { String::new() } else { output.clone() };
                client
                    .reply(CommandReply {
                        invocation_id: call.invocation_id,
                        ok,
                        output: output.into_bytes(),
                        error,
                    })
                    .await?;
            }
            Some(Kind::Shutdown(_)) => break,
            _ => {}
        }
    }
    Ok(())
}
