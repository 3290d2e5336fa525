//! `.env` and `env_file` files: `KEY=VALUE` lines, `#` comments, an optional `export `,
//! values in single quotes (literal) or double quotes (`\n`, `\"` escapes), unquoted values
//! trimmed and cut at ` #`. A line with a bare `KEY` takes the variable from the environment.
use std::path::Path;

use super::interpolate::Vars;
use super::Error;

/// Reads a file into ordered pairs; `None` values came from bare `KEY` lines.
pub fn read(path: &Path) -> Result<Vec<(String, Option<String>)>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    parse(&path.display().to_string(), &text)
}

/// Parses the text of an env file named `file`.
pub fn parse(file: &str, text: &str) -> Result<Vec<(String, Option<String>)>, Error> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), Some(value(v.trim_start()))),
            None => (line, None),
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(Error::EnvFile {
                file: file.to_string(),
                line: n + 1,
                message: format!("{raw:?}: a line must be KEY=VALUE"),
            });
        }
        out.push((key.to_string(), value));
    }
    Ok(out)
}

fn value(v: &str) -> String {
    if let Some(inner) = v.strip_prefix('\'').and_then(|r| r.split_once('\'')) {
        return inner.0.to_string();
    }
    if let Some(rest) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return out,
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(o) => out.push(o),
                    None => out.push('\\'),
                },
                c => out.push(c),
            }
        }
        return out;
    }
    let cut = v.find(" #").map(|i| &v[..i]).unwrap_or(v);
    cut.trim_end().to_string()
}

/// Adds a file's pairs to `vars` where the process environment does not set them (the
/// environment wins, as with compose).
pub fn layer(vars: &mut Vars, pairs: Vec<(String, Option<String>)>) {
    for (k, v) in pairs {
        if let Some(v) = v.or_else(|| std::env::var(&k).ok()) {
            vars.entry(k).or_insert(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let text = "# c\nA=1\nexport B = two words # note\nC='x # y'\nD=\"a\\nb\"\nE=\nF\n";
        let p = parse(".env", text).unwrap();
        let get = |k: &str| p.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get("A").as_deref(), Some("1"));
        assert_eq!(get("B").as_deref(), Some("two words"));
        assert_eq!(get("C").as_deref(), Some("x # y"));
        assert_eq!(get("D").as_deref(), Some("a\nb"));
        assert_eq!(get("E").as_deref(), Some(""));
        assert_eq!(get("F"), None);
    }

    #[test]
    fn bad_lines_name_the_file_and_line() {
        let e = parse("x.env", "A=1\nnot a pair\n").unwrap_err().to_string();
        assert!(e.contains("x.env:2") && e.contains("KEY=VALUE"), "{e}");
    }
}
