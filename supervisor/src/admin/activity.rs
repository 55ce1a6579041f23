//! The tower layer between tonic and the admin service: marks each call in flight on
//! its connection until its response body ends, and hands `authorize` tonic's
//! `UdsConnectInfo` as before.

use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::{http, BoxFuture, Bytes, Service};
use tonic::Status;

use super::conn::{AdminPeer, InFlight};

#[derive(Clone, Copy, Debug, Default)]
pub struct TrackCalls;

impl<S> tower::Layer<S> for TrackCalls {
    type Service = Tracked<S>;

    fn layer(&self, inner: S) -> Tracked<S> {
        Tracked { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Tracked<S> {
    inner: S,
}

impl<S> Service<http::Request<Body>> for Tracked<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        let call = req.extensions().get::<AdminPeer>().cloned().map(|peer| {
            req.extensions_mut().insert(peer.uds.clone());
            peer.activity.begin()
        });
        // The clone that was made ready is the one called (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = inner.call(req).await?;
            Ok(match call {
                Some(call) => response.map(|body| Body::new(Guarded { body, _call: call })),
                None => response,
            })
        })
    }
}

/// A response body that keeps its call in flight until it ends or is dropped.
struct Guarded {
    body: Body,
    _call: InFlight,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
