//! A compose file as a tree of [`Node`]s, each with the file, line and column it came from,
//! so that every later error (a wrong type, an unknown key, a bad variable) can name where.
//!
//! Parsed by `saphyr` (pure Rust, YAML 1.2); aliases are resolved by the parser, merge keys
//! (`<<: *anchor`, `<<: [*a, *b]`) here, since compose files lean on them for `x-` fragments.
use std::fmt;
use std::sync::Arc;

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};

use super::Error;

/// Where a node starts: file, line (1-based) and column (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub file: Arc<str>,
    pub line: usize,
    pub col: usize,
}

impl Mark {
    pub fn none() -> Self {
        Mark {
            file: Arc::from(""),
            line: 0,
            col: 0,
        }
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.col)
        }
    }
}

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in file order.
    Map(Vec<(String, Node)>),
}

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub mark: Mark,
}

impl Node {
    pub fn new(value: Value, mark: Mark) -> Self {
        Node { value, mark }
    }

    pub fn str(s: impl Into<String>, mark: Mark) -> Self {
        Node::new(Value::Str(s.into()), mark)
    }

    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match &mut self.value {
            Value::Map(entries) => entries.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets `key` in a mapping (replacing, or appending in order).
    pub fn set(&mut self, key: &str, node: Node) {
        if let Value::Map(entries) = &mut self.value {
            match entries.iter_mut().find(|(k, _)| k == key) {
                Some((_, v)) => *v = node,
                None => entries.push((key.to_string(), node)),
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Node> {
        match &mut self.value {
            Value::Map(entries) => {
                let i = entries.iter().position(|(k, _)| k == key)?;
                Some(entries.remove(i).1)
            }
            _ => None,
        }
    }

    /// A scalar as text (what interpolation and string fields see).
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// The kind of value, for error messages.
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a sequence",
            Value::Map(_) => "a mapping",
        }
    }

    /// Plain JSON (for `config --format json` and hashing).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Float(f) => serde_json::json!(f),
            Value::Str(s) => s.clone().into(),
            Value::Seq(items) => items.iter().map(Node::to_json).collect(),
            Value::Map(entries) => entries
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }
}

/// Parses one file's text; an empty file is an empty mapping.
pub fn parse(file: &str, text: &str) -> Result<Node, Error> {
    let file: Arc<str> = Arc::from(file);
    let docs = MarkedYamlOwned::load_from_str(text).map_err(|e| Error::Syntax {
        file: file.to_string(),
        line: e.marker().line(),
        col: e.marker().col() + 1,
        message: e.info().to_string(),
    })?;
    let mut docs = docs.into_iter();
    let root = match docs.next() {
        Some(doc) => convert(&file, doc)?,
        None => Node::new(Value::Map(Vec::new()), mark(&file, 1, 0)),
    };
    if let Some(second) = docs.next() {
        return Err(Error::Syntax {
            file: file.to_string(),
            line: second.span.start.line(),
            col: second.span.start.col() + 1,
            message: "a compose file holds one YAML document".into(),
        });
    }
    match root.value {
        Value::Map(_) => Ok(root),
        Value::Null => Ok(Node::new(Value::Map(Vec::new()), root.mark)),
        _ => Err(Error::Type {
            at: root.mark.clone(),
            path: "(top level)".into(),
            message: format!("must be a mapping, not {}", root.kind()),
        }),
    }
}

fn mark(file: &Arc<str>, line: usize, col0: usize) -> Mark {
    Mark {
        file: file.clone(),
        line,
        col: col0 + 1,
    }
}

fn convert(file: &Arc<str>, node: MarkedYamlOwned) -> Result<Node, Error> {
    let at = mark(file, node.span.start.line(), node.span.start.col());
    let value = match node.data {
        YamlDataOwned::Value(s) => scalar(s),
        YamlDataOwned::Representation(text, style, tag) => {
            let tag = tag.map(std::borrow::Cow::Owned);
            match ScalarOwned::parse_from_cow_and_metadata(text.into(), style, tag.as_ref()) {
                Some(s) => scalar(s),
                None => return Err(bad_value(at)),
            }
        }
        YamlDataOwned::Sequence(items) => Value::Seq(
            items
                .into_iter()
                .map(|n| convert(file, n))
                .collect::<Result<_, _>>()?,
        ),
        YamlDataOwned::Mapping(map) => {
            let mut entries: Vec<(String, Node)> = Vec::new();
            let mut merged: Vec<(String, Node)> = Vec::new();
            for (k, v) in map {
                let key = convert(file, k)?;
                let value = convert(file, v)?;
                let Some(name) = key.scalar_text() else {
                    return Err(Error::Type {
                        at: key.mark.clone(),
                        path: "(key)".into(),
                        message: format!("a mapping key must be a scalar, not {}", key.kind()),
                    });
                };
                if name == "<<" && matches!(key.value, Value::Str(_)) {
                    merge_key(&mut merged, value)?;
                } else {
                    entries.push((name, value));
                }
            }
            for (k, v) in merged {
                if !entries.iter().any(|(e, _)| *e == k) {
                    entries.push((k, v));
                }
            }
            Value::Map(entries)
        }
        YamlDataOwned::Tagged(_, inner) => return convert(file, *inner),
        YamlDataOwned::Alias(_) | YamlDataOwned::BadValue => return Err(bad_value(at)),
    };
    Ok(Node::new(value, at))
}

/// `<<: *a` or `<<: [*a, *b]`: keys of the earlier ones win, and keys written in the mapping
/// itself win over all of them.
fn merge_key(into: &mut Vec<(String, Node)>, value: Node) -> Result<(), Error> {
    let sources = match value.value {
        Value::Seq(items) => items,
        _ => vec![value],
    };
    for source in sources {
        match source.value {
            Value::Map(entries) => {
                for (k, v) in entries {
                    if !into.iter().any(|(e, _)| *e == k) {
                        into.push((k, v));
                    }
                }
            }
            _ => {
                return Err(Error::Type {
                    at: source.mark.clone(),
                    path: "<<".into(),
                    message: format!("a merge key takes mappings, not {}", source.kind()),
                })
            }
        }
    }
    Ok(())
}

fn scalar(s: ScalarOwned) -> Value {
    match s {
        ScalarOwned::Null => Value::Null,
        ScalarOwned::Boolean(b) => Value::Bool(b),
        ScalarOwned::Integer(i) => Value::Int(i),
        ScalarOwned::FloatingPoint(f) => Value::Float(f.into_inner()),
        ScalarOwned::String(s) => Value::Str(s),
    }
}

fn bad_value(at: Mark) -> Error {
    Error::Syntax {
        file: at.file.to_string(),
        line: at.line,
        col: at.col,
        message: "value cannot be read".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_lines_and_columns() {
        let n = parse("c.yaml", "services:\n  web:\n    image: busybox\n").unwrap();
        let image = n.get("services").unwrap().get("web").unwrap().get("image");
        let image = image.unwrap();
        assert_eq!(image.value, Value::Str("busybox".into()));
        assert_eq!((image.mark.line, image.mark.col), (3, 12));
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let e = parse("c.yaml", "services:\n  web:\n    image: [busybox\n").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("c.yaml:"), "{text}");
        assert!(matches!(e, Error::Syntax { line: 4, .. }), "{text}");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let e = parse("c.yaml", "a: 1\na: 2\n").unwrap_err().to_string();
        assert!(
            e.contains("c.yaml:2:") && e.contains("duplicated key"),
            "{e}"
        );
    }

    #[test]
    fn merge_keys_and_aliases() {
        let text =
            "x-base: &base\n  image: busybox\n  user: nobody\nweb:\n  <<: *base\n  user: root\n";
        let n = parse("c.yaml", text).unwrap();
        let web = n.get("web").unwrap();
        assert_eq!(
            web.get("image").unwrap().value,
            Value::Str("busybox".into())
        );
        assert_eq!(web.get("user").unwrap().value, Value::Str("root".into()));
    }

    #[test]
    fn scalars_keep_their_types() {
        let n = parse("c.yaml", "a: 80\nb: \"80\"\nc: true\nd: ~\n").unwrap();
        assert_eq!(n.get("a").unwrap().value, Value::Int(80));
        assert_eq!(n.get("b").unwrap().value, Value::Str("80".into()));
        assert_eq!(n.get("c").unwrap().value, Value::Bool(true));
        assert_eq!(n.get("d").unwrap().value, Value::Null);
    }

    #[test]
    fn top_level_must_be_a_mapping() {
        let e = parse("c.yaml", "- a\n").unwrap_err().to_string();
        assert!(e.contains("must be a mapping"), "{e}");
        assert!(parse("c.yaml", "").unwrap().get("services").is_none());
    }
}
