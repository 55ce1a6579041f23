//! The publisher-trust calls (`AddTrustedKey`, `ListTrustedKeys`, `RemoveTrustedKey`,
//! `RevokeTrustedKey`) and how a plugin's signer is shown with its key's state now.

use std::collections::HashMap;
use std::sync::Arc;

use broker_proto::admin::v1::{
    self as api, AddTrustedKeyRequest, ListTrustedKeysResponse, NotificationKind, TrustKeyChange,
    TrustedKey,
};
use tonic::{Request, Response, Status};

use super::service::{store_status, AdminService};
use super::Need;
use crate::store::{self, PluginRow, StoreError};
use crate::trust::{
    self, Added, Ending, KeyRequest, KeyRow, KeyState, NamePattern, PublisherKey, TrustError,
};

/// Each key's state by fingerprint, read once per request that shows signers.
#[derive(Debug, Default)]
pub struct KeyStates(HashMap<String, KeyState>);

impl KeyStates {
    pub fn read(store: &store::Store) -> Result<KeyStates, StoreError> {
        let keys = store.read(store::trusted_keys)?;
        Ok(KeyStates(
            keys.into_iter().map(|k| (k.fingerprint, k.state)).collect(),
        ))
    }

    /// The plugin's signer with its key's state now; `None` for an unsigned plugin.
    pub fn signer(&self, row: &PluginRow) -> Option<api::Signer> {
        row.signer.as_ref().map(|s| api::Signer {
            fingerprint: s.fingerprint.clone(),
            publisher: s.publisher.clone(),
            // A signer's key row is never deleted; a missing one reads as removed.
            key_state: state(
                self.0
                    .get(&s.fingerprint)
                    .copied()
                    .unwrap_or(KeyState::Removed),
            )
            .into(),
        })
    }
}

fn state(s: KeyState) -> api::TrustState {
    match s {
        KeyState::Proposed => api::TrustState::Proposed,
        KeyState::Trusted => api::TrustState::Trusted,
        KeyState::Removed => api::TrustState::Removed,
        KeyState::Revoked => api::TrustState::Revoked,
    }
}

pub(super) fn key_message(k: KeyRow, signed_plugins: Vec<String>) -> TrustedKey {
    TrustedKey {
        fingerprint: k.fingerprint,
        publisher: k.publisher,
        plugins: k.plugins.to_string(),
        state: state(k.state).into(),
        public_key: k.public_key,
        comment: k.comment,
        proposed_by: k.proposed_by,
        proposed_at_ms: k.proposed_at,
        approved_by: k.approved_by.unwrap_or_default(),
        approved_at_ms: k.approved_at.unwrap_or(0),
        ended_by: k.ended_by.unwrap_or_default(),
        ended_at_ms: k.ended_at.unwrap_or(0),
        end_comment: k.end_comment.unwrap_or_default(),
        signed_plugins,
    }
}

fn trust_status(e: TrustError) -> Status {
    match e {
        TrustError::Conflict(m) if m.contains("already trusted") => Status::already_exists(m),
        TrustError::Conflict(m) => Status::failed_precondition(m),
        TrustError::NotFound(_) => Status::not_found(e.to_string()),
        TrustError::Store(s) => store_status(s),
    }
}

fn joined(e: tokio::task::JoinError) -> Status {
    Status::internal(e.to_string())
}

impl AdminService {
    pub(super) async fn op_add_trusted_key(
        &self,
        request: Request<AddTrustedKeyRequest>,
    ) -> Result<Response<TrustedKey>, Status> {
        let actor = self.auth(&request, "trust add-key", Need::Change)?;
        let req = request.into_inner();
        if req.comment.trim().is_empty() {
            return Err(Status::invalid_argument(
                "adding a key needs a comment saying why the publisher is trusted",
            ));
        }
        let key = PublisherKey::parse(&req.public_key).map_err(Status::invalid_argument)?;
        trust::check_publisher(&req.publisher).map_err(Status::invalid_argument)?;
        let pattern = if req.plugins.is_empty() {
            "*"
        } else {
            req.plugins.as_str()
        };
        let plugins = NamePattern::parse(pattern).map_err(Status::invalid_argument)?;
        let shared = Arc::clone(&self.shared);
        let added = tokio::task::spawn_blocking(move || {
            let request = KeyRequest {
                key: &key,
                publisher: &req.publisher,
                plugins: &plugins,
                comment: &req.comment,
            };
            trust::add_key(&shared.store, &actor, &request)
        })
        .await
        .map_err(joined)?
        .map_err(trust_status)?;
        let row = match added {
            Added::Proposed(row) => {
                self.shared.hub.notify(
                    NotificationKind::ApprovalRequired,
                    "",
                    format!(
                        "publisher key {} ({}) proposed by {}: a second admin must add it",
                        row.fingerprint, row.publisher, row.proposed_by
                    ),
                );
                row
            }
            Added::Trusted(row) => row,
        };
        Ok(Response::new(key_message(row, Vec::new())))
    }

    pub(super) async fn op_list_trusted_keys(
        &self,
        request: Request<api::ListTrustedKeysRequest>,
    ) -> Result<Response<ListTrustedKeysResponse>, Status> {
        self.auth(&request, "trust list", Need::Read)?;
        let keys = self
            .shared
            .store
            .read(|c| {
                store::trusted_keys(c)?
                    .into_iter()
                    .map(|k| {
                        let signed = store::plugins_signed_by(c, &k.fingerprint)?;
                        Ok(key_message(k, signed))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
            })
            .map_err(store_status)?;
        Ok(Response::new(ListTrustedKeysResponse { keys }))
    }

    pub(super) async fn op_end_trusted_key(
        &self,
        request: Request<TrustKeyChange>,
        ending: Ending,
    ) -> Result<Response<TrustedKey>, Status> {
        let method = match ending {
            Ending::Remove => "trust remove",
            Ending::Revoke => "trust revoke",
        };
        let actor = self.auth(&request, method, Need::Change)?;
        let req = request.into_inner();
        if req.comment.trim().is_empty() {
            return Err(Status::invalid_argument(format!(
                "`{method}` needs a comment saying why"
            )));
        }
        let shared = Arc::clone(&self.shared);
        let (row, signed) = tokio::task::spawn_blocking(move || {
            trust::end_key(
                &shared.store,
                &actor,
                &req.fingerprint,
                ending,
                &req.comment,
            )
        })
        .await
        .map_err(joined)?
        .map_err(trust_status)?;
        if ending == Ending::Revoke {
            for plugin in &signed {
                self.shared.hub.notify(
                    NotificationKind::Alert,
                    plugin,
                    format!(
                        "{plugin} was signed by {}'s key {}, now revoked ({})",
                        row.publisher,
                        row.fingerprint,
                        row.end_comment.as_deref().unwrap_or("")
                    ),
                );
            }
        }
        Ok(Response::new(key_message(row, signed)))
    }
}
