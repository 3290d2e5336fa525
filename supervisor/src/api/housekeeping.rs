//! `GET /system/df` and `POST /build/prune`: docker's disk-usage document and build-cache
//! prune; the `until` filter of every prune, read as dockerd reads it.
use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use serde_json::{json, Value};

use super::images::{check_filters, filters, flag, Params};
use super::ApiError;
use crate::build::cache;

/// dockerd's `until` value as unix seconds: [`crate::duration::timestamp`] (a Go duration
/// before now, an RFC 3339 time or date, unix seconds), with dockerd's message otherwise.
pub fn until(value: &str, now: i64) -> Result<i64, ApiError> {
    crate::duration::timestamp(value, now.saturating_mul(1_000_000_000))
        .map(|n| n.div_euclid(1_000_000_000))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "failed to parse value as time or duration: {value:?}"
            ))
        })
}

/// The `until` filter of a prune request as unix seconds (the first value, as dockerd).
pub fn until_filter(filters: &HashMap<String, Vec<String>>) -> Result<Option<i64>, ApiError> {
    let now = chrono::Utc::now().timestamp();
    filters
        .get("until")
        .and_then(|v| v.first())
        .map(|u| until(u, now))
        .transpose()
}

/// Whether `labels` (an image's or container's `Labels`) carries `filter` (`k` or `k=v`).
pub fn labelled(labels: &Value, filter: &str) -> bool {
    let (k, v) = filter.split_once('=').unwrap_or((filter, ""));
    match &labels[k] {
        Value::String(have) => !filter.contains('=') || have == v,
        _ => false,
    }
}

/// Whether `labels` passes `label=` (all match) and `label!=` (none matches).
pub fn label_filters_pass(filters: &HashMap<String, Vec<String>>, labels: &Value) -> bool {
    let want = filters.get("label").into_iter().flatten();
    let refuse = filters.get("label!").into_iter().flatten();
    want.clone().all(|l| labelled(labels, l)) && !refuse.clone().any(|l| labelled(labels, l))
}

/// `GET /system/df`.
pub async fn disk_usage(State(state): State<super::State>) -> Result<Json<Value>, ApiError> {
    let containers = state.containers.list().await;
    let mut users: HashMap<String, usize> = HashMap::new();
    for c in &containers {
        *users.entry(c.image_id.clone()).or_default() += 1;
    }
    let images = state.images.clone();
    let volumes = state.volumes.clone();
    let doc = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let (listed, layers_size) = crate::usage::images(&images, &users)?;
        let image_sizes: HashMap<String, u64> = listed
            .iter()
            .map(|u| (u.image.id.clone(), u.size))
            .collect();
        let images_json: Vec<Value> = listed
            .iter()
            .map(|u| {
                let mut v = images.summary(&u.image);
                if u.image.repo_tags().is_empty() && u.image.repo_digests().is_empty() {
                    v["RepoTags"] = json!(["<none>:<none>"]);
                    v["RepoDigests"] = json!(["<none>@<none>"]);
                }
                v["Size"] = json!(u.size);
                v["VirtualSize"] = json!(u.size);
                v["SharedSize"] = json!(u.shared);
                v["Containers"] = json!(u.containers);
                v
            })
            .collect();
        let containers_json: Vec<Value> = containers
            .iter()
            .map(|c| {
                let rw = crate::usage::writable_layer(&images, &c.snapshot_key());
                let mut v = super::containers::summary(c);
                v["SizeRw"] = json!(rw);
                v["SizeRootFs"] = json!(rw + image_sizes.get(&c.image_id).copied().unwrap_or(0));
                v
            })
            .collect();
        let mut volumes_json = Vec::new();
        for v in volumes.list().map_err(volume_error)? {
            let mut j = v.to_json(&volumes.mountpoint(&v.name));
            j["UsageData"] = json!({
                "Size": volumes.size(&v),
                "RefCount": volumes.users(&v.name).len(),
            });
            volumes_json.push(j);
        }
        let entries = cache::entries(&images)?;
        let builder_size: u64 = entries.iter().filter(|e| !e.shared).map(|e| e.size).sum();
        let cache_json: Vec<Value> = entries.iter().map(cache_entry_json).collect();
        Ok(json!({
            "LayersSize": layers_size,
            "Images": images_json,
            "Containers": containers_json,
            "Volumes": volumes_json,
            "BuildCache": cache_json,
            "BuilderSize": builder_size,
        }))
    })
    .await
    .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(Json(doc))
}

fn volume_error(e: crate::volumes::Error) -> ApiError {
    let status = axum::http::StatusCode::from_u16(e.status())
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    ApiError::new(status, e.to_string())
}

fn rfc3339(unix: u64) -> String {
    chrono::DateTime::from_timestamp(unix as i64, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Docker's `BuildCache` entry for a step of the classic builder's cache.
fn cache_entry_json(e: &cache::Entry) -> Value {
    json!({
        "ID": e.id,
        "Parent": "",
        "Parents": null,
        "Type": "regular",
        "Description": e.description,
        "InUse": false,
        "Shared": e.shared,
        "Size": e.size,
        "CreatedAt": rfc3339(e.updated),
        "LastUsedAt": rfc3339(e.updated),
        "UsageCount": 1,
    })
}

/// `POST /build/prune?all=&filters=`: every build-cache entry (`until=`, `label=`,
/// `label!=` narrow it; `all` is accepted: the classic cache has no dangling/in-use split).
pub async fn build_prune(
    State(state): State<super::State>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let filters = filters(&params)?;
    check_filters(&filters, &["until", "label", "label!"])?;
    let _all = flag(&params, "all");
    let until = until_filter(&filters)?;
    let (ids, bytes) = cache::prune(&state.images, |e| {
        until.is_none_or(|u| (e.updated as i64) < u) && label_filters_pass(&filters, &e.labels)
    })
    .await?;
    Ok(Json(json!({
        "CachesDeleted": if ids.is_empty() { Value::Null } else { json!(ids) },
        "SpaceReclaimed": bytes,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_reads_durations_times_and_unix_seconds() {
        let now = 1_700_000_000;
        assert_eq!(until("24h", now).unwrap(), now - 86_400);
        assert_eq!(until("1h30m", now).unwrap(), now - 5_400);
        assert_eq!(until("1.5h", now).unwrap(), now - 5_400);
        assert_eq!(until("90s", now).unwrap(), now - 90);
        assert_eq!(until("1699999000", now).unwrap(), 1_699_999_000);
        assert_eq!(until("1699999000.5", now).unwrap(), 1_699_999_000);
        assert_eq!(until("2023-11-14T22:13:20Z", now).unwrap(), 1_700_000_000);
        assert_eq!(until("2023-11-14T22:13:20", now).unwrap(), 1_700_000_000);
        assert_eq!(until("2023-11-14", now).unwrap(), 1_699_920_000);
        assert_eq!(
            until("10x", now).unwrap_err().message,
            "failed to parse value as time or duration: \"10x\""
        );
        assert!(until("2023-13-40", now).is_err());
    }

    #[test]
    fn label_filters_as_docker() {
        let labels = json!({"a": "1", "b": ""});
        let f = |pairs: &[(&str, &str)]| {
            let mut m: HashMap<String, Vec<String>> = HashMap::new();
            for (k, v) in pairs {
                m.entry(k.to_string()).or_default().push(v.to_string());
            }
            m
        };
        assert!(label_filters_pass(&f(&[("label", "a")]), &labels));
        assert!(label_filters_pass(
            &f(&[("label", "a=1"), ("label", "b")]),
            &labels
        ));
        assert!(!label_filters_pass(&f(&[("label", "a=2")]), &labels));
        assert!(!label_filters_pass(&f(&[("label!", "b")]), &labels));
        assert!(label_filters_pass(&f(&[("label!", "c")]), &labels));
        assert!(!label_filters_pass(&f(&[("label", "a")]), &Value::Null));
    }
}
