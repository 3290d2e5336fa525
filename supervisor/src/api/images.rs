//! Image routes answered with one JSON document: list, inspect, history, tag, remove, prune.
//! Names may contain `/`, `:` and `@`, so `/images/{*name}` is split on its action suffix.
use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{stream, ApiError};
use crate::images::service::{Image, Removed};

pub type Params = Query<HashMap<String, String>>;

/// A boolean query parameter the way dockerd reads it (`1`, `true`, `True`).
pub fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// Docker's `filters` parameter: `{"name":{"value":true}}` or `{"name":["value"]}`.
pub fn filters(params: &HashMap<String, String>) -> Result<HashMap<String, Vec<String>>, ApiError> {
    let Some(raw) = params.get("filters").filter(|r| !r.is_empty()) else {
        return Ok(HashMap::new());
    };
    let value: Value = serde_json::from_str(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
    let mut out = HashMap::new();
    for (key, values) in value.as_object().into_iter().flatten() {
        let list: Vec<String> = match values {
            Value::Object(map) => map.keys().cloned().collect(),
            Value::Array(items) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => return Err(ApiError::bad_request(format!("invalid filter '{key}'"))),
        };
        out.insert(key.clone(), list);
    }
    Ok(out)
}

/// Refuses a filter this endpoint does not know, as dockerd does.
pub fn check_filters(
    filters: &HashMap<String, Vec<String>>,
    known: &[&str],
) -> Result<(), ApiError> {
    match filters.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(ApiError::bad_request(format!("Invalid filter '{unknown}'"))),
        None => Ok(()),
    }
}

/// `GET /images/json`.
pub async fn list(
    State(state): State<super::State>,
    Query(params): Params,
) -> Result<Json<Vec<Value>>, ApiError> {
    let filters = filters(&params)?;
    check_filters(
        &filters,
        &["dangling", "label", "before", "since", "reference"],
    )?;
    let dangling = match filters.get("dangling").and_then(|v| v.first()) {
        None => None,
        Some(v) if v == "true" || v == "1" => Some(true),
        Some(v) if v == "false" || v == "0" => Some(false),
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "invalid filter 'dangling={v}'"
            )))
        }
    };
    let patterns = filters.get("reference").cloned().unwrap_or_default();
    let all = flag(&params, "all");
    let mut out = Vec::new();
    for image in state.images.images()? {
        // A build's intermediate images, as dockerd's, only with `-a`.
        if image.is_build_cache() && !all {
            continue;
        }
        let tags = image.repo_tags();
        if dangling.is_some_and(|d| d != tags.is_empty()) {
            continue;
        }
        if !patterns.is_empty() && !matches_reference(&patterns, &tags) {
            continue;
        }
        out.push(list_entry(&state, &image));
    }
    Ok(Json(out))
}

fn list_entry(state: &super::State, image: &Image) -> Value {
    let mut entry = state.images.summary(image);
    if image.repo_tags().is_empty() && image.repo_digests().is_empty() {
        entry["RepoTags"] = json!(["<none>:<none>"]);
        entry["RepoDigests"] = json!(["<none>@<none>"]);
    }
    entry
}

/// Docker's reference filter: a glob against `name:tag` or against `name`.
fn matches_reference(patterns: &[String], tags: &[String]) -> bool {
    tags.iter().any(|tag| {
        let name = tag.rsplit_once(':').map(|(n, _)| n).unwrap_or(tag);
        patterns
            .iter()
            .any(|p| glob(p.as_bytes(), tag.as_bytes()) || glob(p.as_bytes(), name.as_bytes()))
    })
}

/// `path.Match`-like glob: `*` matches any run of bytes but `/`, `?` one byte but `/`, any
/// other byte itself. Iterative, O(pattern × text): on a mismatch only the latest `*` takes
/// one more byte. Earlier stars never need to: matching each star's following literals as
/// early as possible leaves the most text, and a `*` cannot take a `/` anyway.
pub fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // The latest `*`'s position in the pattern and the text position it has reached.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(b'?') if text[t] != b'/' => {
                p += 1;
                t += 1;
            }
            Some(&c) if c != b'*' && c != b'?' && c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) if text[st] != b'/' => {
                    star = Some((sp, st + 1));
                    p = sp + 1;
                    t = st + 1;
                }
                _ => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// `GET /images/{name}/json|history|get`.
pub async fn get_action(
    State(state): State<super::State>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    if let Some(name) = path.strip_suffix("/json") {
        let image = state.images.resolve(name)?;
        return Ok(Json(state.images.inspect(&image)).into_response());
    }
    if let Some(name) = path.strip_suffix("/history") {
        let image = state.images.resolve(name)?;
        return Ok(Json(state.images.history(&image)).into_response());
    }
    if let Some(name) = path.strip_suffix("/get") {
        return stream::save(state, vec![name.to_string()]).await;
    }
    Err(ApiError::new(StatusCode::NOT_FOUND, "page not found"))
}

/// `POST /images/{name}/tag|push`.
pub async fn post_action(
    State(state): State<super::State>,
    Path(path): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tag = params.get("tag").cloned().unwrap_or_default();
    if let Some(name) = path.strip_suffix("/tag") {
        let repo = params.get("repo").cloned().unwrap_or_default();
        if repo.is_empty() {
            return Err(ApiError::bad_request(
                "repository name must have at least one component",
            ));
        }
        let target = if tag.is_empty() {
            repo
        } else {
            format!("{repo}:{tag}")
        };
        state.images.tag(name, &target)?;
        return Ok((StatusCode::CREATED, Body::empty()).into_response());
    }
    if let Some(name) = path.strip_suffix("/push") {
        let auth = stream::registry_auth(&headers)?;
        return Ok(stream::push(state, name.to_string(), tag, auth).await);
    }
    Err(ApiError::new(StatusCode::NOT_FOUND, "page not found"))
}

/// `name` with `tag` (a tag, or a digest when it starts with `sha256:`) appended.
pub fn with_tag(name: &str, tag: &str) -> String {
    match tag {
        "" => name.to_string(),
        t if t.contains(':') => format!("{name}@{t}"),
        t => format!("{name}:{t}"),
    }
}

/// `DELETE /images/{name}`.
pub async fn remove(
    State(state): State<super::State>,
    Path(name): Path<String>,
    Query(params): Params,
) -> Result<Json<Vec<Value>>, ApiError> {
    let force = flag(&params, "force");
    let users = match state.images.resolve(&name) {
        Ok(image) => state.containers.image_users(&image.id).await,
        Err(_) => Vec::new(),
    };
    let removed = match state.images.remove_in_use(&name, force, &users)? {
        Some(untagged) => untagged,
        None => state.images.remove(&name, force).await?,
    };
    Ok(Json(removed.iter().map(removed_json).collect()))
}

fn removed_json(removed: &Removed) -> Value {
    match removed {
        Removed::Untagged(name) => json!({ "Untagged": name }),
        Removed::Deleted(id) => json!({ "Deleted": id }),
    }
}

/// `POST /images/prune`: dangling images, or all unused ones with `dangling=false`.
pub async fn prune(
    State(state): State<super::State>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let filters = filters(&params)?;
    check_filters(&filters, &["dangling", "label", "label!", "until"])?;
    let all = filters
        .get("dangling")
        .is_some_and(|v| v.iter().any(|d| d == "false" || d == "0"));
    let until = super::housekeeping::until_filter(&filters)?;
    let in_use: std::collections::HashSet<String> = state
        .containers
        .list()
        .await
        .into_iter()
        .map(|c| c.image_id)
        .collect();
    let spare = |image: &Image| {
        in_use.contains(&image.id)
            || until.is_some_and(|u| image.created() >= u)
            || !super::housekeeping::label_filters_pass(&filters, &image.config["config"]["Labels"])
    };
    let (removed, bytes) = state.images.prune(all, spare).await?;
    let deleted: Vec<Value> = removed.iter().map(removed_json).collect();
    Ok(Json(json!({
        "ImagesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) },
        "SpaceReclaimed": bytes,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_like_go_path_match() {
        assert!(glob(b"busybox", b"busybox"));
        assert!(glob(b"busy*", b"busybox"));
        assert!(glob(b"*:v1", b"app:v1"));
        assert!(!glob(b"*", b"127.0.0.1:5000/app"));
        assert!(glob(b"*/*", b"127.0.0.1:5000/app"));
        assert!(!glob(b"busybox", b"busybox:latest"));
    }

    #[test]
    fn glob_edge_cases() {
        assert!(glob(b"", b""));
        assert!(!glob(b"", b"a"));
        assert!(glob(b"*", b""));
        assert!(glob(b"**", b"abc"));
        assert!(glob(b"a?c", b"abc"));
        assert!(!glob(b"a?c", b"a/c"));
        assert!(!glob(b"a*c", b"a/c"));
        assert!(glob(b"a*/c", b"ab/c"));
        assert!(glob(b"*a*b", b"xaxxb"));
        assert!(!glob(b"*a*b", b"xa/xb"));
        assert!(glob(b"*/*:*", b"127.0.0.1:5000/app:v1"));
        assert!(!glob(b"*:*", b"127.0.0.1:5000/app:v1"));
        assert!(glob(b"*b", b"abab"));
        assert!(!glob(b"*b", b"aba"));
        assert!(glob(b"a*b*c", b"abbbc"));
    }

    /// The definition, by backtracking (exponential, fine for short inputs).
    fn glob_by_definition(pattern: &[u8], text: &[u8]) -> bool {
        match (pattern.first(), text.first()) {
            (None, None) => true,
            (Some(b'*'), _) => {
                glob_by_definition(&pattern[1..], text)
                    || (text.first().is_some_and(|&c| c != b'/')
                        && glob_by_definition(pattern, &text[1..]))
            }
            (Some(b'?'), Some(&c)) if c != b'/' => glob_by_definition(&pattern[1..], &text[1..]),
            (Some(p), Some(t)) if p == t => glob_by_definition(&pattern[1..], &text[1..]),
            _ => false,
        }
    }

    /// Every string of up to `max` bytes from `alphabet`.
    fn strings(alphabet: &[u8], max: usize) -> Vec<Vec<u8>> {
        let mut all = vec![Vec::new()];
        let mut last = vec![Vec::new()];
        for _ in 0..max {
            let next: Vec<Vec<u8>> = last
                .iter()
                .flat_map(|s: &Vec<u8>| {
                    alphabet.iter().map(move |&c| {
                        let mut longer = s.clone();
                        longer.push(c);
                        longer
                    })
                })
                .collect();
            all.extend(next.iter().cloned());
            last = next;
        }
        all
    }

    #[test]
    fn glob_agrees_with_the_definition() {
        let texts = strings(b"ab/", 5);
        for pattern in strings(b"ab/*?", 4) {
            for text in &texts {
                assert_eq!(
                    glob(&pattern, text),
                    glob_by_definition(&pattern, text),
                    "{:?} against {:?}",
                    String::from_utf8_lossy(&pattern),
                    String::from_utf8_lossy(text)
                );
            }
        }
    }

    #[test]
    fn glob_is_not_exponential() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let text = "a".repeat(200);
            let pattern = b"*a*a*a*a*a*a*a*a*b";
            let _ = tx.send(glob(pattern, text.as_bytes()));
        });
        let matched = rx.recv_timeout(std::time::Duration::from_secs(2));
        assert_eq!(matched, Ok(false), "a pathological pattern took too long");
    }

    #[test]
    fn reference_filter_matches_name_or_name_tag() {
        let tags = vec!["busybox:latest".to_string()];
        assert!(matches_reference(&["busybox".into()], &tags));
        assert!(matches_reference(&["busybox:latest".into()], &tags));
        assert!(!matches_reference(&["busybox:1".into()], &tags));
    }

    #[test]
    fn tags_and_digests_appended() {
        assert_eq!(with_tag("app", "v1"), "app:v1");
        assert_eq!(with_tag("app", ""), "app");
        assert_eq!(with_tag("app", "sha256:ab"), "app@sha256:ab");
    }

    #[test]
    fn filters_in_both_shapes() {
        let mut p = HashMap::new();
        p.insert("filters".into(), r#"{"dangling":{"true":true}}"#.into());
        assert_eq!(filters(&p).unwrap()["dangling"], vec!["true".to_string()]);
        p.insert("filters".into(), r#"{"reference":["a"]}"#.into());
        assert_eq!(filters(&p).unwrap()["reference"], vec!["a".to_string()]);
    }
}
