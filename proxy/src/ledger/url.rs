//! `database.url`: which database the ledger lives in, resolved the way the config file means it.

use super::LedgerError;
use bitrouter_config::{Config, ConfigSource, EnvSource};
use std::fmt;
use std::path::{Path, PathBuf};

/// The default `database.url`: a SQLite file beside the config file.
pub const DEFAULT_URL: &str = "sqlite://./bitrouter.db";

/// A parsed `database.url`. `Display` never shows a password.
#[derive(Clone, PartialEq, Eq)]
pub enum LedgerUrl {
    /// A SQLite file (absolute once resolved).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL, as written (it may hold a password: never print it).
    Postgres(String),
}

impl LedgerUrl {
    /// Parses `url`; a relative SQLite path is taken relative to `base_dir`.
    ///
    /// Forms: `sqlite://./bitrouter.db`, `sqlite://bitrouter.db` and `sqlite:bitrouter.db`
    /// (relative), `sqlite:///var/lib/bitrouter.db` (absolute); a `?query` is ignored.
    /// `postgres://…` and `postgresql://…` name PostgreSQL.
    pub fn parse(url: &str, base_dir: &Path) -> Result<LedgerUrl, LedgerError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // Checked now, so a typo is a configuration error rather than an endless reconnect.
            url.parse::<postgres::Config>()
                .map_err(|e| LedgerError::Url(format!("{}: {e}", redact(url))))?;
            return Ok(LedgerUrl::Postgres(url.to_string()));
        }
        let Some(rest) = url.strip_prefix("sqlite:") else {
            return Err(LedgerError::Url(format!(
                "`{}` is not a database URL: use sqlite://PATH, postgres://… or postgresql://…",
                redact(url)
            )));
        };
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" || path.starts_with(":memory:") {
            return Err(LedgerError::Url(format!(
                "`{url}` names no file: the ledger needs a SQLite file path (sqlite://./bitrouter.db)"
            )));
        }
        let path = Path::new(path);
        // `./bitrouter.db` means `bitrouter.db` in the base folder; keep the path tidy.
        let path = path.strip_prefix(".").unwrap_or(path);
        Ok(LedgerUrl::Sqlite(if path.is_absolute() {
            path.to_path_buf()
        } else {
            base_dir.join(path)
        }))
    }

    /// The ledger's database for `config`, or `None` when `database.enabled` is false.
    ///
    /// With a config file, a relative SQLite path is relative to the file's folder (the default
    /// is `bitrouter.db` there); without one (zero-config), to the user data directory
    /// (`$XDG_DATA_HOME/bitrouter`, else `~/.local/share/bitrouter`), read through `env`.
    pub fn from_config(
        config: &Config,
        env: &dyn EnvSource,
    ) -> Result<Option<LedgerUrl>, LedgerError> {
        if !config.database.enabled {
            return Ok(None);
        }
        let base = match &config.source {
            ConfigSource::File(file) => match file.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                _ => PathBuf::from("."),
            },
            ConfigSource::ZeroConfig => data_dir(env),
        };
        let base = std::path::absolute(&base).unwrap_or(base);
        let url = config.database.url.as_deref().unwrap_or(DEFAULT_URL);
        LedgerUrl::parse(url, &base).map(Some)
    }

    /// The database kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            LedgerUrl::Sqlite(_) => "SQLite",
            LedgerUrl::Postgres(_) => "PostgreSQL",
        }
    }
}

/// `bitrouter`'s folder in the user data directory.
pub fn data_dir(env: &dyn EnvSource) -> PathBuf {
    let nonempty = |name: &str| env.get(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    match (nonempty("XDG_DATA_HOME"), nonempty("HOME")) {
        (Some(data), _) => data.join("bitrouter"),
        (None, Some(home)) => home.join(".local/share/bitrouter"),
        (None, None) => PathBuf::from("."),
    }
}

/// `url` with its password (if any) replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() && u.set_password(Some("***")).is_err() {
                return format!("{}://***", u.scheme());
            }
            // A password may also ride in the query (`?password=`).
            if u.query_pairs().any(|(k, _)| k == "password") {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if k == "password" {
                            "***".into()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => match url.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://***"),
            None => "***".to_string(),
        },
    }
}

impl fmt::Display for LedgerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LedgerUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            LedgerUrl::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl fmt::Debug for LedgerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LedgerUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitrouter_config::MapEnv;

    fn sqlite(url: &str) -> PathBuf {
        match LedgerUrl::parse(url, Path::new("/etc/br")).unwrap() {
            LedgerUrl::Sqlite(p) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sqlite_forms() {
        assert_eq!(
            sqlite("sqlite://./bitrouter.db"),
            Path::new("/etc/br/bitrouter.db")
        );
        assert_eq!(sqlite("sqlite://ledger.db"), Path::new("/etc/br/ledger.db"));
        assert_eq!(
            sqlite("sqlite:ledger.db?mode=rwc"),
            Path::new("/etc/br/ledger.db")
        );
        assert_eq!(sqlite("sqlite:///var/lib/x.db"), Path::new("/var/lib/x.db"));
        for bad in ["sqlite://", "sqlite::memory:", "mysql://x", "bitrouter.db"] {
            assert!(
                matches!(
                    LedgerUrl::parse(bad, Path::new("/")),
                    Err(LedgerError::Url(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn postgres_password_is_never_shown() {
        for url in [
            "postgres://bob:hunter2@db.example:5432/ledger",
            "postgresql://bob:hunter2@db.example/ledger?sslmode=disable",
            "postgres://bob@db.example/ledger?password=hunter2",
        ] {
            let u = LedgerUrl::parse(url, Path::new("/")).unwrap();
            let shown = format!("{u} {u:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("db.example"), "{shown}");
        }
        let e = LedgerUrl::parse("postgres://bob:hunter2@db:notaport/x", Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn resolved_against_the_config_file_or_the_data_dir() {
        let env = MapEnv::new([("OPENAI_API_KEY", "k"), ("HOME", "/home/ann")]);
        let mut config =
            bitrouter_config::load_str("database: {}\n", "/srv/br/bitrouter.yaml", &env).unwrap();
        config.source = ConfigSource::File(PathBuf::from("/srv/br/bitrouter.yaml"));
        assert_eq!(
            LedgerUrl::from_config(&config, &env).unwrap(),
            Some(LedgerUrl::Sqlite(PathBuf::from("/srv/br/bitrouter.db")))
        );
        let zero = bitrouter_config::zero_config(&env);
        assert_eq!(
            LedgerUrl::from_config(&zero, &env).unwrap(),
            Some(LedgerUrl::Sqlite(PathBuf::from(
                "/home/ann/.local/share/bitrouter/bitrouter.db"
            )))
        );
        let xdg = MapEnv::new([("XDG_DATA_HOME", "/data"), ("HOME", "/home/ann")]);
        assert_eq!(
            LedgerUrl::from_config(&zero, &xdg).unwrap(),
            Some(LedgerUrl::Sqlite(PathBuf::from(
                "/data/bitrouter/bitrouter.db"
            )))
        );
        config.database.enabled = false;
        assert_eq!(LedgerUrl::from_config(&config, &env).unwrap(), None);
    }
}
