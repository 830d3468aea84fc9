//! `serve --database`: which database, from text an admin wrote.
//!
//! `sqlite` (the default) is the file in the state directory; a
//! `postgres://` (or `postgresql://`) URL is a PostgreSQL database, perhaps
//! shared with other coordinators. A URL is an argument, and arguments are
//! visible to every user of the machine (`ps`), so a password written in it
//! is refused: it comes from `--database-password-file`, or from the
//! environment as `postgres://hearth:${PGPASSWORD}@db/hearth`. Any other
//! `${NAME}` in the URL is replaced by that environment variable too.

use std::fmt;

use zeroize::Zeroizing;

/// Where the coordinator keeps its state.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum DatabaseChoice {
    /// `coordinator.db` in the state directory.
    #[default]
    Sqlite,
    /// A PostgreSQL server.
    Postgres {
        /// The URL with every `${NAME}` expanded and no password.
        url: String,
        /// The password, from the environment or a file.
        password: Option<Zeroizing<String>>,
    },
}

impl fmt::Debug for DatabaseChoice {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseChoice::Sqlite => formatter.write_str("Sqlite"),
            DatabaseChoice::Postgres { url, password } => formatter
                .debug_struct("Postgres")
                .field("url", url)
                .field("password", &password.as_ref().map(|_| "<redacted>"))
                .finish(),
        }
    }
}

/// Why a `--database` text is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseUrlError {
    /// Neither `sqlite` nor a URL.
    #[error("--database takes `sqlite` or a postgres:// URL, not `{0}`")]
    NotAUrl(String),
    /// A URL of another scheme.
    #[error("--database takes `sqlite` or a postgres:// URL; `{0}://` is not supported")]
    Scheme(String),
    /// A query parameter that carries a secret.
    #[error(
        "the --database URL holds a secret in `{0}=`, which any user could read in the process \
         list (and which would be logged with the URL): give the password with \
         --database-password-file, or as ${{VARIABLE}} in the URL's user part"
    )]
    SecretParameter(String),
    /// A password written in the URL.
    #[error(
        "the --database URL holds a password, which any user could read in the process list: \
         give it with --database-password-file, or as ${{VARIABLE}} naming an environment \
         variable"
    )]
    Password,
    /// A `${NAME}` whose variable is not set.
    #[error(transparent)]
    Unset(#[from] hearth_files::config::UnsetVariable),
}

/// Reads `--database` text, looking environment variables up with `env`.
pub fn parse(
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<DatabaseChoice, DatabaseUrlError> {
    let text = text.trim();
    if text.is_empty() || text == "sqlite" {
        return Ok(DatabaseChoice::Sqlite);
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(DatabaseUrlError::NotAUrl(text.to_owned()));
    };
    if scheme != "postgres" && scheme != "postgresql" {
        return Err(DatabaseUrlError::Scheme(scheme.to_owned()));
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    if let Some((_, query)) = path.split_once('?') {
        for parameter in query.split('&') {
            let name = parameter
                .split_once('=')
                .map_or(parameter, |(name, _)| name);
            if SECRET_PARAMETERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(DatabaseUrlError::SecretParameter(name.to_owned()));
            }
        }
    }
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => (Some(userinfo), host),
        None => (None, authority),
    };
    let mut password = None;
    let mut user = None;
    if let Some(userinfo) = userinfo {
        match userinfo.split_once(':') {
            Some((name, secret)) => {
                let Some(variable) = reference(secret) else {
                    return Err(DatabaseUrlError::Password);
                };
                let value = env(variable)
                    .ok_or_else(|| hearth_files::config::UnsetVariable(variable.to_owned()))?;
                password = Some(Zeroizing::new(value));
                user = Some(name);
            }
            None => user = Some(userinfo),
        }
    }
    let mut url = format!("{scheme}://");
    if let Some(user) = user {
        url.push_str(&expand(user, &env)?);
        url.push('@');
    }
    url.push_str(&expand(host, &env)?);
    url.push_str(&expand(path, &env)?);
    Ok(DatabaseChoice::Postgres { url, password })
}

/// Query parameters of a PostgreSQL URL that carry a secret.
const SECRET_PARAMETERS: &[&str] = &["password", "sslpassword"];

/// `NAME` when `text` is exactly `${NAME}`.
fn reference(text: &str) -> Option<&str> {
    let name = text.strip_prefix("${")?.strip_suffix('}')?;
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || character == '_');
    valid.then_some(name)
}

/// `text` with each `${NAME}` replaced by the variable's value.
fn expand(
    text: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<String, hearth_files::config::UnsetVariable> {
    hearth_files::config::expand(text, env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PGPASSWORD" => Some("s3cret:@/".into()),
            "DB_HOST" => Some("db.internal".into()),
            _ => None,
        }
    }

    fn postgres(url: &str, password: Option<&str>) -> DatabaseChoice {
        DatabaseChoice::Postgres {
            url: url.into(),
            password: password.map(|password| Zeroizing::new(password.into())),
        }
    }

    #[test]
    fn sqlite_is_the_default() {
        assert_eq!(parse("", env), Ok(DatabaseChoice::Sqlite));
        assert_eq!(parse("sqlite", env), Ok(DatabaseChoice::Sqlite));
    }

    #[test]
    fn a_url_without_a_password_is_kept() {
        assert_eq!(
            parse("postgres://hearth@localhost:5432/hearth", env),
            Ok(postgres("postgres://hearth@localhost:5432/hearth", None))
        );
        assert_eq!(
            parse("postgresql:///hearth?host=/run/postgresql", env),
            Ok(postgres("postgresql:///hearth?host=/run/postgresql", None))
        );
    }

    #[test]
    fn a_literal_password_is_refused_and_not_echoed() {
        let error = parse("postgres://hearth:hunter2@localhost/hearth", env)
            .unwrap_err()
            .to_string();
        assert!(error.contains("--database-password-file"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn a_password_in_the_query_is_refused_and_not_echoed() {
        for url in [
            "postgres://hearth@localhost/hearth?password=hunter2",
            "postgres://hearth@localhost/hearth?sslmode=require&PassWord=hunter2",
            "postgresql:///hearth?host=/run/postgresql&sslpassword=hunter2",
            "postgres://hearth@localhost/hearth?password=${PGPASSWORD}",
        ] {
            let error = parse(url, env).unwrap_err().to_string();
            assert!(error.contains("--database-password-file"), "{error}");
            assert!(
                !error.contains("hunter2") && !error.contains("s3cret"),
                "{error}"
            );
        }
        assert!(parse("postgres://hearth@localhost/hearth?passwordless=1", env).is_ok());
    }

    #[test]
    fn a_password_from_the_environment_is_taken_out_of_the_url() {
        assert_eq!(
            parse("postgres://hearth:${PGPASSWORD}@${DB_HOST}/hearth", env),
            Ok(postgres(
                "postgres://hearth@db.internal/hearth",
                Some("s3cret:@/")
            ))
        );
    }

    #[test]
    fn a_missing_variable_is_named() {
        let error = parse("postgres://hearth:${NOPE}@localhost/hearth", env)
            .unwrap_err()
            .to_string();
        assert!(error.contains("NOPE"), "{error}");
        let error = parse("postgres://${NOPE}/hearth", env)
            .unwrap_err()
            .to_string();
        assert!(error.contains("NOPE"), "{error}");
    }

    #[test]
    fn other_schemes_are_refused() {
        assert!(parse("mysql://localhost/hearth", env).is_err());
        assert!(parse("hearth.db", env).is_err());
    }

    #[test]
    fn the_debug_form_hides_the_password() {
        let choice = parse("postgres://hearth:${PGPASSWORD}@localhost/hearth", env).unwrap();
        assert!(!format!("{choice:?}").contains("s3cret"));
    }
}
