//! Where each setting comes from. Layers, lowest precedence first:
//!
//! 1. built-in defaults;
//! 2. the TOML file (`--config` or `MODELWATCH_CONFIG`);
//! 3. environment variables: `MODELWATCH_<KEY>` with the key's dots and underscores as
//!    `_`, upper case (`kernel.ring_buffer_bytes` is `MODELWATCH_KERNEL_RING_BUFFER_BYTES`),
//!    plus the aliases in [`ENV_ALIASES`];
//! 4. command-line flags: the dedicated ones (`--socket`...) and `--set KEY=VALUE` for
//!    any key.
//!
//! A later layer replaces a value (a list as a whole) and leaves the others alone. Every
//! setting is checked on its own as it arrives, so an unknown key or a bad value is an
//! error that names the key and the file, variable or flag it came from. Nothing here
//! knows the keys: they are whatever [`SensorConfig`] deserializes, so a section added
//! there is settable every way at once.

use std::{collections::BTreeMap, fmt, path::Path};

use toml::{Table, Value};

use super::{ConfigError, SensorConfig, one_line};

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    File(std::path::PathBuf),
    /// An environment variable, by name.
    Env(String),
    /// A command-line flag, as typed (`--socket`, `--set kernel.ports`).
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Env(name) => write!(f, "env {name}"),
            Self::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// Environment variables that name a key another way, applied before the
/// `MODELWATCH_<KEY>` ones (which win over them). `NODE_NAME` is what a Kubernetes
/// manifest sets from the downward API; `STATE_DIRECTORY` is systemd's
/// `StateDirectory=`; `MODELWATCH_BACKEND` predates this scheme.
pub const ENV_ALIASES: [(&str, &str); 3] = [
    ("NODE_NAME", "node"),
    ("STATE_DIRECTORY", "publish.state_dir"),
    ("MODELWATCH_BACKEND", "kernel.backend"),
];

/// `MODELWATCH_*` variables that are not settings: the log filter, the file's path, the
/// benchmark's switch to helper reads (`source::loader`), and anything a test harness
/// sets (`MODELWATCH_TEST_*`).
const NOT_SETTINGS: [&str; 3] = ["MODELWATCH_LOG", "MODELWATCH_CONFIG", "MODELWATCH_KERNEL_READS"];
const TEST_PREFIX: &str = "MODELWATCH_TEST_";
const ENV_PREFIX: &str = "MODELWATCH_";

/// Settings gathered so far, and where each came from.
#[derive(Debug, Default)]
pub struct Layers {
    table: Table,
    /// Dotted key -> the layer that set it last.
    sources: BTreeMap<String, Source>,
}

/// The configuration in effect and the source of each of its values.
#[derive(Debug)]
pub struct Effective {
    pub config: SensorConfig,
    sources: BTreeMap<String, Source>,
}

impl Layers {
    /// Reads a TOML file over what is there.
    ///
    /// # Errors
    /// The file cannot be read, is not TOML, or has an unknown key or a bad value (with
    /// its line).
    pub fn file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = super::read_text(path)?;
        let invalid = |message| ConfigError::Invalid { path: path.into(), message };
        // Deserializing the file alone names a bad key with its line.
        toml::from_str::<SensorConfig>(&text).map_err(|e| invalid(one_line(&text, &e)))?;
        let table: Table = toml::from_str(&text).map_err(|e| invalid(one_line(&text, &e)))?;
        let source = Source::File(path.to_path_buf());
        for key in leaf_keys(&table, "") {
            self.sources.insert(key, source.clone());
        }
        merge(&mut self.table, table);
        Ok(())
    }

    /// Applies the environment: aliases first, then `MODELWATCH_<KEY>` variables.
    ///
    /// # Errors
    /// A `MODELWATCH_*` variable that names no key (or two), or a bad value.
    pub fn env(&mut self, vars: impl IntoIterator<Item = (String, String)>) -> Result<(), ConfigError> {
        let vars: BTreeMap<String, String> = vars.into_iter().collect();
        for (name, key) in ENV_ALIASES {
            if let Some(value) = vars.get(name).filter(|v| !v.is_empty()) {
                self.set(key, value, Source::Env(name.to_owned()))?;
            }
        }
        let settings = vars.iter().filter(|(name, _)| {
            name.starts_with(ENV_PREFIX)
                && !name.starts_with(TEST_PREFIX)
                && !NOT_SETTINGS.contains(&name.as_str())
                && !ENV_ALIASES.iter().any(|(alias, _)| alias == name)
        });
        for (name, value) in settings {
            let key = key_of_variable(name, value)?;
            self.set(&key, value, Source::Env(name.clone()))?;
        }
        Ok(())
    }

    /// Sets one dotted key. The value is read as a TOML value (`8080`, `true`,
    /// `[1, 2]`, `"text"`), else as a bare string, else as a comma-separated list.
    ///
    /// # Errors
    /// The key is unknown or the value does not fit it.
    pub fn set(&mut self, key: &str, value: &str, source: Source) -> Result<(), ConfigError> {
        let setting = checked_setting(key, value)
            .map_err(|message| ConfigError::Setting { origin: source.to_string(), message })?;
        self.sources.retain(|known, _| !is_within(known, key));
        self.sources.insert(key.to_owned(), source);
        merge(&mut self.table, setting);
        Ok(())
    }

    /// The configuration these layers make, checked as a whole.
    ///
    /// # Errors
    /// A value that is fine alone but not in this combination.
    pub fn resolve(self) -> Result<Effective, ConfigError> {
        let config: SensorConfig = Value::Table(self.table).try_into().map_err(|e: toml::de::Error| {
            ConfigError::Setting { origin: "configuration".into(), message: e.message().trim().to_owned() }
        })?;
        config
            .validate()
            .map_err(|message| ConfigError::Setting { origin: "configuration".into(), message })?;
        Ok(Effective { config, sources: self.sources })
    }
}

impl Effective {
    /// Where the value of a dotted key came from.
    #[must_use]
    pub fn source_of(&self, key: &str) -> &Source {
        self.sources
            .iter()
            .filter(|(known, _)| is_within(key, known))
            .max_by_key(|(known, _)| known.len())
            .map_or(&Source::Default, |(_, source)| source)
    }

    /// Every value in effect, by dotted key, with its source.
    #[must_use]
    pub fn values(&self) -> Vec<(String, Value, &Source)> {
        let Ok(table) = Table::try_from(&self.config) else { return Vec::new() };
        let mut out = Vec::new();
        collect_leaves(&table, "", &mut out);
        out.into_iter()
            .map(|(key, value)| {
                let source = self.source_of(&key);
                (key, value, source)
            })
            .collect()
    }

    /// The configuration as a TOML file, each value followed by its source.
    #[must_use]
    pub fn to_annotated_toml(&self) -> String {
        let mut sections: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (key, value, source) in self.values() {
            let (section, name) = key.rsplit_once('.').unwrap_or(("", &key));
            let line = format!("{} = {value}", toml_key(name));
            sections.entry(section.to_owned()).or_default().push((line, source.to_string()));
        }
        let mut out =
            String::from("# The configuration in effect. Precedence: default < file < env < flag.\n");
        for (section, lines) in sections {
            if !section.is_empty() {
                out.push_str(&format!("\n[{section}]\n"));
            }
            let width = lines.iter().map(|(line, _)| line.len()).max().unwrap_or(0).min(56);
            for (line, source) in lines {
                out.push_str(&format!("{line:width$}  # {source}\n"));
            }
        }
        out
    }
}

/// `{a: {b: value}}` for key `a.b`, checked by deserializing it alone.
fn checked_setting(key: &str, value: &str) -> Result<Table, String> {
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(format!("`{key}` is not a key (expected e.g. kernel.ports)"));
    }
    let mut first_error = None;
    for candidate in value_candidates(value) {
        let table = nest(key, candidate.clone());
        match Value::Table(table.clone()).try_into::<SensorConfig>() {
            Ok(_) => return Ok(table),
            Err(error) if is_unknown_field(&error) => return Err(format!("unknown key `{key}`")),
            Err(error) => {
                first_error.get_or_insert_with(|| format!("{key} = {candidate}: {}", error.message().trim()));
            }
        }
    }
    Err(first_error.unwrap_or_else(|| format!("{key}: no value")))
}

/// How a textual value may be meant, most literal first.
fn value_candidates(value: &str) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(literal) = literal(value) {
        out.push(literal);
    }
    out.push(Value::String(value.to_owned()));
    if value.contains(',') && !value.trim_start().starts_with('[') {
        let items = value
            .split(',')
            .map(|item| literal(item.trim()).unwrap_or_else(|| Value::String(item.trim().to_owned())))
            .collect();
        out.push(Value::Array(items));
    }
    out
}

fn literal(value: &str) -> Option<Value> {
    toml::from_str::<Table>(&format!("v = {value}")).ok().and_then(|mut table| table.remove("v"))
}

fn nest(key: &str, value: Value) -> Table {
    let mut parts = key.rsplit('.');
    let mut inner = Table::new();
    inner.insert(parts.next().unwrap_or(key).to_owned(), value);
    for part in parts {
        let mut outer = Table::new();
        outer.insert(part.to_owned(), Value::Table(inner));
        inner = outer;
    }
    inner
}

fn is_unknown_field(error: &toml::de::Error) -> bool {
    error.message().contains("unknown field")
}

/// The key a `MODELWATCH_<KEY>` variable names: the one way to put dots between its
/// words that makes a known key.
fn key_of_variable(name: &str, value: &str) -> Result<String, ConfigError> {
    let rest = name.trim_start_matches(ENV_PREFIX).to_ascii_lowercase();
    let words: Vec<&str> = rest.split('_').collect();
    let known: Vec<String> = dotted_candidates(&words)
        .into_iter()
        .filter(|key| names_a_key(&checked_setting(key, value)))
        .collect();
    match known.as_slice() {
        [key] => Ok(key.clone()),
        [] => Err(ConfigError::Setting {
            origin: format!("env {name}"),
            message: "names no configuration key (see `modelwatch config show` for every key)".into(),
        }),
        several => Err(ConfigError::Setting {
            origin: format!("env {name}"),
            message: format!("is ambiguous: it could be {}", several.join(" or ")),
        }),
    }
}

/// Every way to join `words` with `_` inside a key and `.` between at most three
/// levels.
fn dotted_candidates(words: &[&str]) -> Vec<String> {
    let n = words.len();
    let join = |range: std::ops::Range<usize>| words[range].join("_");
    let mut out = vec![join(0..n)];
    for first in 1..n {
        out.push(format!("{}.{}", join(0..first), join(first..n)));
        for second in first + 1..n {
            out.push(format!("{}.{}.{}", join(0..first), join(first..second), join(second..n)));
        }
    }
    out
}

/// The key exists (its value may still be bad: that error is reported when it is set).
fn names_a_key(checked: &Result<Table, String>) -> bool {
    match checked {
        Ok(_) => true,
        Err(message) => !message.starts_with("unknown key") && !message.contains("is not a key"),
    }
}

/// Deep merge: tables merge key by key, anything else is replaced.
fn merge(into: &mut Table, from: Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Table(existing)), Value::Table(incoming)) => merge(existing, incoming),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// Dotted keys of every non-table value.
fn leaf_keys(table: &Table, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    collect_leaves(table, prefix, &mut out);
    out.into_iter().map(|(key, _)| key).collect()
}

fn collect_leaves(table: &Table, prefix: &str, out: &mut Vec<(String, Value)>) {
    for (key, value) in table {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            Value::Table(inner) => collect_leaves(inner, &path, out),
            other => out.push((path, other.clone())),
        }
    }
}

/// `key` is `scope` or lies inside it.
fn is_within(key: &str, scope: &str) -> bool {
    key == scope || key.strip_prefix(scope).is_some_and(|rest| rest.starts_with('.'))
}

/// A bare key when TOML allows one, else quoted.
fn toml_key(name: &str) -> String {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        name.to_owned()
    } else {
        Value::String(name.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("modelwatch.toml");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    #[test]
    fn file_then_environment_then_flags() {
        let (_dir, path) = file("node = \"from-file\"\n[kernel]\nports = [1]\nsize_threshold_bytes = 5\n");
        let mut layers = Layers::default();
        layers.file(&path).expect("file");
        layers
            .env(env(&[
                ("MODELWATCH_KERNEL_PORTS", "2,3"),
                ("MODELWATCH_NODE", "from-env"),
                ("NODE_NAME", "from-downward-api"),
                ("MODELWATCH_LOG", "debug"),
                ("MODELWATCH_KERNEL_READS", "helper"),
                ("MODELWATCH_TEST_PYTHON", "/x"),
                ("PATH", "/bin"),
            ]))
            .expect("env");
        layers.set("kernel.ports", "[4]", Source::Flag("--set kernel.ports".into())).expect("flag");
        let effective = layers.resolve().expect("valid");
        assert_eq!(effective.config.kernel.ports, vec![4]);
        assert_eq!(effective.config.kernel.size_threshold_bytes, 5);
        assert_eq!(effective.config.node, "from-env", "MODELWATCH_NODE wins over its alias");
        assert_eq!(effective.source_of("kernel.ports"), &Source::Flag("--set kernel.ports".into()));
        assert_eq!(effective.source_of("kernel.size_threshold_bytes"), &Source::File(path.clone()));
        assert_eq!(effective.source_of("node"), &Source::Env("MODELWATCH_NODE".into()));
        assert_eq!(effective.source_of("hash.queue"), &Source::Default);
    }

    #[test]
    fn values_are_read_as_the_key_needs() {
        let mut layers = Layers::default();
        let flag = || Source::Flag("test".into());
        layers.set("node", "1234", flag()).expect("a number-like string is a string");
        layers.set("kernel.extensions", "gguf, bin", flag()).expect("a comma list");
        layers.set("kernel.backend", "tracepoint", flag()).expect("a bare enum name");
        layers.set("events.all_processes", "true", flag()).expect("a bool");
        let config = layers.resolve().expect("valid").config;
        assert_eq!(config.node, "1234");
        assert_eq!(config.kernel.extensions, vec!["gguf", "bin"]);
        assert_eq!(config.kernel.backend, crate::source::hooks::BackendChoice::Tracepoint);
        assert!(config.events.all_processes);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let mut layers = Layers::default();
        let typo = layers.env(env(&[("MODELWATCH_KERNEL_PORT", "1")])).expect_err("unknown variable");
        assert!(typo.to_string().contains("MODELWATCH_KERNEL_PORT"), "{typo}");
        let typo = layers.set("kernel.port", "1", Source::Flag("--set kernel.port".into())).expect_err("key");
        assert_eq!(typo.to_string(), "flag --set kernel.port: unknown key `kernel.port`");
        let bad =
            layers.env(env(&[("MODELWATCH_KERNEL_RING_BUFFER_BYTES", "lots")])).expect_err("not a number");
        assert!(
            bad.to_string().starts_with("env MODELWATCH_KERNEL_RING_BUFFER_BYTES: kernel.ring_buffer_bytes"),
            "{bad}"
        );
        let mut layers = Layers::default();
        layers
            .set("kernel.ring_buffer_bytes", "5000", Source::Flag("--ring-buffer-bytes".into()))
            .expect("a u32");
        let whole = layers.resolve().expect_err("not a power of two");
        assert!(whole.to_string().contains("power of two"), "{whole}");
    }

    #[test]
    fn the_annotated_output_is_a_configuration_file_that_gives_the_same_result() {
        let mut layers = Layers::default();
        layers.env(env(&[("MODELWATCH_HASH_QUEUE", "7")])).expect("env");
        let effective = layers.resolve().expect("valid");
        let text = effective.to_annotated_toml();
        assert!(text.contains("queue = 7"), "{text}");
        assert!(
            text.lines().any(|l| l.starts_with("queue = 7") && l.ends_with("# env MODELWATCH_HASH_QUEUE")),
            "{text}"
        );
        assert!(text.lines().any(|l| l.starts_with("ports = [") && l.ends_with("# default")), "{text}");
        let again: SensorConfig = toml::from_str(&text).expect("valid TOML for the same keys");
        assert_eq!(again, effective.config);
    }

    #[test]
    fn every_key_of_the_defaults_can_be_set_from_the_environment() {
        let defaults = Effective { config: SensorConfig::default(), sources: BTreeMap::new() };
        for (key, value, _) in defaults.values() {
            let variable = format!("MODELWATCH_{}", key.replace('.', "_").to_ascii_uppercase());
            let text = match &value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let mut layers = Layers::default();
            layers.env(env(&[(&variable, &text)])).unwrap_or_else(|e| panic!("{variable}: {e}"));
            let effective = layers.resolve().unwrap_or_else(|e| panic!("{variable}: {e}"));
            assert_eq!(effective.source_of(&key), &Source::Env(variable.clone()));
        }
    }
}
