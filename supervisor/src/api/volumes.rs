//! Volume routes: `GET /volumes`, `POST /volumes/create`, `GET|DELETE /volumes/{name}`,
//! `POST /volumes/prune` — docker's JSON in and out, the work in [`crate::volumes`].
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::images::{check_filters, filters, flag, Params};
use super::{ApiError, ApiVersion};
use crate::volumes::service::{self, CreateOptions, PruneFilter};
use crate::volumes::{Volume, VolumeService};

impl From<service::Error> for ApiError {
    fn from(e: service::Error) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::new(status, e.to_string())
    }
}

/// Runs a volume-service call on a blocking thread (directories and redb).
async fn blocking<T: Send + 'static>(
    volumes: &Arc<VolumeService>,
    f: impl FnOnce(&VolumeService) -> Result<T, service::Error> + Send + 'static,
) -> Result<T, ApiError> {
    let volumes = volumes.clone();
    tokio::task::spawn_blocking(move || f(&volumes))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

fn volume_json(volumes: &VolumeService, v: &Volume) -> Value {
    v.to_json(&volumes.mountpoint(&v.name))
}

/// docker's `true`/`false`/`1`/`0` of a boolean filter.
fn bool_filter(key: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "Invalid filter '{key}={value}'"
        ))),
    }
}

/// Whether `v` passes the list filters (each key: any of its values).
fn listed(
    v: &Volume,
    used: bool,
    filters: &HashMap<String, Vec<String>>,
) -> Result<bool, ApiError> {
    for (key, values) in filters {
        let pass = match key.as_str() {
            "dangling" => {
                let mut any = false;
                for value in values {
                    any |= bool_filter(key, value)? != used;
                }
                any
            }
            "name" => values.iter().any(|n| v.name.contains(n.as_str())),
            "driver" => values.iter().any(|d| &v.driver == d),
            "label" => values.iter().all(|l| service::has_label(v, l)),
            _ => true,
        };
        if !pass {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `GET /volumes?filters=`.
pub async fn list(
    State(state): State<super::State>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let filters = filters(&params)?;
    check_filters(&filters, &["dangling", "name", "driver", "label"])?;
    let volumes = state.volumes.clone();
    let all = blocking(&volumes, |s| s.list()).await?;
    let mut out = Vec::new();
    for v in &all {
        let used = !volumes.users(&v.name).is_empty();
        if listed(v, used, &filters)? {
            out.push(volume_json(&volumes, v));
        }
    }
    Ok(Json(json!({ "Volumes": out, "Warnings": Value::Null })))
}

/// docker's `volume.CreateOptions`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateBody {
    name: Option<String>,
    driver: Option<String>,
    driver_opts: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

/// `POST /volumes/create`.
pub async fn create(
    State(state): State<super::State>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: CreateBody = if body.is_empty() {
        CreateBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    let opts = CreateOptions {
        name: body.name.unwrap_or_default(),
        driver: body.driver.unwrap_or_default(),
        labels: Some(body.labels.unwrap_or_default()),
        options: body.driver_opts,
        anonymous: false,
    };
    let volumes = state.volumes.clone();
    let v = blocking(&volumes, move |s| s.create(opts)).await?;
    Ok((StatusCode::CREATED, Json(volume_json(&volumes, &v))).into_response())
}

/// `GET /volumes/{name}`.
pub async fn inspect(
    State(state): State<super::State>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let volumes = state.volumes.clone();
    let v = blocking(&volumes, move |s| s.get(&name)).await?;
    Ok(Json(volume_json(&volumes, &v)))
}

/// `DELETE /volumes/{name}?force=`.
pub async fn remove(
    State(state): State<super::State>,
    Path(name): Path<String>,
    Query(params): Params,
) -> Result<StatusCode, ApiError> {
    let force = flag(&params, "force");
    blocking(&state.volumes, move |s| s.remove(&name, force)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The prune filter of a request: before API 1.42 every unused volume, from 1.42 only the
/// anonymous ones unless `all=true` (docker's rule).
pub fn prune_filter(
    filters: &HashMap<String, Vec<String>>,
    version: &str,
) -> Result<PruneFilter, ApiError> {
    let named_too = super::version_key(version) < super::version_key("1.42");
    let known: &[&str] = if named_too {
        &["label", "label!"]
    } else {
        &["label", "label!", "all"]
    };
    check_filters(filters, known)?;
    let mut all = named_too;
    for value in filters.get("all").into_iter().flatten() {
        all |= bool_filter("all", value)?;
    }
    Ok(PruneFilter {
        all,
        labels: filters.get("label").cloned().unwrap_or_default(),
        not_labels: filters.get("label!").cloned().unwrap_or_default(),
    })
}

/// `POST /volumes/prune?filters=`.
pub async fn prune(
    State(state): State<super::State>,
    Extension(ApiVersion(version)): Extension<ApiVersion>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let filter = prune_filter(&filters(&params)?, &version)?;
    let (removed, bytes) = blocking(&state.volumes, move |s| s.prune(&filter)).await?;
    Ok(Json(json!({
        "VolumesDeleted": if removed.is_empty() { Value::Null } else { json!(removed) },
        "SpaceReclaimed": bytes,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in pairs {
            m.entry(k.to_string()).or_default().push(v.to_string());
        }
        m
    }

    #[test]
    fn prune_rule_depends_on_the_api_version() {
        assert!(prune_filter(&f(&[]), "1.41").unwrap().all);
        assert!(!prune_filter(&f(&[]), "1.42").unwrap().all);
        assert!(prune_filter(&f(&[("all", "true")]), "1.43").unwrap().all);
        let e = prune_filter(&f(&[("all", "true")]), "1.41").unwrap_err();
        assert_eq!(e.message, "Invalid filter 'all'");
        let e = prune_filter(&f(&[("until", "1h")]), "1.41").unwrap_err();
        assert_eq!(e.message, "Invalid filter 'until'");
    }
}
