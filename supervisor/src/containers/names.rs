//! Container names: the index name → id, and generated `adjective_noun` names.
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Names(Mutex<HashMap<String, String>>);

impl Names {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn lookup(&self, name: &str) -> Option<String> {
        self.map().get(name).cloned()
    }

    pub fn reserve(&self, name: &str, id: &str) {
        self.map().insert(name.to_string(), id.to_string());
    }

    pub fn release(&self, name: &str) {
        self.map().remove(name);
    }

    /// A free generated name.
    pub fn generate(&self) -> String {
        loop {
            let name = random_name();
            if self.lookup(&name).is_none() {
                return name;
            }
        }
    }
}

const ADJECTIVES: [&str; 24] = [
    "brave", "calm", "clever", "eager", "fair", "gentle", "happy", "keen", "kind", "lively",
    "lucid", "merry", "nimble", "patient", "proud", "quick", "quiet", "sharp", "steady", "sunny",
    "swift", "tidy", "vivid", "witty",
];

const NOUNS: [&str; 24] = [
    "anchor", "beacon", "buoy", "cabin", "capstan", "compass", "dinghy", "dock", "ferry", "galley",
    "harbor", "hull", "jetty", "keel", "lantern", "mast", "mooring", "pier", "quay", "rudder",
    "sail", "schooner", "tiller", "wharf",
];

fn random_name() -> String {
    let mut b = [0u8; 3];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    format!(
        "{}_{}{}",
        ADJECTIVES[b[0] as usize % ADJECTIVES.len()],
        NOUNS[b[1] as usize % NOUNS.len()],
        b[2] % 100
    )
}
