//! The admin calls on a plugin's declared settings (get the schema with values, set,
//! unset) and the check that an invoked command is declared; secrets stay masked.

use broker_proto::admin::v1::{
    CommandArgument, DeclaredCommand, GetPluginSettingsRequest, PluginSetting, PluginSettings,
    SetPluginSettingRequest, SettingType as PbType, UnsetPluginSettingRequest,
};
use tonic::{Request, Response, Status};

use super::service::{store_status, AdminService};
use super::Need;
use crate::audit::{Actor, AuditEntry, Outcome};
use crate::manifest::{Command, CommandRefusal, Declared, Manifest, Setting, SettingType};
use crate::store::{self, SettingValue, StoreError};

/// What an audit record or `show` says instead of a secret's value.
const SECRET_SET: &str = "(secret: set)";
const SECRET_UNSET: &str = "(secret: unset)";

fn pb_type(t: SettingType) -> PbType {
    match t {
        SettingType::String => PbType::String,
        SettingType::Integer => PbType::Integer,
        SettingType::Number => PbType::Number,
        SettingType::Boolean => PbType::Boolean,
        SettingType::Enum => PbType::Enum,
    }
}

pub(super) fn setting(s: &Setting, stored: Option<&SettingValue>) -> PluginSetting {
    let value = stored
        .map(|v| v.value.clone())
        .or_else(|| s.default.clone());
    PluginSetting {
        key: s.key.clone(),
        r#type: pb_type(s.kind).into(),
        description: s.description.clone(),
        secret: s.secret,
        choices: s.choices.clone(),
        default_value: s.default.clone(),
        is_set: stored.is_some(),
        value: if s.secret { None } else { value },
        updated_at_ms: stored.map_or(0, |v| v.updated_at_ms),
        updated_by: stored.map(|v| v.updated_by.clone()).unwrap_or_default(),
    }
}

pub(super) fn command(c: &Command) -> DeclaredCommand {
    DeclaredCommand {
        name: c.name.clone(),
        description: c.description.clone(),
        arguments: c
            .arguments
            .iter()
            .map(|a| CommandArgument {
                name: a.name.clone(),
                description: a.description.clone(),
                required: a.required,
            })
            .collect(),
    }
}

/// The declared commands of `PluginDetail` (none when the manifest no longer parses).
pub(super) fn commands(declared: Option<&Declared>) -> Vec<DeclaredCommand> {
    declared.map_or_else(Vec::new, |d| d.commands.iter().map(command).collect())
}

/// The text an audit record keeps for a value: the value, or only whether a secret
/// has one.
fn audited(s: &Setting, value: Option<&str>) -> String {
    match (s.secret, value) {
        (true, Some(_)) => SECRET_SET.into(),
        (true, None) => SECRET_UNSET.into(),
        (false, Some(v)) => v.to_string(),
        (false, None) => String::new(),
    }
}

#[derive(Debug, thiserror::Error)]
enum SettingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored manifest of `{0}` no longer parses")]
    Manifest(String),
    #[error("plugin `{plugin}` declares no setting `{key}`; its settings: {declared}")]
    Undeclared {
        plugin: String,
        key: String,
        declared: String,
    },
    #[error("{0}; nothing was changed")]
    Invalid(String),
}

fn setting_status(e: SettingError) -> Status {
    match e {
        SettingError::Store(s) => store_status(s),
        SettingError::Manifest(_) => Status::failed_precondition(e.to_string()),
        SettingError::Undeclared { .. } => Status::not_found(e.to_string()),
        SettingError::Invalid(_) => Status::invalid_argument(e.to_string()),
    }
}

impl AdminService {
    /// The stored manifest's declarations of `name`, read on `c` (inside a write, so
    /// an update cannot change them between the check and the write).
    fn declared_on(&self, c: &rusqlite::Connection, name: &str) -> Result<Declared, SettingError> {
        let row = store::plugin_row(c, name)?
            .ok_or_else(|| StoreError::NoSuchPlugin(name.to_string()))?;
        Manifest::parse(&row.manifest, &self.shared.catalog)
            .map(|m| m.declared)
            .map_err(|_| SettingError::Manifest(name.to_string()))
    }

    fn find<'d>(
        declared: &'d Declared,
        name: &str,
        key: &str,
    ) -> Result<&'d Setting, SettingError> {
        declared.setting(key).ok_or_else(|| {
            let keys: Vec<&str> = declared.settings.iter().map(|s| s.key.as_str()).collect();
            SettingError::Undeclared {
                plugin: name.to_string(),
                key: crate::audit::short(key).into_owned(),
                declared: if keys.is_empty() {
                    "none".into()
                } else {
                    keys.join(", ")
                },
            }
        })
    }

    pub(super) async fn op_get_settings(
        &self,
        request: Request<GetPluginSettingsRequest>,
    ) -> Result<Response<PluginSettings>, Status> {
        self.auth(&request, "plugin config show", Need::Read)?;
        let name = request.into_inner().name;
        let (row, stored) = self
            .shared
            .store
            .read(|c| {
                Ok((
                    store::plugin_row(c, &name)?,
                    store::setting_values(c, &name)?,
                ))
            })
            .map_err(store_status)?;
        let row = row.ok_or_else(|| store_status(StoreError::NoSuchPlugin(name.clone())))?;
        let declared = Manifest::parse(&row.manifest, &self.shared.catalog)
            .map_err(|_| setting_status(SettingError::Manifest(name.clone())))?
            .declared;
        let settings = declared
            .settings
            .iter()
            .map(|s| setting(s, stored.get(&s.key)))
            .collect();
        Ok(Response::new(PluginSettings {
            plugin: name,
            settings,
        }))
    }

    pub(super) async fn op_set_setting(
        &self,
        request: Request<SetPluginSettingRequest>,
    ) -> Result<Response<PluginSetting>, Status> {
        let actor = self.auth(&request, "plugin config set", Need::Change)?;
        let req = request.into_inner();
        self.change_setting(&actor, &req.name, &req.key, Some(&req.value))
            .await
    }

    pub(super) async fn op_unset_setting(
        &self,
        request: Request<UnsetPluginSettingRequest>,
    ) -> Result<Response<PluginSetting>, Status> {
        let actor = self.auth(&request, "plugin config unset", Need::Change)?;
        let req = request.into_inner();
        self.change_setting(&actor, &req.name, &req.key, None).await
    }

    /// Sets (`Some`) or unsets (`None`) one value: checked, written and audited in
    /// one transaction, so a refusal changes nothing.
    async fn change_setting(
        &self,
        actor: &Actor,
        name: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<Response<PluginSetting>, Status> {
        let store = &self.shared.store;
        let result = store.write(|tx| {
            let declared = self.declared_on(&tx.sql, name)?;
            let s = Self::find(&declared, name, key)?;
            let before = store::setting_values(&tx.sql, name)?.remove(key);
            let action = match value {
                Some(v) => {
                    let canonical = s.check(v).map_err(SettingError::Invalid)?;
                    store::set_setting(&tx.sql, name, key, &canonical, &actor.approver())?;
                    "plugin.setting_set"
                }
                None => {
                    store::unset_setting(&tx.sql, name, key)?;
                    "plugin.setting_unset"
                }
            };
            let after = store::setting_values(&tx.sql, name)?.remove(key);
            tx.audit(
                AuditEntry::new(actor, action, Outcome::Ok)
                    .plugin(name)
                    .change(
                        audited(s, before.as_ref().map(|v| v.value.as_str())),
                        audited(s, after.as_ref().map(|v| v.value.as_str())),
                    )
                    .detail(serde_json::json!({
                        "key": key, "type": s.kind.as_str(), "secret": s.secret,
                    })),
            );
            Ok::<_, SettingError>(setting(s, after.as_ref()))
        });
        match result {
            Ok(shown) => {
                tracing::info!(plugin = name, key, "plugin setting changed");
                Ok(Response::new(shown))
            }
            Err(e) => {
                if matches!(
                    e,
                    SettingError::Invalid(_) | SettingError::Undeclared { .. }
                ) {
                    self.audit(
                        AuditEntry::new(actor, "plugin.setting_set", Outcome::Denied)
                            .plugin(name)
                            .detail(serde_json::json!({ "key": key, "error": e.to_string() })),
                    )
                    .await?;
                }
                Err(setting_status(e))
            }
        }
    }

    /// Refuses (audited) an invocation the running version does not declare.
    pub(super) async fn check_declared(
        &self,
        actor: &Actor,
        session: &crate::broker::Session,
        command: &str,
        args: &[u8],
    ) -> Result<(), Status> {
        let Err(refusal) = session
            .declared
            .check_invocation(session.name(), command, args)
        else {
            return Ok(());
        };
        self.audit(
            AuditEntry::new(actor, "command.invoke", Outcome::Denied)
                .plugin(session.name())
                .detail(serde_json::json!({
                    "command": crate::audit::short(command),
                    "error": refusal.to_string(),
                })),
        )
        .await?;
        Err(match refusal {
            CommandRefusal::Undeclared { .. }
            | CommandRefusal::NoneDeclared { .. }
            | CommandRefusal::MissingArguments { .. } => {
                Status::invalid_argument(refusal.to_string())
            }
        })
    }
}
