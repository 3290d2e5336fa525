//! Variable substitution in a file's string values, as compose does before anything else:
//! `$V`, `${V}`, `${V:-default}` (unset or empty), `${V-default}` (unset), `${V:?message}`,
//! `${V?message}`, `${V:+other}`, `${V+other}`, and `$$` for a literal `$`. Defaults nest
//! (`${A:-${B}}`). Keys are never substituted.
use std::collections::BTreeMap;

use super::yaml::{Node, Value};
use super::Error;

/// Variables visible to a project: the `.env` file under the process environment.
pub type Vars = BTreeMap<String, String>;

/// Substitutes every string in `node`; `path` names it in errors (`services.web.image`).
pub fn node(node: &mut Node, vars: &Vars, path: &str) -> Result<(), Error> {
    match &mut node.value {
        Value::Str(s) => {
            *s = text(s, vars).map_err(|message| Error::Variable {
                at: node.mark.clone(),
                path: path.to_string(),
                message,
            })?;
        }
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                self::node(item, vars, &format!("{path}[{i}]"))?;
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                self::node(v, vars, &child)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Substitutes one string.
pub fn text(input: &str, vars: &Vars) -> Result<String, String> {
    let chars: Vec<char> = input.chars().collect();
    let (out, _) = expand(&chars, 0, vars, None)?;
    Ok(out)
}

/// Expands from `i` up to the end, or up to an unmatched `}` when `until` is set (a nested
/// default); returns the text and the index just past where it stopped.
fn expand(
    chars: &[char],
    mut i: usize,
    vars: &Vars,
    until: Option<char>,
) -> Result<(String, usize), String> {
    let mut out = String::new();
    while i < chars.len() {
        let c = chars[i];
        if Some(c) == until {
            return Ok((out, i));
        }
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('$') => {
                out.push('$');
                i += 2;
            }
            Some('{') => {
                let (value, next) = braced(chars, i + 2, vars)?;
                out.push_str(&value);
                i = next;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_')
                {
                    end += 1;
                }
                let name: String = chars[start..end].iter().collect();
                out.push_str(vars.get(&name).map(String::as_str).unwrap_or(""));
                i = end;
            }
            _ => {
                return Err(format!(
                    "invalid interpolation format in {:?}: a '$' must be followed by a name, \
                     '{{' or '$' (write '$$' for a literal '$')",
                    chars.iter().collect::<String>()
                ))
            }
        }
    }
    if until.is_some() {
        return Err(format!(
            "invalid interpolation format in {:?}: unclosed '${{'",
            chars.iter().collect::<String>()
        ));
    }
    Ok((out, i))
}

/// `${` has been read up to `i`: the name, an optional operator and its word, then `}`.
fn braced(chars: &[char], i: usize, vars: &Vars) -> Result<(String, usize), String> {
    let whole = || chars.iter().collect::<String>();
    let mut end = i;
    while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_') {
        end += 1;
    }
    let name: String = chars[i..end].iter().collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!(
            "invalid interpolation format in {:?}: bad variable name",
            whole()
        ));
    }
    let value = vars.get(&name);
    let rest = &chars[end..];
    let (op, word_at) = match rest {
        [':', c, ..] if matches!(c, '-' | '?' | '+') => (Some((true, *c)), end + 2),
        [c, ..] if matches!(c, '-' | '?' | '+') => (Some((false, *c)), end + 1),
        ['}', ..] => (None, end),
        _ => {
            return Err(format!(
                "invalid interpolation format in {:?}: unclosed or bad '${{{name}'",
                whole()
            ))
        }
    };
    let Some((colon, op)) = op else {
        return Ok((value.cloned().unwrap_or_default(), end + 1));
    };
    let (word, close) = expand(chars, word_at, vars, Some('}'))?;
    let set = match colon {
        true => value.is_some_and(|v| !v.is_empty()),
        false => value.is_some(),
    };
    let result = match op {
        '-' if set => value.cloned().unwrap_or_default(),
        '-' => word,
        '+' if set => word,
        '+' => String::new(),
        _ if set => value.cloned().unwrap_or_default(),
        _ => {
            let why = if word.is_empty() {
                match colon {
                    true => "is unset or empty".to_string(),
                    false => "is unset".to_string(),
                }
            } else {
                word
            };
            return Err(format!(
                "required variable {name} is missing a value: {why}"
            ));
        }
    };
    Ok((result, close + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        [("A", "a"), ("EMPTY", ""), ("PORT", "8080")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn t(s: &str) -> Result<String, String> {
        text(s, &vars())
    }

    #[test]
    fn plain_and_braced() {
        assert_eq!(t("x$A-${A}y").unwrap(), "xa-ay");
        assert_eq!(t("$NOPE|${NOPE}").unwrap(), "|");
        assert_eq!(t("${PORT}:80").unwrap(), "8080:80");
    }

    #[test]
    fn defaults() {
        assert_eq!(t("${EMPTY:-d}").unwrap(), "d");
        assert_eq!(t("${EMPTY-d}").unwrap(), "");
        assert_eq!(t("${NOPE-d}").unwrap(), "d");
        assert_eq!(t("${NOPE:-${A}b}").unwrap(), "ab");
        assert_eq!(t("${A:+set}|${NOPE:+set}").unwrap(), "set|");
    }

    #[test]
    fn required() {
        let e = t("${NOPE:?give it}").unwrap_err();
        assert_eq!(e, "required variable NOPE is missing a value: give it");
        assert!(t("${EMPTY:?}").unwrap_err().contains("unset or empty"));
        assert_eq!(t("${EMPTY?x}").unwrap(), "");
        assert_eq!(t("${A:?x}").unwrap(), "a");
    }

    #[test]
    fn dollars() {
        assert_eq!(t("$$A $${A}").unwrap(), "$A ${A}");
        assert!(t("a $ b").unwrap_err().contains("invalid interpolation"));
        assert!(t("${A").unwrap_err().contains("invalid interpolation"));
        assert!(t("${}").unwrap_err().contains("bad variable name"));
    }

    #[test]
    fn errors_name_the_path() {
        let mut n =
            super::super::yaml::parse("c.yml", "services:\n  web:\n    image: ${X:?no}\n").unwrap();
        let e = node(&mut n, &vars(), "").unwrap_err().to_string();
        assert!(
            e.contains("c.yml:3:12") && e.contains("services.web.image"),
            "{e}"
        );
        assert!(
            e.contains("required variable X is missing a value: no"),
            "{e}"
        );
    }
}
