//! Layered configuration: built-in defaults, then `shelfwatch.toml`, then
//! `SHELFWATCH_*` environment variables (`__` separates sections, so
//! `SHELFWATCH_DATABASE__MAX_CONNECTIONS=4` sets `database.max_connections`),
//! then `DATABASE_URL`. Unknown keys are rejected with the key named.

use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;
pub use shelfwatch_runtime::Secret;
pub use shelfwatch_runtime::telemetry::{LogFormat, LogSettings};
pub use shelfwatch_store::db::DatabaseSettings;
pub use shelfwatch_store::ingest::IngestSettings;

/// The file read when `--config` is not given (it may be absent).
pub const DEFAULT_CONFIG_FILE: &str = "shelfwatch.toml";
const ENV_PREFIX: &str = "SHELFWATCH_";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub log: LogSettings,
    pub ingest: IngestSettings,
    pub scrape: shelfwatch_scrape::ScrapeSettings,
    pub api: shelfwatch_api::ApiSettings,
    pub forecast: ForecastSettings,
}

/// `[forecast]` settings of the `forecast` role.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastSettings {
    /// `/metrics` listener for `forecast --every` (e.g. 127.0.0.1:9467);
    /// unset: none. One-shot runs are reported by the API's listener from
    /// the database instead.
    pub metrics_bind: Option<String>,
}

impl Settings {
    /// Loads settings from the process environment and `file` (or
    /// `shelfwatch.toml` in the working directory when it exists).
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env)
    }

    /// Loads settings with an explicit environment (for tests).
    pub fn load_from(file: Option<&Path>, env: &[(String, String)]) -> anyhow::Result<Self> {
        let mut table = match file {
            Some(path) => read_table(path)?,
            None => {
                let default = Path::new(DEFAULT_CONFIG_FILE);
                if default.exists() {
                    read_table(default)?
                } else {
                    toml::Table::new()
                }
            }
        };
        let mut from_env = Vec::new();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            if path.iter().any(String::is_empty) {
                bail!("environment variable {name}: empty key segment");
            }
            set_path(&mut table, &path, env_value(value))
                .with_context(|| format!("environment variable {name}"))?;
            from_env.push(name.clone());
        }
        if let Some((_, url)) = env.iter().find(|(k, _)| k == "DATABASE_URL") {
            set_path(
                &mut table,
                &["database".to_owned(), "url".to_owned()],
                toml::Value::String(url.clone()),
            )?;
        }
        let settings: Settings = toml::Value::Table(table).try_into().map_err(|e| {
            let source = if from_env.is_empty() {
                "configuration".to_owned()
            } else {
                format!("configuration (including {})", from_env.join(", "))
            };
            anyhow::anyhow!("invalid {source}: {e}")
        })?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.database.max_connections == 0 {
            bail!("database.max_connections must be at least 1");
        }
        if self.ingest.batch_size == 0 {
            bail!("ingest.batch_size must be at least 1");
        }
        for (key, bind) in [
            ("scrape.metrics_bind", &self.scrape.metrics_bind),
            ("forecast.metrics_bind", &self.forecast.metrics_bind),
        ] {
            if let Some(bind) = bind
                && !is_listen_address(bind)
            {
                bail!("{key}: {bind:?} is not an address such as 127.0.0.1:9466");
            }
        }
        if let Some(url) = &self.scrape.browser.webdriver_url {
            shelfwatch_scrape::browser::check_webdriver_url(url)
                .context("scrape.browser.webdriver_url")?;
        }
        Ok(())
    }
}

#[cfg(feature = "demo")]
impl Settings {
    /// The parts of these settings the developer tools use.
    pub fn dev_tools(&self) -> shelfwatch_devtools::Settings {
        shelfwatch_devtools::Settings {
            database: self.database.clone(),
            ingest: self.ingest.clone(),
            scrape: self.scrape.clone(),
            api: self.api.clone(),
        }
    }
}

/// `host:port` (a name or an address; IPv6 in brackets) with a numeric port.
fn is_listen_address(bind: &str) -> bool {
    bind.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

fn read_table(path: &Path) -> anyhow::Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))?;
    // Deserialize the file alone first so an unknown key is reported against
    // the file that holds it.
    toml::Value::Table(table.clone())
        .try_into::<Settings>()
        .with_context(|| format!("config file {}", path.display()))?;
    Ok(table)
}

/// Environment values are typed the way TOML would read them, so numbers
/// and booleans work; anything else is a string.
fn env_value(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_owned()),
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> anyhow::Result<()> {
    let Some((last, parents)) = path.split_last() else {
        bail!("empty key");
    };
    let mut current = table;
    for key in parents {
        let entry = current
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            _ => bail!("`{key}` is a value, not a section"),
        };
    }
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_example_file_loads_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("shelfwatch.example.toml");
        let s = Settings::load_from(Some(&path), &[]).unwrap();
        let d = Settings::default();
        assert_eq!(s.database.max_connections, d.database.max_connections);
        assert_eq!(s.ingest.batch_size, d.ingest.batch_size);
        assert_eq!(s.scrape.spool_dir, d.scrape.spool_dir);
        assert_eq!(s.scrape.browser.chromium, d.scrape.browser.chromium);
        assert_eq!(s.scrape.suspect_drop_share, d.scrape.suspect_drop_share);
        assert_eq!(s.forecast.metrics_bind, d.forecast.metrics_bind);
        assert_eq!(s.api.read_cache_ms, d.api.read_cache_ms);
        assert_eq!(
            s.scrape.browser.webdriver_url,
            d.scrape.browser.webdriver_url
        );
    }

    /// Every key path a `Deserialize` type reads, found by deserializing it
    /// from a deserializer that answers a struct with its own field names
    /// and any other value with a harmless one.
    mod keys {
        use serde::de::value::{Error, MapDeserializer, SeqDeserializer, StrDeserializer};
        use serde::de::{self, IntoDeserializer, Visitor};
        use std::cell::RefCell;
        use std::collections::BTreeSet;

        pub struct Keys<'a> {
            pub prefix: String,
            pub out: &'a RefCell<BTreeSet<String>>,
        }

        struct Fields<'a> {
            keys: &'a Keys<'a>,
            fields: std::slice::Iter<'static, &'static str>,
            current: &'static str,
        }

        impl<'de> de::MapAccess<'de> for Fields<'_> {
            type Error = Error;
            fn next_key_seed<K: de::DeserializeSeed<'de>>(
                &mut self,
                seed: K,
            ) -> Result<Option<K::Value>, Error> {
                let Some(field) = self.fields.next() else {
                    return Ok(None);
                };
                self.current = field;
                let name: StrDeserializer<'_, Error> = field.into_deserializer();
                seed.deserialize(name).map(Some)
            }
            fn next_value_seed<V: de::DeserializeSeed<'de>>(
                &mut self,
                seed: V,
            ) -> Result<V::Value, Error> {
                seed.deserialize(Keys {
                    prefix: format!("{}{}.", self.keys.prefix, self.current),
                    out: self.keys.out,
                })
            }
        }

        impl<'de> de::Deserializer<'de> for Keys<'_> {
            type Error = Error;
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _name: &'static str,
                fields: &'static [&'static str],
                visitor: V,
            ) -> Result<V::Value, Error> {
                for f in fields {
                    self.out.borrow_mut().insert(format!("{}{f}", self.prefix));
                }
                visitor.visit_map(Fields {
                    keys: &self,
                    fields: fields.iter(),
                    current: "",
                })
            }
            fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                visitor.visit_some(self)
            }
            fn deserialize_enum<V: Visitor<'de>>(
                self,
                _name: &'static str,
                variants: &'static [&'static str],
                visitor: V,
            ) -> Result<V::Value, Error> {
                let first: StrDeserializer<'_, Error> = variants[0].into_deserializer();
                visitor.visit_enum(first)
            }
            fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                visitor.visit_bool(false)
            }
            fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                visitor.visit_f64(1.0)
            }
            fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                visitor.visit_f32(1.0)
            }
            fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                visitor.visit_seq(SeqDeserializer::new(std::iter::empty::<String>()))
            }
            fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                visitor.visit_map(MapDeserializer::new(std::iter::empty::<(String, String)>()))
            }
            fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                visitor.visit_str("x")
            }
            fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                visitor.visit_str("x")
            }
            fn deserialize_newtype_struct<V: Visitor<'de>>(
                self,
                _name: &'static str,
                visitor: V,
            ) -> Result<V::Value, Error> {
                visitor.visit_newtype_struct(self)
            }
            /// Numbers of every width: 1 fits them all.
            fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                visitor.visit_u8(1)
            }
            serde::forward_to_deserialize_any! {
                i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 char bytes byte_buf unit
                unit_struct tuple tuple_struct identifier ignored_any
            }
        }
    }

    /// The key paths (`api.rate_limit.per_ip_burst`) the example file sets
    /// or shows commented out.
    fn example_keys(text: &str) -> std::collections::BTreeSet<String> {
        let mut section = String::new();
        let mut keys = std::collections::BTreeSet::new();
        for line in text.lines() {
            let line = line.trim_start_matches(|c: char| c == '#' || c.is_whitespace());
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.split_once(']')) {
                section = format!("{}.", name.0);
            } else if let Some((key, _)) = line.split_once(" =")
                && !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                keys.insert(format!("{section}{key}"));
            }
        }
        keys
    }

    #[test]
    fn the_example_file_names_every_key() {
        use serde::Deserialize;
        let out = std::cell::RefCell::new(std::collections::BTreeSet::new());
        Settings::deserialize(keys::Keys {
            prefix: String::new(),
            out: &out,
        })
        .unwrap();
        let all = out.into_inner();
        // A leaf is a key with no keys under it.
        let leaves: std::collections::BTreeSet<String> = all
            .iter()
            .filter(|k| !all.iter().any(|o| o.starts_with(&format!("{k}."))))
            .cloned()
            .collect();
        assert!(leaves.contains("api.read_cache_ms"), "{leaves:?}");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("shelfwatch.example.toml");
        let example = example_keys(&std::fs::read_to_string(path).unwrap());
        let missing: Vec<_> = leaves.difference(&example).collect();
        let unknown: Vec<_> = example.difference(&leaves).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "shelfwatch.example.toml lacks {missing:?} and has keys the settings do not: {unknown:?}"
        );
    }

    #[test]
    fn observability_keys_load_from_env_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(&file, "").unwrap();
        let s = Settings::load_from(
            Some(&file),
            &env(&[
                ("SHELFWATCH_FORECAST__METRICS_BIND", "0.0.0.0:9467"),
                ("SHELFWATCH_SCRAPE__METRICS_BIND", "scraper:9466"),
                (
                    "SHELFWATCH_SCRAPE__BROWSER__WEBDRIVER_URL",
                    "http://chromium:4444",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(s.forecast.metrics_bind.as_deref(), Some("0.0.0.0:9467"));
        assert_eq!(
            s.scrape.browser.webdriver_url.as_deref(),
            Some("http://chromium:4444")
        );
        for (key, value, named) in [
            (
                "SHELFWATCH_FORECAST__METRICS_BIND",
                "9467",
                "forecast.metrics_bind",
            ),
            (
                "SHELFWATCH_SCRAPE__METRICS_BIND",
                "host:port",
                "scrape.metrics_bind",
            ),
            (
                "SHELFWATCH_SCRAPE__BROWSER__WEBDRIVER_URL",
                "chromium:4444",
                "webdriver_url",
            ),
            (
                "SHELFWATCH_SCRAPE__BROWSER__WEBDRIVER_URL",
                "ftp://chromium:4444",
                "webdriver_url",
            ),
        ] {
            let err = format!(
                "{:#}",
                Settings::load_from(Some(&file), &env(&[(key, value)])).unwrap_err()
            );
            assert!(err.contains(named), "{key}={value}: {err}");
        }
    }

    #[test]
    fn defaults_apply_without_file_or_env() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.toml");
        std::fs::write(&missing, "").unwrap();
        let s = Settings::load_from(Some(&missing), &[]).unwrap();
        assert_eq!(s.database.max_connections, 8);
        assert!(s.database.url.is_none());
        assert_eq!(s.log.format, LogFormat::Pretty);
    }

    #[test]
    fn env_overrides_file_and_database_url_wins() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(
            &file,
            "[database]\nmax_connections = 3\nurl = \"postgres://file\"\n[log]\nformat = \"json\"\n",
        )
        .unwrap();
        let s = Settings::load_from(
            Some(&file),
            &env(&[
                ("SHELFWATCH_DATABASE__MAX_CONNECTIONS", "5"),
                ("DATABASE_URL", "postgres://env"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(s.database.max_connections, 5);
        assert_eq!(s.database.url.unwrap().expose(), "postgres://env");
        assert_eq!(s.log.format, LogFormat::Json);
    }

    #[test]
    fn unknown_key_in_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(&file, "[database]\nmax_conections = 3\n").unwrap();
        let err = format!("{:#}", Settings::load_from(Some(&file), &[]).unwrap_err());
        assert!(err.contains("max_conections"), "{err}");
        assert!(err.contains("s.toml"), "{err}");
    }

    #[test]
    fn unknown_env_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(&file, "").unwrap();
        let err = format!(
            "{:#}",
            Settings::load_from(Some(&file), &env(&[("SHELFWATCH_DATABSE__URL", "x")]))
                .unwrap_err()
        );
        assert!(err.contains("databse"), "{err}");
        assert!(err.contains("SHELFWATCH_DATABSE__URL"), "{err}");
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("postgres://u:hunter2@h/db");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
