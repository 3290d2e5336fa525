//! Docker's naming conventions for a project's objects and labels, shared with docker-compose.

pub const PROJECT: &str = "com.docker.compose.project";
pub const SERVICE: &str = "com.docker.compose.service";
pub const NUMBER: &str = "com.docker.compose.container-number";
pub const ONEOFF: &str = "com.docker.compose.oneoff";
pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
pub const VERSION: &str = "com.docker.compose.version";
pub const NETWORK: &str = "com.docker.compose.network";
pub const VOLUME: &str = "com.docker.compose.volume";
pub const IMAGE: &str = "com.docker.compose.image";
pub const DEPENDS_ON: &str = "com.docker.compose.depends_on";

/// The compose version berth writes in its labels.
pub const COMPOSE_VERSION: &str = "2.24.0";

/// Like docker compose: lower case, only `a-z0-9_-`, starting with a letter or digit.
pub fn normalize_project(name: &str) -> String {
    let lower: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    lower.trim_start_matches(['_', '-']).to_string()
}

/// A container's name: `P-S-N` (compose v2); a one-off run: `P-S-run-ID`.
pub fn container(project: &str, service: &str, number: u32) -> String {
    format!("{project}-{service}-{number}")
}

/// The number in `P-S-N` or docker-compose 1.29's `P_S_N`, for a container of this service.
pub fn number_from_name(project: &str, service: &str, name: &str) -> Option<u32> {
    let name = name.trim_start_matches('/');
    [
        format!("{project}-{service}-"),
        format!("{project}_{service}_"),
    ]
    .iter()
    .find_map(|prefix| name.strip_prefix(prefix.as_str())?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names() {
        assert_eq!(normalize_project("My App.v2"), "myappv2");
        assert_eq!(normalize_project("_-x_y-"), "x_y-");
        assert_eq!(normalize_project("..."), "");
    }

    #[test]
    fn container_names_both_styles() {
        assert_eq!(container("p", "web", 2), "p-web-2");
        assert_eq!(number_from_name("p", "web", "/p-web-3"), Some(3));
        assert_eq!(number_from_name("p", "web", "p_web_4"), Some(4));
        assert_eq!(number_from_name("p", "web", "p-db-1"), None);
    }
}
