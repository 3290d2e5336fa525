//! Service dependencies (`depends_on`, `links`, `network_mode: service:x`): the start order,
//! and cycles refused naming the services in them.
use std::collections::{BTreeMap, BTreeSet};

use super::model::Service;
use super::Error;

/// The services `s` depends on, by name.
pub fn dependencies(s: &Service) -> BTreeSet<String> {
    let mut deps: BTreeSet<String> = s.depends_on.keys().cloned().collect();
    if let Some(other) = s
        .network_mode
        .as_deref()
        .and_then(|m| m.strip_prefix("service:"))
    {
        deps.insert(other.to_string());
    }
    deps
}

/// Names in an order where each comes after its dependencies (ties by name).
pub fn start_order(services: &BTreeMap<String, Service>) -> Result<Vec<String>, Error> {
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut order = Vec::new();
    while order.len() < services.len() {
        let ready: Vec<String> = services
            .iter()
            .filter(|(name, _)| !done.contains(*name))
            .filter(|(_, s)| {
                dependencies(s)
                    .iter()
                    .all(|d| done.contains(d) || !services.contains_key(d))
            })
            .map(|(name, _)| name.clone())
            .collect();
        if ready.is_empty() {
            return Err(Error::Project(format!(
                "dependency cycle between services: {}",
                cycle(services, &done).join(" -> ")
            )));
        }
        for name in ready {
            done.insert(name.clone());
            order.push(name);
        }
    }
    Ok(order)
}

/// One cycle among the services not yet ordered, first name repeated at the end.
fn cycle(services: &BTreeMap<String, Service>, done: &BTreeSet<String>) -> Vec<String> {
    let start = services.keys().find(|n| !done.contains(*n)).cloned();
    let Some(mut at) = start else {
        return Vec::new();
    };
    let mut path: Vec<String> = Vec::new();
    loop {
        if let Some(i) = path.iter().position(|p| *p == at) {
            let mut c = path[i..].to_vec();
            c.push(at);
            return c;
        }
        path.push(at.clone());
        let next = services[&at]
            .depends_on
            .keys()
            .chain(dependencies(&services[&at]).iter())
            .find(|d| services.contains_key(*d) && !done.contains(*d))
            .cloned();
        match next {
            Some(n) => at = n,
            None => return path,
        }
    }
}

/// `names` and everything they depend on, transitively.
pub fn with_dependencies(
    services: &BTreeMap<String, Service>,
    names: &[String],
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo: Vec<String> = names.to_vec();
    while let Some(n) = todo.pop() {
        if !out.insert(n.clone()) {
            continue;
        }
        if let Some(s) = services.get(&n) {
            todo.extend(dependencies(s));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::model::Dependency;

    fn svc(deps: &[&str]) -> Service {
        Service {
            depends_on: deps
                .iter()
                .map(|d| {
                    (
                        d.to_string(),
                        Dependency {
                            condition: "service_started".into(),
                            required: true,
                        },
                    )
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn orders_by_dependencies() {
        let s: BTreeMap<_, _> = [
            ("web", svc(&["db"])),
            ("db", svc(&[])),
            ("a", svc(&["web"])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(start_order(&s).unwrap(), vec!["db", "web", "a"]);
        let deps = with_dependencies(&s, &["a".to_string()]);
        assert_eq!(deps.len(), 3);
    }

    #[test]
    fn cycles_are_named() {
        let s: BTreeMap<_, _> = [("a", svc(&["b"])), ("b", svc(&["c"])), ("c", svc(&["a"]))]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let e = start_order(&s).unwrap_err().to_string();
        assert!(
            e.contains("dependency cycle") && e.contains("a -> b -> c -> a"),
            "{e}"
        );
    }
}
