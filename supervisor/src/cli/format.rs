//! Docker's output conventions: human sizes and durations, Go-template-like `--format`
//! (`{{.Field.Sub}}`, `{{json .X}}`, `table` prefix, `json`), and tab-aligned tables.
use serde_json::{Map, Value};

/// `units.HumanSizeWithPrecision(n, 3)`: decimal units, 3 significant digits (`4.87MB`).
pub fn human_size(bytes: f64) -> String {
    crate::images::progress::human_size(bytes, 3)
}

/// `units.HumanDuration`: `Less than a second`, `About a minute`, `2 weeks`...
pub fn human_duration(seconds: i64) -> String {
    let hours = (seconds as f64 / 3600.0 + 0.5) as i64;
    match seconds {
        s if s < 1 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s / 60 == 1 => "About a minute".into(),
        s if s / 60 < 60 => format!("{} minutes", s / 60),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        s => format!("{} years", s / 3600 / 24 / 365),
    }
}

/// `2 weeks ago` for a unix time.
pub fn since(unix: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    format!("{} ago", human_duration(now - unix))
}

/// Go's `time.Time.String()` in UTC: `2024-01-02 03:04:05 +0000 UTC`.
pub fn created_at(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
        .unwrap_or_default()
}

/// Docker's table writer: cells padded to the widest in their column plus 3, at least 10;
/// the last cell of a line is not padded.
pub fn tabulate(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter(|r| c + 1 < r.len())
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if c + 1 < row.len() {
                let width = (widths[c] + 3).max(10);
                out.push_str(&" ".repeat(width.saturating_sub(cell.chars().count())));
            }
        }
        out.push('\n');
    }
    out
}

/// Errors in a `--format` template.
#[derive(Debug, thiserror::Error)]
#[error("template parsing error: {0}")]
pub struct TemplateError(String);

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    /// A function (`json`, `upper`, `lower`) applied to a field path (`.A.B`, or `.`).
    Field {
        function: Option<String>,
        path: Vec<String>,
    },
}

/// A parsed `--format` value.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// `table …`: print a header row and align columns.
    pub table: bool,
    /// `json`: one JSON object per row.
    pub json: bool,
    pieces: Vec<Piece>,
}

impl Template {
    pub fn parse(format: &str) -> Result<Self, TemplateError> {
        let format = format.replace("\\t", "\t").replace("\\n", "\n");
        if format.trim() == "json" {
            return Ok(Template {
                table: false,
                json: true,
                pieces: Vec::new(),
            });
        }
        let (table, body) = match format.strip_prefix("table") {
            Some(rest) => (true, rest.trim_start().to_string()),
            None => (false, format),
        };
        Ok(Template {
            table,
            json: false,
            pieces: parse_pieces(&body)?,
        })
    }

    /// The row rendered for `value`.
    pub fn render(&self, value: &Value) -> String {
        if self.json {
            return value.to_string();
        }
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Field { function, path } => {
                    let v = lookup(value, path);
                    out.push_str(&apply(function.as_deref(), v));
                }
            }
        }
        out
    }

    /// The header row of a table: each field's header name (`ID` → `IMAGE ID`).
    pub fn header(&self, names: &dyn Fn(&str) -> String) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Field { path, .. } => {
                    let field = path.last().map(String::as_str).unwrap_or("");
                    out.push_str(&names(field));
                }
            }
        }
        out
    }
}

fn parse_pieces(body: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            pieces.push(Piece::Text(rest[..start].to_string()));
        }
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| TemplateError(format!("unclosed action in {body:?}")))?;
        let action = rest[start + 2..start + end].trim().trim_matches('-').trim();
        pieces.push(parse_action(action)?);
        rest = &rest[start + end + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    Ok(pieces)
}

fn parse_action(action: &str) -> Result<Piece, TemplateError> {
    let words: Vec<&str> = action.split_whitespace().collect();
    let (function, field) = match words.as_slice() {
        [field] => (None, *field),
        [f, field] if matches!(*f, "json" | "upper" | "lower" | "title") => {
            (Some(f.to_string()), *field)
        }
        _ => {
            return Err(TemplateError(format!(
                "unsupported action {{{{{action}}}}}"
            )))
        }
    };
    if !field.starts_with('.') {
        return Err(TemplateError(format!("function {field:?} not defined")));
    }
    let path = field
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    Ok(Piece::Field { function, path })
}

fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

fn apply(function: Option<&str>, value: Option<&Value>) -> String {
    match function {
        Some("json") => value.map(Value::to_string).unwrap_or_else(|| "null".into()),
        Some("upper") => go_string(value).to_uppercase(),
        Some("lower") => go_string(value).to_lowercase(),
        Some("title") => {
            let s = go_string(value);
            let mut chars = s.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        }
        _ => go_string(value),
    }
}

/// A value printed the way Go's `text/template` prints it (`[a b]`, `map[k:v]`).
pub fn go_string(value: Option<&Value>) -> String {
    match value {
        None => "<no value>".into(),
        Some(Value::Null) => "<nil>".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => {
            let parts: Vec<String> = items.iter().map(|v| go_string(Some(v))).collect();
            format!("[{}]", parts.join(" "))
        }
        Some(Value::Object(map)) => go_map(map),
        Some(other) => other.to_string(),
    }
}

fn go_map(map: &Map<String, Value>) -> String {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let parts: Vec<String> = keys
        .iter()
        .map(|k| format!("{k}:{}", go_string(map.get(*k))))
        .collect();
    format!("map[{}]", parts.join(" "))
}

/// Prints rows with a template: a header and aligned columns for `table`.
pub fn render_rows(
    template: &Template,
    rows: &[Value],
    header_name: &dyn Fn(&str) -> String,
) -> String {
    let mut lines: Vec<String> = Vec::new();
    if template.table {
        lines.push(template.header(header_name));
    }
    lines.extend(rows.iter().map(|r| template.render(r)));
    if template.table {
        return tabulate(&lines);
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// A list command's output: `--format` when given, else `quiet` (`-q`'s one-field template)
/// or the default `table`; one row each.
pub fn print_rows(
    format: Option<&str>,
    quiet: Option<&str>,
    table: &str,
    rows: &[Value],
    header_name: &dyn Fn(&str) -> String,
) -> anyhow::Result<()> {
    let format = format.or(quiet).unwrap_or(table);
    let template = Template::parse(format)?;
    print!("{}", render_rows(&template, rows, header_name));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(human_size(123.0), "123B");
        assert_eq!(human_size(4_866_000.0), "4.87MB");
        assert_eq!(human_size(1_000_000.0), "1MB");
        assert_eq!(human_size(12_345_678.0), "12.3MB");
        assert_eq!(human_size(1_240.0), "1.24kB");
        assert_eq!(
            crate::images::progress::human_size(1_987_123.0, 4),
            "1.987MB"
        );
    }

    #[test]
    fn durations_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(30), "30 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_duration(15 * 86400), "2 weeks");
        assert_eq!(human_duration(90 * 86400), "3 months");
        assert_eq!(human_duration(800 * 86400), "2 years");
    }

    #[test]
    fn table_columns_like_docker() {
        let out = tabulate(&[
            "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE".into(),
            "busybox\tlatest\t0123456789ab\t2 weeks ago\t4.87MB".into(),
        ]);
        assert_eq!(
            out,
            "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE\n\
             busybox      latest    0123456789ab   2 weeks ago   4.87MB\n"
        );
    }

    #[test]
    fn templates_render_fields_json_and_go_values() {
        let v = json!({"Id": "sha256:1", "Config": {"Cmd": ["sh"], "Env": null},
                       "RootFS": {"Type": "layers"}});
        let t = Template::parse("{{.Id}} {{.Config.Cmd}} {{json .RootFS}}").unwrap();
        assert_eq!(t.render(&v), r#"sha256:1 [sh] {"Type":"layers"}"#);
        let t = Template::parse("{{.Config.Env}}|{{.Nope}}").unwrap();
        assert_eq!(t.render(&v), "<nil>|<no value>");
        let t = Template::parse(r"table {{.Repository}}\t{{.Tag}}").unwrap();
        assert!(t.table);
        assert_eq!(t.header(&|f| f.to_uppercase()), "REPOSITORY\tTAG");
        assert!(Template::parse("{{index .A 0}}").is_err());
    }
}
