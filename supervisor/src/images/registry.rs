//! Pull and push over the OCI distribution API. (Owner: the registry engineer.)

/// Errors talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {}

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
