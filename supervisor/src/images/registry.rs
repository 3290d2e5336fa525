//! Pull and push over the OCI distribution API.
//!
//! [`Registry`] is one registry host seen through `oci-client`: it does the auth (`Bearer`
//! token flow or basic), blob streams, mounts and manifest uploads. Manifests are fetched with
//! our own request (authorised by the client's token) so that their size is capped while they
//! stream in. Plain http is used only for loopback hosts and `--insecure-registry` ones.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use oci_client::client::{ClientConfig, ClientProtocol, SizedStream};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::RegistryOperation;

use super::content;

pub mod stall;

/// Docker image manifest (v2 schema 2).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Every manifest type a pull accepts.
pub const MANIFEST_TYPES: [&str; 4] = [
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    OCI_INDEX,
];

/// A registry that does not accept a connection in this time is given up.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// A response that sends nothing for this long is given up (a stalled stream).
pub const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Errors talking to a registry; each names the registry, reference or digest it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{registry}: unauthorized: incorrect username or password")]
    Unauthorized { registry: String },
    #[error("{registry}: unauthorized: authentication required")]
    AuthRequired { registry: String },
    #[error("{what}: {source}")]
    Client {
        what: String,
        #[source]
        source: OciDistributionError,
    },
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("manifest for {reference} not found: manifest unknown")]
    ManifestUnknown { reference: String },
    #[error("{reference}: unsupported manifest media type {media_type:?}")]
    MediaType {
        reference: String,
        media_type: String,
    },
    #[error("{reference}: manifest has digest {actual}, expected {expected}")]
    ManifestDigest {
        reference: String,
        expected: String,
        actual: String,
    },
    #[error("{reference}: invalid manifest: {message}")]
    Manifest { reference: String, message: String },
    #[error("{reference}: no matching manifest for {platform} in the manifest list entries")]
    NoPlatform { reference: String, platform: String },
    /// containerd's words, as dockerd answers them.
    #[error("{0}: invalid argument")]
    Platform(String),
    #[error("blob {digest}: {message}")]
    Blob { digest: String, message: String },
    #[error("invalid X-Registry-Auth header: {0}")]
    AuthHeader(String),
    #[error("{what}: {}", stall::describe(*window))]
    Stalled {
        what: String,
        window: std::time::Duration,
    },
}

impl Error {
    /// Whether trying again may help: a broken connection or a server error, not a refusal.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Http { .. } | Error::Blob { .. } | Error::Stalled { .. } => true,
            Error::Client { source, .. } => matches!(
                source,
                OciDistributionError::RequestError(_)
                    | OciDistributionError::IoError(_)
                    | OciDistributionError::ServerError { code: 500.., .. }
            ),
            _ => false,
        }
    }

    /// The HTTP status the Docker Engine API answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            Error::Unauthorized { .. } | Error::AuthRequired { .. } => 401,
            Error::ManifestUnknown { .. } | Error::NoPlatform { .. } => 404,
            Error::Platform(_) | Error::AuthHeader(_) => 400,
            _ => 500,
        }
    }
}

/// Credentials for one registry, as `berth login` stores them and as docker's
/// `X-Registry-Auth` header carries them (base64url JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Credentials {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default, rename = "serveraddress")]
    pub server_address: String,
    #[serde(default, rename = "identitytoken")]
    pub identity_token: String,
}

impl Credentials {
    /// Decodes docker's `X-Registry-Auth`: base64url (padding optional; the standard alphabet
    /// is accepted too) of a JSON object. An empty header means no credentials.
    pub fn from_header(value: &str) -> Result<Self, Error> {
        let trimmed = value.trim().trim_end_matches('=');
        if trimmed.is_empty() {
            return Ok(Credentials::default());
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(trimmed)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
            .map_err(|e| Error::AuthHeader(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::AuthHeader(e.to_string()))
    }

    /// The header value docker's client would send for these credentials.
    pub fn to_header(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE.encode(json)
    }

    /// What `oci-client` authenticates with: basic credentials when a username is given.
    /// An identity token (an OAuth refresh token) is not supported: it is not sent anywhere.
    pub fn auth(&self) -> RegistryAuth {
        if !self.username.is_empty() {
            return RegistryAuth::Basic(self.username.clone(), self.password.clone());
        }
        if !self.identity_token.is_empty() {
            tracing::warn!(
                registry = %self.server_address,
                "identity tokens are not supported; pulling anonymously"
            );
        }
        RegistryAuth::Anonymous
    }
}

/// Whether `host` (`name[:port]`) may be reached over plain http: loopback addresses,
/// `localhost`, and the registries given as insecure.
pub fn plain_http_allowed(host: &str, insecure: &[String]) -> bool {
    if insecure.iter().any(|h| h == host) {
        return true;
    }
    let name = host_without_port(host);
    name == "localhost"
        || name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.contains(':') => {
            name
        }
        _ => host,
    }
}

/// A manifest as a registry served it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Bytes,
    pub digest: String,
    pub media_type: String,
}

/// One registry host, with the credentials to use there.
#[derive(Clone)]
pub struct Registry {
    client: oci_client::Client,
    http: reqwest::Client,
    host: String,
    scheme: &'static str,
    auth: RegistryAuth,
    /// A request whose headers, or a body that brings too little, in this time is given up.
    stall: std::time::Duration,
    /// Authorization header values per `repository op`, so auth happens once each.
    authorized: Arc<tokio::sync::Mutex<HashMap<String, Option<String>>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("host", &self.host)
            .field("scheme", &self.scheme)
            .finish()
    }
}

impl Registry {
    /// A client for `host` (as a reference names it, e.g. `docker.io`, `127.0.0.1:5000`).
    pub fn new(host: &str, insecure: &[String], credentials: Option<&Credentials>) -> Self {
        let plain = plain_http_allowed(host, insecure);
        let reference = oci_client::Reference::with_tag(host.into(), "x".into(), "x".into());
        let api_host = reference.resolve_registry().to_string();
        let config = ClientConfig {
            protocol: if plain {
                ClientProtocol::HttpsExcept(vec![host.to_string(), api_host.clone()])
            } else {
                ClientProtocol::Https
            },
            use_monolithic_push: true,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            platform_resolver: None,
            user_agent: concat!("berth/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        Registry {
            client: oci_client::Client::new(config),
            http: reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .read_timeout(READ_TIMEOUT)
                .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
            host: host.to_string(),
            scheme: if plain { "http" } else { "https" },
            auth: credentials
                .map(Credentials::auth)
                .unwrap_or(RegistryAuth::Anonymous),
            stall: stall::DEFAULT_TIMEOUT,
            authorized: Arc::default(),
        }
    }

    /// The same client with another stall window (`--registry-stall-timeout`).
    pub fn stalling_after(mut self, window: std::time::Duration) -> Self {
        self.stall = window;
        self
    }

    /// `future` (a request up to its headers), given up after one stall window.
    async fn in_time<T>(
        &self,
        what: impl Into<String>,
        future: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        stall::within(self.stall, future).await.unwrap_or_else(|| {
            Err(Error::Stalled {
                what: what.into(),
                window: self.stall,
            })
        })
    }

    /// The host as references name it.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn reference(&self, repository: &str, tag_or_digest: &str) -> oci_client::Reference {
        if tag_or_digest.contains(':') {
            oci_client::Reference::with_digest(
                self.host.clone(),
                repository.into(),
                tag_or_digest.into(),
            )
        } else {
            oci_client::Reference::with_tag(
                self.host.clone(),
                repository.into(),
                tag_or_digest.into(),
            )
        }
    }

    fn base_url(&self) -> String {
        let reference = self.reference("x", "x");
        format!("{}://{}", self.scheme, reference.resolve_registry())
    }

    /// The registry refused us: wrong credentials, or none given where some are needed.
    fn unauthorized(&self) -> Error {
        let registry = self.host.clone();
        match self.auth {
            RegistryAuth::Anonymous => Error::AuthRequired { registry },
            _ => Error::Unauthorized { registry },
        }
    }

    fn client_error(&self, what: impl Into<String>) -> impl FnOnce(OciDistributionError) -> Error {
        let what = what.into();
        let unauthorized = self.unauthorized();
        move |source| match source {
            OciDistributionError::AuthenticationFailure(_)
            | OciDistributionError::UnauthorizedError { .. } => unauthorized,
            OciDistributionError::RequestError(e)
                if matches!(e.status().map(|s| s.as_u16()), Some(401 | 403)) =>
            {
                unauthorized
            }
            OciDistributionError::ServerError {
                code: 401 | 403, ..
            } => unauthorized,
            source => Error::Client { what, source },
        }
    }

    /// Authenticates for `repository` and `op` (cached by the client); returns the header
    /// value our own requests carry, if any.
    async fn authorize(
        &self,
        repository: &str,
        op: RegistryOperation,
    ) -> Result<Option<String>, Error> {
        let key = format!("{repository} {op:?}");
        let mut authorized = self.authorized.lock().await;
        if let Some(value) = authorized.get(&key) {
            return Ok(value.clone());
        }
        let reference = self.reference(repository, "latest");
        let what = format!("{}/{repository}", self.host);
        let auth = async {
            self.client
                .auth(&reference, &self.auth, op)
                .await
                .map_err(self.client_error(what.clone()))
        };
        let token = self.in_time(format!("{what}: token"), auth).await?;
        let value = match (token, &self.auth) {
            (Some(token), _) => Some(format!("Bearer {token}")),
            (None, RegistryAuth::Basic(user, password)) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            _ => None,
        };
        authorized.insert(key, value.clone());
        Ok(value)
    }

    /// Fetches a manifest or index by tag or digest, at most `limit` bytes, verified against
    /// the digest asked for (or the one the registry announces).
    pub async fn manifest(
        &self,
        repository: &str,
        tag_or_digest: &str,
        limit: u64,
    ) -> Result<Fetched, Error> {
        let reference = format!("{}/{repository}:{tag_or_digest}", self.host);
        let url = format!(
            "{}/v2/{repository}/manifests/{tag_or_digest}",
            self.base_url()
        );
        let authorization = self.authorize(repository, RegistryOperation::Pull).await?;
        let mut request = self
            .http
            .get(&url)
            .header("Accept", MANIFEST_TYPES.join(", "));
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let sent = async { request.send().await.map_err(http_error(&url)) };
        let response = self.in_time(url.clone(), sent).await?;
        match response.status().as_u16() {
            200 => {}
            401 | 403 => return Err(self.unauthorized()),
            404 => return Err(Error::ManifestUnknown { reference }),
            status => {
                return Err(Error::Http {
                    url,
                    message: format!("status {status}"),
                })
            }
        }
        let announced = header(&response, "Docker-Content-Digest");
        let content_type = header(&response, "Content-Type");
        let bytes = read_limited(response, limit, &url, self.stall).await?;
        let digest = content::digest_of(&bytes);
        let expected = if tag_or_digest.contains(':') {
            Some(tag_or_digest.to_string())
        } else {
            announced.filter(|d| d.starts_with("sha256:"))
        };
        if let Some(expected) = expected.filter(|e| *e != digest) {
            return Err(Error::ManifestDigest {
                reference,
                expected,
                actual: digest,
            });
        }
        let media_type = media_type_of(&bytes, content_type.as_deref());
        if !MANIFEST_TYPES.contains(&media_type.as_str()) {
            return Err(Error::MediaType {
                reference,
                media_type,
            });
        }
        Ok(Fetched {
            bytes,
            digest,
            media_type,
        })
    }

    /// A verifying byte stream of a blob (its digest is checked when it ends).
    pub async fn blob(&self, repository: &str, digest: &str) -> Result<SizedStream, Error> {
        self.authorize(repository, RegistryOperation::Pull).await?;
        let reference = self.reference(repository, digest);
        let descriptor = OciDescriptor {
            digest: digest.to_string(),
            ..Default::default()
        };
        let what = format!("blob {digest}");
        let request = async {
            self.client
                .pull_blob_stream(&reference, &descriptor)
                .await
                .map_err(self.client_error(what.clone()))
        };
        let mut blob = self.in_time(what.clone(), request).await?;
        let stream = std::mem::replace(&mut blob.stream, futures_util::stream::empty().boxed());
        blob.stream = stall::Guarded::new(stream, self.stall).boxed();
        Ok(blob)
    }

    /// Whether the repository already has the blob (HEAD).
    pub async fn has_blob(&self, repository: &str, digest: &str) -> Result<bool, Error> {
        self.authorize(repository, RegistryOperation::Push).await?;
        let reference = self.reference(repository, "latest");
        self.client
            .blob_exists(&reference, digest)
            .await
            .map_err(self.client_error(format!("blob {digest}")))
    }

    /// Cross-repository mount of a blob from another repository of this registry. False when
    /// the registry declined (it then expects an upload).
    pub async fn mount(&self, repository: &str, from: &str, digest: &str) -> bool {
        if self
            .authorize(repository, RegistryOperation::Push)
            .await
            .is_err()
        {
            return false;
        }
        let target = self.reference(repository, "latest");
        let source = self.reference(from, "latest");
        match self.client.mount_blob(&target, &source, digest).await {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(%digest, %from, %repository, error = %e, "mount declined");
                false
            }
        }
    }

    /// Uploads a blob of known digest and size from a stream.
    pub async fn push_blob<S>(
        &self,
        repository: &str,
        digest: &str,
        size: u64,
        stream: S,
    ) -> Result<(), Error>
    where
        S: Stream<Item = Result<Bytes, OciDistributionError>> + Send + 'static,
    {
        self.authorize(repository, RegistryOperation::Push).await?;
        let reference = self.reference(repository, "latest");
        self.client
            .push_blob_stream(&reference, stream, digest, Some(size))
            .await
            .map_err(self.client_error(format!("blob {digest}")))?;
        Ok(())
    }

    /// Uploads manifest bytes as they are (so the digest stays) under a tag.
    pub async fn push_manifest(
        &self,
        repository: &str,
        tag: &str,
        bytes: Vec<u8>,
        media_type: &str,
    ) -> Result<(), Error> {
        self.authorize(repository, RegistryOperation::Push).await?;
        let reference = self.reference(repository, tag);
        let content_type =
            reqwest::header::HeaderValue::from_str(media_type).map_err(|e| Error::Manifest {
                reference: format!("{}/{repository}:{tag}", self.host),
                message: e.to_string(),
            })?;
        self.client
            .push_manifest_raw(&reference, bytes, content_type)
            .await
            .map_err(self.client_error(format!("{}/{repository}:{tag}", self.host)))?;
        Ok(())
    }

    /// Checks the credentials against the registry's `/v2/` (`docker login`).
    pub async fn login(&self) -> Result<(), Error> {
        let url = format!("{}/v2/", self.base_url());
        let response = self.http.get(&url).send().await.map_err(http_error(&url))?;
        let status = response.status().as_u16();
        if status == 200 {
            return Ok(());
        }
        if status != 401 {
            return Err(Error::Http {
                url,
                message: format!("status {status}"),
            });
        }
        let challenge = header(&response, "WWW-Authenticate").unwrap_or_default();
        let authorization = if challenge.to_ascii_lowercase().starts_with("bearer") {
            // The token realm issues a token for the credentials; only the registry
            // accepting it on `/v2/` proves them (as docker checks).
            self.authorize("berth/login", RegistryOperation::Pull)
                .await?
        } else {
            match &self.auth {
                RegistryAuth::Basic(user, password) => Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
                )),
                _ => None,
            }
        };
        self.ping_with(&url, authorization).await
    }

    /// `GET /v2/` with these credentials: Ok only for a 200.
    async fn ping_with(&self, url: &str, authorization: Option<String>) -> Result<(), Error> {
        let Some(authorization) = authorization else {
            return Err(self.unauthorized());
        };
        let response = self
            .http
            .get(url)
            .header("Authorization", authorization)
            .send()
            .await
            .map_err(http_error(url))?;
        match response.status().as_u16() {
            200 => Ok(()),
            401 | 403 => Err(self.unauthorized()),
            status => Err(Error::Http {
                url: url.to_string(),
                message: format!("status {status}"),
            }),
        }
    }
}

fn http_error(url: &str) -> impl FnOnce(reqwest::Error) -> Error + '_ {
    move |e| Error::Http {
        url: url.to_string(),
        message: e.to_string(),
    }
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Reads a response body, refusing more than `limit` bytes as they arrive.
async fn read_limited(
    response: reqwest::Response,
    limit: u64,
    url: &str,
    stall: std::time::Duration,
) -> Result<Bytes, Error> {
    let mut body = Vec::new();
    let stream = response
        .bytes_stream()
        .map(|c| c.map_err(std::io::Error::other));
    let mut stream = stall::Guarded::new(stream.boxed(), stall);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::Http {
            url: url.to_string(),
            message: e.to_string(),
        })?;
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(Error::Http {
                url: url.to_string(),
                message: format!("manifest larger than {limit} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.into())
}

/// The media type a manifest declares, else the Content-Type, else what its shape says.
pub fn media_type_of(bytes: &[u8], content_type: Option<&str>) -> String {
    let json: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    if let Some(declared) = json["mediaType"].as_str() {
        return declared.to_string();
    }
    if let Some(ct) = content_type.filter(|ct| MANIFEST_TYPES.contains(ct)) {
        return ct.to_string();
    }
    if json.get("manifests").is_some() {
        OCI_INDEX.to_string()
    } else {
        OCI_MANIFEST.to_string()
    }
}

/// A platform: `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os[/arch[/variant]]` as containerd (and so dockerd) does: each part of
    /// `[A-Za-z0-9_-]+`, one part an OS or an architecture it knows; None means this host.
    pub fn parse(value: Option<&str>) -> Result<Self, Error> {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Ok(Self::host());
        };
        let refuse = |why: &str| Err(Error::Platform(format!("{value:?}: {why}")));
        if value.contains('*') {
            return refuse("wildcards not yet supported");
        }
        let parts: Vec<&str> = value.split('/').collect();
        if let Some(bad) = parts.iter().find(|p| !is_component(p)) {
            return Err(Error::Platform(format!(
                "{bad:?} is an invalid component of {value:?}: platform specifier component \
                 must match \"^[A-Za-z0-9_-]+$\""
            )));
        }
        let os = |p: &str| p.to_ascii_lowercase().replace("macos", "darwin");
        let platform = |os: String, arch: &str, variant: Option<&str>| Platform {
            os,
            architecture: normalise_arch(&arch.to_ascii_lowercase()).to_string(),
            variant: variant.map(str::to_ascii_lowercase),
        };
        match parts.as_slice() {
            [one] if KNOWN_OS.contains(&os(one).as_str()) => {
                Ok(platform(os(one), &Self::host().architecture, None))
            }
            [one] if KNOWN_ARCH.contains(&normalise_arch(&one.to_ascii_lowercase())) => {
                Ok(platform("linux".into(), one, None))
            }
            [_] => refuse("unknown operating system or architecture"),
            [o, arch] => Ok(platform(os(o), arch, None)),
            [o, arch, variant] => Ok(platform(os(o), arch, Some(variant))),
            _ => refuse("cannot parse platform specifier"),
        }
    }

    /// This host's platform, named as images name it.
    pub fn host() -> Self {
        Platform {
            os: "linux".into(),
            architecture: normalise_arch(std::env::consts::ARCH).to_string(),
            variant: None,
        }
    }

    /// Whether an index entry's platform fits this one. An absent variant asks for none in
    /// particular; arm64's `v8` is its default.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        if self.os != os || self.architecture != normalise_arch(architecture) {
            return false;
        }
        match (self.variant.as_deref(), variant) {
            (None, _) => true,
            (Some(want), Some(have)) => want == have,
            (Some(want), None) => self.architecture == "arm64" && want == "v8",
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// The operating systems and architectures containerd knows by name.
const KNOWN_OS: [&str; 16] = [
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "windows",
];
const KNOWN_ARCH: [&str; 24] = [
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "ppc64",
    "ppc64le",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

fn is_component(part: &str) -> bool {
    !part.is_empty()
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn normalise_arch(arch: &str) -> &str {
    match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        "x86" | "i386" | "i686" => "386",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_auth_header_decodes_with_or_without_padding() {
        let creds = Credentials {
            username: "u".into(),
            password: "p?>".into(),
            server_address: "127.0.0.1:5000".into(),
            identity_token: String::new(),
        };
        let header = creds.to_header();
        assert_eq!(Credentials::from_header(&header).unwrap(), creds);
        let unpadded = header.trim_end_matches('=');
        assert_eq!(Credentials::from_header(unpadded).unwrap(), creds);
        assert_eq!(
            Credentials::from_header("").unwrap(),
            Credentials::default()
        );
        assert!(Credentials::from_header("!!!").is_err());
    }

    #[test]
    fn plain_http_only_for_loopback_and_insecure() {
        for host in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(plain_http_allowed(host, &[]), "{host}");
        }
        for host in [
            "docker.io",
            "10.0.0.1:5000",
            "example.com:5000",
            "localhost.example.com",
        ] {
            assert!(!plain_http_allowed(host, &[]), "{host}");
        }
        assert!(plain_http_allowed("reg.lan:5000", &["reg.lan:5000".into()]));
    }

    #[test]
    fn platforms_parse_and_match() {
        let arm = Platform::parse(Some("linux/arm64")).unwrap();
        assert!(arm.matches("linux", "arm64", Some("v8")));
        assert!(!arm.matches("linux", "amd64", None));
        let v8 = Platform::parse(Some("linux/arm64/v8")).unwrap();
        assert!(v8.matches("linux", "arm64", None));
        let v7 = Platform::parse(Some("linux/arm/v7")).unwrap();
        assert!(!v7.matches("linux", "arm", Some("v6")));
        assert_eq!(Platform::parse(Some("linux")).unwrap(), Platform::host());
        assert_eq!(
            Platform::parse(Some("arm64")).unwrap().to_string(),
            "linux/arm64"
        );
        let refused = |p: &str| Platform::parse(Some(p)).unwrap_err().to_string();
        // dockerd's answers, word for word.
        assert_eq!(
            refused("../../x"),
            r#"".." is an invalid component of "../../x": platform specifier component must match "^[A-Za-z0-9_-]+$": invalid argument"#
        );
        assert_eq!(
            refused("linux/amd64/v3/x"),
            r#""linux/amd64/v3/x": cannot parse platform specifier: invalid argument"#
        );
        assert_eq!(
            refused("bogus"),
            r#""bogus": unknown operating system or architecture: invalid argument"#
        );
        assert_eq!(
            refused("lin*"),
            r#""lin*": wildcards not yet supported: invalid argument"#
        );
        assert!(Platform::parse(Some("linux//")).is_err());
        assert_eq!(Platform::parse(None).unwrap().os, "linux");
    }
}
