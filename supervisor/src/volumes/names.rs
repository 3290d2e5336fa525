//! Volume names: docker's rule for the local driver, and random names for anonymous volumes.

/// docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// docker's words for a name the local driver refuses.
pub fn invalid_message(name: &str) -> String {
    format!(
        "{name:?} includes invalid characters for a local volume name, only \
         \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, \
         use absolute path"
    )
}

/// A new anonymous volume's name: 64 random hex digits, like docker's.
pub fn anonymous() -> String {
    crate::containers::service::random_hex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_name_rule() {
        for ok in ["ab", "data", "my_vol.1-x", "0a"] {
            assert!(valid(ok), "{ok}");
        }
        for bad in ["a", "", "bad/name", "-x", ".x", "_x", "a b", "a:b", "é1"] {
            assert!(!valid(bad), "{bad}");
        }
        assert_eq!(anonymous().len(), 64);
    }
}
