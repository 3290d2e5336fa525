//! Network routes: `/networks` (list with filters), `/networks/create`, `/networks/prune`,
//! `/networks/{id}` (inspect, delete), `/networks/{id}/connect|disconnect`.
use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::containers::parse_filters;
use super::ApiError;
use crate::containers::config::EndpointSettings;
use crate::network::service::{CreateRequest, Error};
use crate::network::Network;

type Params = Query<HashMap<String, String>>;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::new(status, e.to_string())
    }
}

/// `label=k` or `label=k=v` against a network's labels.
fn has_label(n: &Network, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => n.labels.get(k).is_some_and(|l| l == v),
        None => n.labels.contains_key(filter),
    }
}

/// Docker's network filters; an unknown one is refused.
fn matches(n: &Network, filters: &HashMap<String, Vec<String>>) -> Result<bool, ApiError> {
    for (key, values) in filters {
        let any = |f: &dyn Fn(&str) -> bool| values.is_empty() || values.iter().any(|v| f(v));
        let ok = match key.as_str() {
            "name" => any(&|v| n.name.contains(v)),
            "id" => any(&|v| n.id.starts_with(v)),
            "driver" => any(&|v| n.driver == v),
            "scope" => any(&|v| v == "local"),
            "label" => values.iter().all(|v| has_label(n, v)),
            "type" => any(&|v| match v {
                "custom" => n.is_custom(),
                "builtin" => !n.is_custom(),
                _ => false,
            }),
            "dangling" => any(&|v| {
                let dangling = n.is_custom() && n.endpoints.is_empty();
                matches!(v, "true" | "1") == dangling
            }),
            other => return Err(ApiError::bad_request(format!("Invalid filter '{other}'"))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

pub async fn list(
    State(state): State<super::State>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let filters = parse_filters(params.get("filters"))?;
    for (key, values) in &filters {
        if key == "type" {
            if let Some(v) = values
                .iter()
                .find(|v| !matches!(v.as_str(), "custom" | "builtin"))
            {
                return Err(ApiError::bad_request(format!(
                    "Invalid filter: 'type'='{v}'"
                )));
            }
        }
    }
    let mut out = Vec::new();
    for n in state.containers.networks.list() {
        if matches(&n, &filters)? {
            out.push(n.to_json(false));
        }
    }
    Ok(Json(Value::Array(out)))
}

pub async fn create(
    State(state): State<super::State>,
    Json(req): Json<CreateRequest>,
) -> Result<Response, ApiError> {
    let n = state.containers.networks.create(&req)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "Id": n.id, "Warning": "" })),
    )
        .into_response())
}

pub async fn inspect(
    State(state): State<super::State>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.containers.networks.find(&id)?.to_json(true)))
}

pub async fn remove(
    State(state): State<super::State>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.containers.networks.remove(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn prune(
    State(state): State<super::State>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let filters = parse_filters(params.get("filters"))?;
    for key in filters.keys() {
        if !matches!(key.as_str(), "label" | "label!" | "until") {
            return Err(ApiError::bad_request(format!("Invalid filter '{key}'")));
        }
    }
    let until = super::housekeeping::until_filter(&filters)?;
    let keep = |n: &Network| {
        let created = chrono::DateTime::parse_from_rfc3339(&n.created).map_or(0, |t| t.timestamp());
        if until.is_some_and(|u| created >= u) {
            return true;
        }
        let wanted = filters
            .get("label")
            .is_none_or(|ls| ls.iter().all(|l| has_label(n, l)));
        let spared = filters
            .get("label!")
            .is_some_and(|ls| ls.iter().any(|l| has_label(n, l)));
        !wanted || spared
    };
    let gone = state.containers.networks.prune(keep)?;
    let names: Vec<String> = gone.into_iter().map(|n| n.name).collect();
    Ok(Json(json!({ "NetworksDeleted": names })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConnectRequest {
    container: String,
    #[serde(default)]
    endpoint_config: Option<EndpointSettings>,
}

pub async fn connect(
    State(state): State<super::State>,
    Path(id): Path<String>,
    Json(req): Json<ConnectRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .containers
        .connect_network(&id, &req.container, req.endpoint_config.as_ref())
        .await?;
    Ok(StatusCode::OK)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DisconnectRequest {
    container: String,
    #[serde(default)]
    force: bool,
}

pub async fn disconnect(
    State(state): State<super::State>,
    Path(id): Path<String>,
    Json(req): Json<DisconnectRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .containers
        .disconnect_network(&id, &req.container, req.force)
        .await?;
    Ok(StatusCode::OK)
}

/// A container's `NetworkSettings`: its networks, and the default bridge's address at the top
/// level as docker shows it.
pub fn fill_settings(settings: &mut Value, state: &super::State, container_id: &str) {
    let networks = state.containers.network_settings(container_id);
    if let Some(bridge) = networks.get("bridge") {
        for key in [
            "EndpointID",
            "Gateway",
            "IPAddress",
            "IPPrefixLen",
            "MacAddress",
            "GlobalIPv6Address",
            "GlobalIPv6PrefixLen",
            "IPv6Gateway",
        ] {
            settings[key] = bridge[key].clone();
        }
        settings["Bridge"] = json!("");
    }
    settings["Networks"] = networks;
}
