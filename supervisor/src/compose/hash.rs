//! The config hash in `com.docker.compose.config-hash`: a digest of what makes a service's
//! containers what they are (not its scale, build recipe, pull policy or profiles), so `up`
//! can tell a changed service (recreate) from an unchanged one (up-to-date).
use sha2::{Digest, Sha256};

use super::model::Service;

pub fn config_hash(s: &Service) -> String {
    let mut value = serde_json::to_value(s).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        for key in ["build", "pull_policy", "profiles"] {
            map.remove(key);
        }
        // Dependencies matter for ordering, not for what a container is.
        if let Some(deps) = map.get_mut("depends_on").and_then(|d| d.as_object_mut()) {
            for d in deps.values_mut() {
                *d = serde_json::Value::Null;
            }
        }
    }
    // serde_json sorts nothing, but the model's maps are BTreeMaps and fields are in order.
    let bytes = serde_json::to_vec(&value).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_with_config_not_with_scale() {
        let a = Service {
            image: Some("busybox".into()),
            ..Default::default()
        };
        let mut b = a.clone();
        b.scale = Some(3);
        assert_eq!(config_hash(&a), config_hash(&b));
        b.command = Some(vec!["true".into()]);
        assert_ne!(config_hash(&a), config_hash(&b));
    }
}
