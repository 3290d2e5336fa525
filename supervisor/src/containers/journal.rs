//! Docker's event stream (`GET /events`): the containers' lifecycle events (create, start,
//! kill, die, stop, restart, rename, pause, unpause, destroy, exec_create, exec_start), the
//! last [`KEEP`] kept for `since`, and broadcast to the followers.
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::record::Container;

/// How many past events `since` can reach (dockerd keeps as many).
pub const KEEP: usize = 1024;

/// One event.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: &'static str,
    pub action: String,
    pub id: String,
    /// The image (`from`), for container events.
    pub from: String,
    pub attributes: BTreeMap<String, String>,
    pub time_nano: i64,
}

impl Event {
    /// A container event: its labels, `image` and `name`, plus `extra`.
    pub fn container(c: &Container, action: &str, extra: &[(&str, String)]) -> Event {
        let mut attributes = BTreeMap::new();
        if let Some(labels) = c.config["Labels"].as_object() {
            for (k, v) in labels {
                attributes.insert(k.clone(), v.as_str().unwrap_or("").to_string());
            }
        }
        attributes.insert("image".into(), c.image.clone());
        attributes.insert("name".into(), c.name.clone());
        for (k, v) in extra {
            attributes.insert(k.to_string(), v.clone());
        }
        Event {
            kind: "container",
            action: action.to_string(),
            id: c.id.clone(),
            from: c.image.clone(),
            attributes,
            time_nano: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
        }
    }

    /// Docker's JSON (with the old `status`/`id`/`from` fields).
    pub fn to_json(&self) -> Value {
        json!({
            "status": self.action,
            "id": self.id,
            "from": self.from,
            "Type": self.kind,
            "Action": self.action,
            "Actor": { "ID": self.id, "Attributes": self.attributes },
            "scope": "local",
            "time": self.time_nano / 1_000_000_000,
            "timeNano": self.time_nano,
        })
    }
}

/// The recent events and their followers.
pub struct Journal {
    recent: Mutex<VecDeque<Event>>,
    tx: broadcast::Sender<Event>,
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            recent: Mutex::new(VecDeque::with_capacity(KEEP)),
            tx: broadcast::Sender::new(256),
        }
    }
}

impl Journal {
    fn recent(&self) -> std::sync::MutexGuard<'_, VecDeque<Event>> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn publish(&self, event: Event) {
        let mut recent = self.recent();
        if recent.len() == KEEP {
            recent.pop_front();
        }
        recent.push_back(event.clone());
        // Under the lock: a subscriber sees each event once, in the past or in the stream.
        let _ = self.tx.send(event);
    }

    /// The kept events at or after `since_nano`, and a receiver of the ones after them.
    pub fn subscribe(&self, since_nano: Option<i64>) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let recent = self.recent();
        let past = match since_nano {
            Some(t) => recent
                .iter()
                .filter(|e| e.time_nano >= t)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        (past, self.tx.subscribe())
    }
}

/// `filters={"type":["container"],"event":["start"],"container":["web"],...}`: different
/// keys must all match, one of the values of a key.
#[derive(Debug, Default)]
pub struct Filter(HashMap<String, Vec<String>>);

#[derive(Debug, thiserror::Error)]
#[error("invalid filter '{0}'")]
pub struct BadFilter(pub String);

impl Filter {
    pub fn parse(filters: Option<&str>) -> Result<Filter, BadFilter> {
        let Some(text) = filters.filter(|t| !t.is_empty()) else {
            return Ok(Filter::default());
        };
        let v: Value = serde_json::from_str(text).map_err(|_| BadFilter(text.to_string()))?;
        let mut map = HashMap::new();
        for (key, values) in v.as_object().into_iter().flatten() {
            if !matches!(
                key.as_str(),
                "type" | "event" | "container" | "image" | "label" | "scope"
            ) {
                return Err(BadFilter(key.clone()));
            }
            // Docker's two encodings: {"k": ["v"]} and {"k": {"v": true}}.
            let list: Vec<String> = match values {
                Value::Array(a) => a
                    .iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect(),
                Value::Object(o) => o.keys().cloned().collect(),
                _ => Vec::new(),
            };
            map.insert(key.clone(), list);
        }
        Ok(Filter(map))
    }

    pub fn matches(&self, e: &Event) -> bool {
        self.0.iter().all(|(key, values)| {
            values.iter().any(|v| match key.as_str() {
                "type" => v == e.kind,
                "event" => e.action == *v || e.action.split(':').next() == Some(v.as_str()),
                "container" => e.id.starts_with(v.as_str()) || e.attributes.get("name") == Some(v),
                "image" => e.from == *v || e.attributes.get("image") == Some(v),
                "label" => match v.split_once('=') {
                    Some((k, val)) => e.attributes.get(k).map(String::as_str) == Some(val),
                    None => e.attributes.contains_key(v),
                },
                "scope" => v == "local",
                _ => false,
            })
        })
    }
}

/// Docker's `since`/`until`: unix seconds, with an optional fraction (`1700000000.5`).
pub fn parse_time(s: &str) -> Option<i64> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos = 0i64;
    if !frac.is_empty() {
        let digits: String = frac.chars().chain("000000000".chars()).take(9).collect();
        nanos = digits.parse().ok()?;
    }
    Some(secs * 1_000_000_000 + nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str, name: &str) -> Event {
        let mut attributes = BTreeMap::new();
        attributes.insert("name".to_string(), name.to_string());
        attributes.insert("image".to_string(), "busybox".to_string());
        attributes.insert("tier".to_string(), "web".to_string());
        Event {
            kind: "container",
            action: action.into(),
            id: "abcdef".into(),
            from: "busybox".into(),
            attributes,
            time_nano: 5,
        }
    }

    #[test]
    fn filters_as_docker_s() {
        let f = |s: &str| Filter::parse(Some(s)).unwrap();
        let e = event("start", "web");
        assert!(f(r#"{"event":["start","die"]}"#).matches(&e));
        assert!(!f(r#"{"event":["die"]}"#).matches(&e));
        assert!(f(r#"{"container":{"web":true},"type":["container"]}"#).matches(&e));
        assert!(f(r#"{"container":["abc"]}"#).matches(&e));
        assert!(!f(r#"{"container":["db"]}"#).matches(&e));
        assert!(f(r#"{"label":["tier=web"]}"#).matches(&e));
        assert!(f(r#"{"label":["tier"]}"#).matches(&e));
        assert!(!f(r#"{"label":["tier=db"]}"#).matches(&e));
        assert!(f(r#"{"event":["exec_start"]}"#).matches(&event("exec_start: sh -c x", "web")));
        assert_eq!(
            Filter::parse(Some(r#"{"colour":["red"]}"#))
                .unwrap_err()
                .to_string(),
            "invalid filter 'colour'"
        );
    }

    #[test]
    fn since_reaches_kept_events_and_the_stream_the_new_ones() {
        let j = Journal::default();
        j.publish(event("create", "a"));
        let (past, mut rx) = j.subscribe(Some(0));
        assert_eq!(past.len(), 1);
        j.publish(event("start", "a"));
        assert_eq!(rx.try_recv().unwrap().action, "start");
        assert!(j.subscribe(None).0.is_empty());
    }

    #[test]
    fn docker_times() {
        assert_eq!(parse_time("12"), Some(12_000_000_000));
        assert_eq!(parse_time("12.5"), Some(12_500_000_000));
        assert_eq!(parse_time("12.000000001"), Some(12_000_000_001));
        assert_eq!(parse_time("x"), None);
    }
}
