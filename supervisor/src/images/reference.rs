//! Image references, normalised the way docker does: a name without a registry is on
//! `docker.io`, a single-component name there is under `library/`, no tag means `latest`.
use std::fmt;

/// Default registry for short names.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// Errors parsing a reference.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid reference format: {0:?}")]
    Invalid(String),
    #[error("invalid reference format: repository name must be lowercase: {0:?}")]
    Uppercase(String),
    #[error("invalid reference format: repository name must not be more than {NAME_LIMIT} characters: {0:?}")]
    TooLong(String),
}

/// Longest name (registry and repository, as given) docker accepts.
pub const NAME_LIMIT: usize = 255;

/// A path component as docker's grammar has it: lowercase letters and digits, runs of them
/// joined by one `.`, one `_`, `__`, or any number of `-`.
fn component_ok(c: &str) -> bool {
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.first().is_some_and(|b| alnum(*b)) || !bytes.last().is_some_and(|b| alnum(*b)) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-')) {
            return false;
        }
    }
    true
}

/// A registry host as docker's grammar has it: dot-separated labels of letters, digits and
/// inner `-` (or a bracketed IPv6 address), then an optional `:port`.
fn domain_ok(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !p.contains(']') => (h, Some(p)),
        _ => (domain, None),
    };
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A normalised image reference: `registry/repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// Parses `name[:tag][@digest]`; adds `latest` when neither tag nor digest is given.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let mut r = Self::parse_bare(input)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some("latest".into());
        }
        Ok(r)
    }

    /// Parses like [`Reference::parse`] but leaves the tag empty when none is given.
    pub fn parse_bare(input: &str) -> Result<Self, Error> {
        let invalid = || Error::Invalid(input.to_string());
        if input.is_empty() || input.contains(char::is_whitespace) || input.contains("://") {
            return Err(invalid());
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                let (algo, hex) = digest.split_once(':').ok_or_else(invalid)?;
                if algo != "sha256"
                    || hex.len() != 64
                    || !hex
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                {
                    return Err(invalid());
                }
                (rest, Some(digest.to_string()))
            }
            None => (input, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            let valid = !tag.is_empty()
                && tag.len() <= 128
                && !tag.starts_with(['.', '-'])
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !valid {
                return Err(invalid());
            }
        }
        if name.len() > NAME_LIMIT {
            return Err(Error::TooLong(input.to_string()));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DEFAULT_REGISTRY.to_string(),
            _ => registry,
        };
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(Error::Uppercase(input.to_string()));
        }
        if !domain_ok(&registry) || !repository.split('/').all(component_ok) {
            return Err(invalid());
        }
        Ok(Reference {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The name as docker shows it: `busybox` for `docker.io/library/busybox`,
    /// `localhost:5000/app` for a private registry.
    pub fn familiar_name(&self) -> String {
        if self.registry == DEFAULT_REGISTRY {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        }
    }

    /// `familiar_name[:tag][@digest]`, as docker prints a reference.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(tag) = &self.tag {
            s = format!("{s}:{tag}");
        }
        if let Some(digest) = &self.digest {
            s = format!("{s}@{digest}");
        }
        s
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Self {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository pinned to a digest, without tag.
    pub fn with_digest(&self, digest: &str) -> Self {
        Reference {
            tag: None,
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }

    /// What the registry API calls this reference: the digest if pinned, else the tag.
    pub fn tag_or_digest(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for Reference {
    /// The full name, `registry/repository[:tag][@digest]`, used as the metadata key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_docker_hub_library() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.familiar(), "busybox:latest");
        let r = Reference::parse("foo/bar:1.0").unwrap();
        assert_eq!(r.to_string(), "docker.io/foo/bar:1.0");
        assert_eq!(r.familiar(), "foo/bar:1.0");
    }

    #[test]
    fn registries_with_ports_and_digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("127.0.0.1:5000/app/web@{d}")).unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "app/web");
        assert_eq!(r.tag, None);
        assert_eq!(r.tag_or_digest(), d);
        let r = Reference::parse("localhost/app:v2").unwrap();
        assert_eq!(r.familiar(), "localhost/app:v2");
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in [
            "",
            "Busybox",
            "a b",
            "busybox:",
            "busybox@sha256:12",
            "http://x/y",
            "../x",
            "../x:y",
            "a..b/x",
            "-a.b/x",
            "a.b-/x",
            "reg.example:/x",
            "reg.example:5x/x",
            "x/a..b",
            "x/a.-b",
            "x/_a",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("reg.example/{}", "a".repeat(250));
        let err = Reference::parse(&long).unwrap_err().to_string();
        assert!(
            err.contains("must not be more than 255 characters"),
            "{err}"
        );
        for good in [
            "a__b/c",
            "a---b/c-d",
            "reg.example:5000/a.b_c/d",
            "[::1]:5000/x",
            "localhost/x",
            "my-registry.example/x",
        ] {
            assert!(Reference::parse(good).is_ok(), "{good:?} refused");
        }
    }
}
