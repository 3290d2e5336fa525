//! Typed reads from a [`Node`] that name the key path and position on failure:
//! `docker-compose.yml:7:9: services.web.ports[0]: must be a string or a mapping, not a sequence`.
use std::collections::BTreeMap;

use super::yaml::{Node, Value};
use super::Error;

/// A node and its key path.
#[derive(Clone, Copy)]
pub struct At<'a> {
    pub node: &'a Node,
    pub path: &'a str,
}

/// An owned path for children.
pub struct Child<'a> {
    pub node: &'a Node,
    pub path: String,
}

impl Child<'_> {
    pub fn at(&self) -> At<'_> {
        At {
            node: self.node,
            path: &self.path,
        }
    }
}

impl<'a> At<'a> {
    pub fn new(node: &'a Node, path: &'a str) -> Self {
        At { node, path }
    }

    pub fn type_error(&self, want: &str) -> Error {
        Error::Type {
            at: self.node.mark.clone(),
            path: self.path.to_string(),
            message: format!("must be {want}, not {}", self.node.kind()),
        }
    }

    pub fn invalid(&self, message: impl Into<String>) -> Error {
        Error::Invalid {
            at: self.node.mark.clone(),
            path: self.path.to_string(),
            message: message.into(),
        }
    }

    /// The child at `key` of a mapping (absent or null: `None`).
    pub fn get(&self, key: &str) -> Option<Child<'a>> {
        let node = self.node.get(key)?;
        if node.value == Value::Null {
            return None;
        }
        Some(Child {
            node,
            path: join(self.path, key),
        })
    }

    /// Refuses keys other than `allowed` (and `x-` extensions).
    pub fn only_keys(&self, allowed: &[&str]) -> Result<(), Error> {
        let Value::Map(entries) = &self.node.value else {
            return Err(self.type_error("a mapping"));
        };
        for (k, v) in entries {
            if !allowed.contains(&k.as_str()) && !k.starts_with("x-") {
                return Err(Error::UnknownKey {
                    at: v.mark.clone(),
                    path: join(self.path, k),
                });
            }
        }
        Ok(())
    }

    /// The entries of a mapping.
    pub fn entries(&self) -> Result<Vec<(String, Child<'a>)>, Error> {
        match &self.node.value {
            Value::Map(entries) => Ok(entries
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        Child {
                            node: v,
                            path: join(self.path, k),
                        },
                    )
                })
                .collect()),
            Value::Null => Ok(Vec::new()),
            _ => Err(self.type_error("a mapping")),
        }
    }

    /// The items of a sequence.
    pub fn items(&self) -> Result<Vec<Child<'a>>, Error> {
        match &self.node.value {
            Value::Seq(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, n)| Child {
                    node: n,
                    path: format!("{}[{i}]", self.path),
                })
                .collect()),
            Value::Null => Ok(Vec::new()),
            _ => Err(self.type_error("a sequence")),
        }
    }

    /// A string (numbers and booleans written plainly read as their text).
    pub fn string(&self) -> Result<String, Error> {
        match &self.node.value {
            Value::Str(s) => Ok(s.clone()),
            Value::Int(_) | Value::Float(_) => Ok(self.node.scalar_text().unwrap_or_default()),
            _ => Err(self.type_error("a string")),
        }
    }

    pub fn bool(&self) -> Result<bool, Error> {
        match &self.node.value {
            Value::Bool(b) => Ok(*b),
            Value::Str(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "y" | "on" => Ok(true),
                "false" | "no" | "n" | "off" => Ok(false),
                _ => Err(self.type_error("a boolean")),
            },
            _ => Err(self.type_error("a boolean")),
        }
    }

    pub fn int(&self) -> Result<i64, Error> {
        match &self.node.value {
            Value::Int(i) => Ok(*i),
            Value::Str(s) => s.trim().parse().map_err(|_| self.type_error("an integer")),
            _ => Err(self.type_error("an integer")),
        }
    }

    pub fn float(&self) -> Result<f64, Error> {
        match &self.node.value {
            Value::Int(i) => Ok(*i as f64),
            Value::Float(f) => Ok(*f),
            Value::Str(s) => s.trim().parse().map_err(|_| self.type_error("a number")),
            _ => Err(self.type_error("a number")),
        }
    }

    /// A list of strings.
    pub fn strings(&self) -> Result<Vec<String>, Error> {
        self.items()?.iter().map(|c| c.at().string()).collect()
    }

    /// A string or a list of strings.
    pub fn string_or_list(&self) -> Result<Vec<String>, Error> {
        match &self.node.value {
            Value::Seq(_) => self.strings(),
            _ => Ok(vec![self.string()?]),
        }
    }

    /// A command: a list, or a string split as a shell would (quotes, backslashes).
    pub fn command(&self) -> Result<Vec<String>, Error> {
        match &self.node.value {
            Value::Seq(_) => self.strings(),
            _ => split_words(&self.string()?).map_err(|m| self.invalid(m)),
        }
    }

    /// A mapping of strings (null values: `None`); normalised list forms arrive as mappings.
    pub fn string_map(&self) -> Result<BTreeMap<String, Option<String>>, Error> {
        let mut out = BTreeMap::new();
        for (k, c) in self.entries()? {
            let v = match &c.node.value {
                Value::Null => None,
                Value::Bool(b) => Some(b.to_string()),
                _ => Some(c.at().string()?),
            };
            out.insert(k, v);
        }
        Ok(out)
    }

    /// A duration (`1m30s`, `500ms`, `10`: seconds) in nanoseconds.
    pub fn duration(&self) -> Result<i64, Error> {
        let text = match &self.node.value {
            Value::Int(i) => format!("{i}s"),
            _ => self.string()?,
        };
        parse_duration(&text).ok_or_else(|| {
            self.invalid(format!(
                "{text:?} is not a duration (like 1m30s, 10s, 500ms)"
            ))
        })
    }

    /// A size (`64m`, `1g`, `1024`) in bytes.
    pub fn bytes(&self) -> Result<i64, Error> {
        let text = match &self.node.value {
            Value::Int(i) => return Ok(*i),
            _ => self.string()?,
        };
        parse_bytes(&text)
            .ok_or_else(|| self.invalid(format!("{text:?} is not a size (like 64m, 1g, 1024)")))
    }
}

pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Go-style durations: a sequence of number+unit (`h`, `m`, `s`, `ms`, `us`, `ns`).
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Some((seconds * 1e9) as i64);
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "h" => 3600e9,
            "m" => 60e9,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" => 1e3,
            "ns" => 1.0,
            _ => return None,
        };
        total += number * unit;
        rest = &rest[u..];
    }
    Some(total as i64)
}

/// docker's sizes: a number with an optional `b`, `k`, `m`, `g` suffix (binary units).
pub fn parse_bytes(text: &str) -> Option<i64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (number, unit) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1i64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        't' => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = number.trim().parse().ok()?;
    Some((n * unit as f64) as i64)
}

/// Splits a command line as a POSIX shell would split words (no expansions).
pub fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed single quote in {text:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unclosed double quote in {text:?}")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed double quote in {text:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("2"), Some(2_000_000_000));
        assert_eq!(parse_duration("1x"), None);
        assert_eq!(parse_bytes("64m"), Some(64 << 20));
        assert_eq!(parse_bytes("1gb"), Some(1 << 30));
        assert_eq!(parse_bytes("12"), Some(12));
        assert_eq!(parse_bytes("lots"), None);
    }

    #[test]
    fn words() {
        assert_eq!(
            split_words(r#"sh -c 'echo "a b"' "x\"y" z\ w"#).unwrap(),
            vec!["sh", "-c", "echo \"a b\"", "x\"y", "z w"]
        );
        assert!(split_words("echo 'x").is_err());
    }
}
