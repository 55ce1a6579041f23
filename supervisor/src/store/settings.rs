//! The values an operator set for a plugin's declared settings (`plugin_settings`):
//! read by the broker's GetConfig and the admin API, kept in step with manifest updates.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::{collect, Store, StoreError};
use crate::clock::now_ms;
use crate::manifest::Setting;

/// One stored value and who set it when.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingValue {
    pub value: String,
    pub updated_at_ms: i64,
    pub updated_by: String,
}

impl Store {
    pub fn setting_value(&self, plugin: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT value FROM plugin_settings WHERE plugin = ?1 AND key = ?2",
                params![plugin, key],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    pub fn setting_values(
        &self,
        plugin: &str,
    ) -> Result<BTreeMap<String, SettingValue>, StoreError> {
        self.read(|c| setting_values(c, plugin))
    }
}

pub fn setting_values(
    c: &Connection,
    plugin: &str,
) -> Result<BTreeMap<String, SettingValue>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT key, value, updated_at, updated_by FROM plugin_settings WHERE plugin = ?1",
    )?;
    let rows = stmt.query_map(params![plugin], |r| {
        Ok((
            r.get::<_, String>(0)?,
            SettingValue {
                value: r.get(1)?,
                updated_at_ms: r.get(2)?,
                updated_by: r.get(3)?,
            },
        ))
    })?;
    Ok(collect(rows)?.into_iter().collect())
}

pub fn set_setting(
    c: &Connection,
    plugin: &str,
    key: &str,
    value: &str,
    by: &str,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO plugin_settings (plugin, key, value, updated_at, updated_by)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value,
             updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        params![plugin, key, value, now_ms(), by],
    )?;
    Ok(())
}

/// Deletes the stored value of `key`; whether there was one.
pub fn unset_setting(c: &Connection, plugin: &str, key: &str) -> Result<bool, StoreError> {
    let n = c.execute(
        "DELETE FROM plugin_settings WHERE plugin = ?1 AND key = ?2",
        params![plugin, key],
    )?;
    Ok(n > 0)
}

/// On an update: drops the values whose key the new manifest no longer declares or
/// that no longer fit the new declaration (the plugin sees the new default); the
/// dropped keys, sorted.
pub fn retain_settings(
    c: &Connection,
    plugin: &str,
    declared: &[Setting],
) -> Result<Vec<String>, StoreError> {
    let mut dropped = Vec::new();
    for (key, stored) in setting_values(c, plugin)? {
        let fits = declared
            .iter()
            .find(|s| s.key == key)
            .is_some_and(|s| s.check(&stored.value).is_ok_and(|v| v == stored.value));
        if !fits {
            unset_setting(c, plugin, &key)?;
            dropped.push(key);
        }
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::SettingType;
    use crate::store::tests::{row, store};
    use crate::store::{delete_plugin, insert_plugin};

    fn setting(key: &str, kind: SettingType) -> Setting {
        Setting {
            key: key.into(),
            kind,
            default: None,
            description: String::new(),
            secret: false,
            choices: Vec::new(),
        }
    }

    #[test]
    fn values_that_no_longer_fit_are_dropped_and_removal_cascades() {
        let (_dir, s) = store();
        let row = row("p");
        s.write(|tx| {
            insert_plugin(&tx.sql, &row)?;
            set_setting(&tx.sql, "p", "n", "42", "root")?;
            set_setting(&tx.sql, "p", "gone", "x", "root")?;
            set_setting(&tx.sql, "p", "flag", "true", "root")
        })
        .unwrap();
        let declared = [
            setting("n", SettingType::Boolean),
            setting("flag", SettingType::Boolean),
        ];
        let dropped = s
            .write(|tx| retain_settings(&tx.sql, "p", &declared))
            .unwrap();
        assert_eq!(dropped, ["gone", "n"]);
        assert_eq!(
            s.setting_value("p", "flag").unwrap().as_deref(),
            Some("true")
        );
        assert_eq!(s.setting_value("p", "n").unwrap(), None);
        s.write(|tx| delete_plugin(&tx.sql, "p")).unwrap();
        assert!(s.setting_values("p").unwrap().is_empty());
    }
}
