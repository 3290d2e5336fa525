//! Merging compose files (`-f a.yml -f b.yml`) and `extends`, with compose's rules: mappings
//! merge key by key, the later file's scalars win; `ports`, `expose`, `dns`, `cap_add`, … are
//! appended; `volumes` and `devices` merge by container path; `environment`, `labels`,
//! `sysctls`, `build.args`, `depends_on` and `networks` merge as mappings (their list forms are
//! turned into mappings first); `command`, `entrypoint` and every other list are replaced.
use super::yaml::{Mark, Node, Value};
use super::Error;

/// Lists that a later file appends to (without repeating an item).
const APPENDED: &[&str] = &[
    "ports",
    "expose",
    "dns",
    "dns_search",
    "dns_opt",
    "cap_add",
    "cap_drop",
    "tmpfs",
    "extra_hosts",
    "external_links",
    "security_opt",
    "env_file",
    "group_add",
    "links",
];

/// Lists of mounts, merged by their target path.
const BY_TARGET: &[&str] = &["volumes", "devices"];

/// List-or-mapping keys of a service, turned into mappings.
const KEYED: &[&str] = &["environment", "labels", "sysctls", "annotations"];

/// Turns the list forms of a service's keys into mapping forms, so files merge by key.
pub fn normalize_service(service: &mut Node) {
    if !matches!(service.value, Value::Map(_)) {
        return;
    }
    for key in KEYED {
        if let Some(n) = service.get_mut(key) {
            list_to_map(n, '=');
        }
    }
    if let Some(build) = service.get_mut("build") {
        if let Value::Str(_) = build.value {
            let mark = build.mark.clone();
            let context = std::mem::replace(build, Node::new(Value::Map(Vec::new()), mark));
            build.set("context", context);
        }
        for key in ["args", "labels"] {
            if let Some(n) = build.get_mut(key) {
                list_to_map(n, '=');
            }
        }
    }
    if let Some(deps) = service.get_mut("depends_on") {
        if let Value::Seq(items) = &deps.value {
            let entries = items
                .iter()
                .filter_map(|item| {
                    let name = item.scalar_text()?;
                    let mut cond = Node::new(Value::Map(Vec::new()), item.mark.clone());
                    cond.set("condition", Node::str("service_started", item.mark.clone()));
                    Some((name, cond))
                })
                .collect();
            deps.value = Value::Map(entries);
        }
    }
    if let Some(networks) = service.get_mut("networks") {
        if let Value::Seq(items) = &networks.value {
            let entries = items
                .iter()
                .filter_map(|item| {
                    let name = item.scalar_text()?;
                    Some((name, Node::new(Value::Null, item.mark.clone())))
                })
                .collect();
            networks.value = Value::Map(entries);
        }
    }
}

/// `["A=1", "B"]` → `{A: "1", B: null}`; other shapes are left for the model to refuse.
fn list_to_map(node: &mut Node, sep: char) {
    let Value::Seq(items) = &node.value else {
        return;
    };
    if !items.iter().all(|i| matches!(i.value, Value::Str(_))) {
        return;
    }
    let entries = items
        .iter()
        .map(|item| {
            let text = item.scalar_text().unwrap_or_default();
            match text.split_once(sep) {
                Some((k, v)) => (k.to_string(), Node::str(v, item.mark.clone())),
                None => (text, Node::new(Value::Null, item.mark.clone())),
            }
        })
        .collect();
    node.value = Value::Map(entries);
}

/// Merges a later file's top level into an earlier one.
pub fn merge_files(base: &mut Node, over: Node) {
    let Value::Map(entries) = over.value else {
        return;
    };
    for (key, value) in entries {
        match (key.as_str(), base.get_mut(&key)) {
            ("services", Some(services)) => merge_services(services, value),
            (_, Some(existing)) => merge_generic(existing, value),
            (_, None) => base.set(&key, value),
        }
    }
}

fn merge_services(base: &mut Node, over: Node) {
    let Value::Map(entries) = over.value else {
        *base = over;
        return;
    };
    if !matches!(base.value, Value::Map(_)) {
        base.value = Value::Map(Vec::new());
    }
    for (name, service) in entries {
        match base.get_mut(&name) {
            Some(existing) => merge_service(existing, service),
            None => base.set(&name, service),
        }
    }
}

/// Merges `over` onto `base`, both normalised services.
pub fn merge_service(base: &mut Node, over: Node) {
    let (Value::Map(_), Value::Map(entries)) = (&base.value, over.value.clone()) else {
        *base = over;
        return;
    };
    for (key, value) in entries {
        let Some(existing) = base.get_mut(&key) else {
            base.set(&key, value);
            continue;
        };
        match key.as_str() {
            k if APPENDED.contains(&k) => append(existing, value),
            k if BY_TARGET.contains(&k) => by_target(existing, value),
            "command" | "entrypoint" => *existing = value,
            _ => merge_generic(existing, value),
        }
    }
}

/// Mappings merge key by key; anything else is replaced.
fn merge_generic(base: &mut Node, over: Node) {
    match (&mut base.value, over.value) {
        (Value::Map(_), Value::Map(entries)) => {
            for (k, v) in entries {
                match base.get_mut(&k) {
                    Some(existing) if k != "test" => merge_generic(existing, v),
                    _ => base.set(&k, v),
                }
            }
        }
        (_, value) => {
            base.value = value;
            base.mark = over.mark;
        }
    }
}

fn append(base: &mut Node, over: Node) {
    let Value::Seq(items) = over.value else {
        *base = over;
        return;
    };
    let Value::Seq(existing) = &mut base.value else {
        base.value = Value::Seq(items);
        return;
    };
    for item in items {
        if !existing.iter().any(|e| e.value == item.value) {
            existing.push(item);
        }
    }
}

fn by_target(base: &mut Node, over: Node) {
    let Value::Seq(items) = over.value else {
        *base = over;
        return;
    };
    let Value::Seq(existing) = &mut base.value else {
        base.value = Value::Seq(items);
        return;
    };
    for item in items {
        let target = mount_target(&item);
        match existing
            .iter_mut()
            .find(|e| target.is_some() && mount_target(e) == target)
        {
            Some(e) => *e = item,
            None => existing.push(item),
        }
    }
}

/// The container path of a short (`src:dst[:mode]`) or long (`target:`) mount.
pub fn mount_target(node: &Node) -> Option<String> {
    match &node.value {
        Value::Str(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            Some(parts.get(1).copied().unwrap_or(parts[0]).to_string())
        }
        Value::Map(_) => node.get("target").and_then(Node::scalar_text),
        _ => None,
    }
}

/// Resolves `extends` in one file's services. `load_other` reads another file's services
/// (already normalised) for `extends: {file: …}`.
pub fn resolve_extends(
    services: &mut Node,
    load_other: &dyn Fn(&str, &Mark) -> Result<Node, Error>,
) -> Result<(), Error> {
    let names: Vec<String> = match &services.value {
        Value::Map(entries) => entries.iter().map(|(k, _)| k.clone()).collect(),
        _ => return Ok(()),
    };
    let original = services.clone();
    for name in names {
        let resolved = extended(&original, &name, load_other, &mut Vec::new())?;
        services.set(&name, resolved);
    }
    Ok(())
}

fn extended(
    services: &Node,
    name: &str,
    load_other: &dyn Fn(&str, &Mark) -> Result<Node, Error>,
    chain: &mut Vec<String>,
) -> Result<Node, Error> {
    let mut service = services.get(name).cloned().ok_or_else(|| Error::Invalid {
        at: services.mark.clone(),
        path: format!(
            "services.{}",
            chain.last().map(String::as_str).unwrap_or(name)
        ),
        message: format!("extends: service {name:?} not found"),
    })?;
    let Some(ext) = service.remove("extends") else {
        return Ok(service);
    };
    let path = format!("services.{name}.extends");
    if chain.iter().any(|c| c == name) {
        return Err(Error::Invalid {
            at: ext.mark.clone(),
            path,
            message: format!("circular extends: {} -> {name}", chain.join(" -> ")),
        });
    }
    let (base_name, file) = match &ext.value {
        Value::Str(s) => (s.clone(), None),
        Value::Map(_) => (
            ext.get("service")
                .and_then(Node::scalar_text)
                .ok_or_else(|| Error::Invalid {
                    at: ext.mark.clone(),
                    path: path.clone(),
                    message: "needs a service".into(),
                })?,
            ext.get("file").and_then(Node::scalar_text),
        ),
        _ => {
            return Err(Error::Type {
                at: ext.mark.clone(),
                path,
                message: format!("must be a string or a mapping, not {}", ext.kind()),
            })
        }
    };
    chain.push(name.to_string());
    let mut base = match file {
        Some(file) => {
            let other = load_other(&file, &ext.mark)?;
            extended(&other, &base_name, load_other, &mut Vec::new())?
        }
        None => extended(services, &base_name, load_other, chain)?,
    };
    chain.pop();
    merge_service(&mut base, service);
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::super::yaml::parse;
    use super::*;

    fn service(text: &str) -> Node {
        let mut n = parse("t.yml", text).unwrap();
        normalize_service(&mut n);
        n
    }

    #[test]
    fn later_files_win_and_lists_merge_by_rule() {
        let mut base = service(
            "image: a\ncommand: [x, y]\nports: ['80']\nenvironment: [A=1, B=2]\n\
             volumes: ['v:/data', '/tmp:/tmp']\ndepends_on: [db]\n",
        );
        let over = service(
            "image: b\ncommand: [z]\nports: ['81', '80']\nenvironment: {B: 3}\n\
             volumes: ['w:/data']\ndepends_on: {cache: {condition: service_healthy}}\n",
        );
        merge_service(&mut base, over);
        let j = base.to_json();
        assert_eq!(j["image"], "b");
        assert_eq!(j["command"], serde_json::json!(["z"]));
        assert_eq!(j["ports"], serde_json::json!(["80", "81"]));
        assert_eq!(j["environment"], serde_json::json!({"A": "1", "B": 3}));
        assert_eq!(j["volumes"], serde_json::json!(["w:/data", "/tmp:/tmp"]));
        assert_eq!(j["depends_on"]["db"]["condition"], "service_started");
        assert_eq!(j["depends_on"]["cache"]["condition"], "service_healthy");
    }

    #[test]
    fn extends_in_the_same_file() {
        let mut s = parse(
            "t.yml",
            "base: {image: a, environment: {A: '1'}}\nweb: {extends: base, environment: {B: '2'}}\n",
        )
        .unwrap();
        resolve_extends(&mut s, &|_, _| unreachable!()).unwrap();
        let j = s.to_json();
        assert_eq!(j["web"]["image"], "a");
        assert_eq!(
            j["web"]["environment"],
            serde_json::json!({"A": "1", "B": "2"})
        );
        assert!(j["web"].get("extends").is_none());
    }

    #[test]
    fn extends_cycles_are_refused() {
        let mut s = parse("t.yml", "a: {extends: b}\nb: {extends: a}\n").unwrap();
        let e = resolve_extends(&mut s, &|_, _| unreachable!())
            .unwrap_err()
            .to_string();
        assert!(e.contains("circular extends"), "{e}");
    }
}
