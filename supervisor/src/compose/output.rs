//! The resolved project as YAML, for `compose config`.
use serde_json::Value;

use super::model::Project;

/// The project as compose prints it: name, services, networks, volumes.
pub fn project_yaml(p: &Project) -> String {
    let mut value = serde_json::to_value(p).unwrap_or_default();
    if let Some(services) = value.get_mut("services").and_then(Value::as_object_mut) {
        for (name, s) in services.iter_mut() {
            if let (Some(obj), Some(svc)) = (s.as_object_mut(), p.services.get(name)) {
                if let Some(n) = svc.scale {
                    obj.insert("scale".into(), n.into());
                }
            }
        }
    }
    let mut out = String::new();
    emit(&value, 0, &mut out);
    out
}

fn emit(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                out.push_str(&format!("{pad}{}:", scalar(&Value::String(k.clone()))));
                block(v, indent, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                out.push_str(&format!("{pad}-"));
                match item {
                    Value::Object(m) if !m.is_empty() => {
                        let mut inner = String::new();
                        emit(item, indent + 2, &mut inner);
                        out.push_str(&inner[indent + 1..]);
                    }
                    _ => block(item, indent, out),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

/// What follows `key:` or `-`.
fn block(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            emit(v, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            emit(v, indent + 2, out);
        }
        Value::Object(_) => out.push_str(" {}\n"),
        Value::Array(_) => out.push_str(" []\n"),
        other => out.push_str(&format!(" {}\n", scalar(other))),
    }
}

/// A scalar, quoted where YAML would read it as something else.
fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let plain = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._/-@+".contains(c))
                && !matches!(
                    s.to_ascii_lowercase().as_str(),
                    "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~"
                )
                && s.parse::<f64>().is_err()
                && !s.starts_with(['-', '.']);
            match plain {
                true => s.clone(),
                false => serde_json::to_string(s).unwrap_or_default(),
            }
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emits_yaml_that_reads_back() {
        let v = serde_json::json!({"services": {"web": {"image": "busybox", "command": ["sh", "-c", "echo: 1"],
            "ports": [{"target": 80, "published": "8080"}], "environment": {"A": null, "B": "true"}}}});
        let mut out = String::new();
        emit(&v, 0, &mut out);
        let back = super::super::yaml::parse("x", &out).unwrap().to_json();
        assert_eq!(back, v, "{out}");
    }
}
