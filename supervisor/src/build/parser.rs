//! Dockerfile text to instructions, docker's way: parser directives (`escape`, `syntax`),
//! comments, line continuations with the escape character, JSON (exec) or shell form, and
//! leading `--flag=value` options. Variables are expanded later, per step (see `lex`).

/// Instructions the classic builder knows.
pub const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Instructions whose arguments may be a JSON array.
const JSON_FORMS: &[&str] = &["ADD", "CMD", "COPY", "ENTRYPOINT", "RUN", "SHELL", "VOLUME"];

/// Errors of parsing, in docker's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("dockerfile parse error line {line}: unknown instruction: {keyword}")]
    Unknown { line: usize, keyword: String },
    #[error("dockerfile parse error line {line}: {message}")]
    Invalid { line: usize, message: String },
    #[error("file with no instructions")]
    Empty,
    #[error("invalid escape token '{0}' does not match ` or \\")]
    Escape(String),
}

/// An instruction's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// `["a", "b"]`.
    Exec(Vec<String>),
    /// Anything else, as written (continuations joined).
    Shell(String),
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Line of its first line (1-based).
    pub line: usize,
    /// Upper case.
    pub keyword: String,
    /// `--name=value` options before the arguments (`--name` alone has value `""`... unless
    /// it is a boolean; the caller decides).
    pub flags: Vec<(String, String)>,
    pub args: Args,
    /// The whole instruction as written, continuations joined (docker's `Step N/M : …`).
    pub original: String,
    /// Here-documents (`<<EOF` … `EOF`) of RUN, COPY and ADD, in the order named.
    pub heredocs: Vec<Heredoc>,
}

/// A here-document: BuildKit's Dockerfile syntax, which the classic builder refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The word after `<<` (`EOF`; for COPY, the file's name).
    pub name: String,
    /// Its lines up to the terminator, each ending in a newline.
    pub body: String,
    /// Unquoted (`<<EOF`, not `<<"EOF"`): variables in it are expanded.
    pub expand: bool,
    /// The marker as written (`<<-"EOF"`).
    pub marker: String,
}

/// Instructions whose arguments may name here-documents.
const HEREDOC_FORMS: &[&str] = &["ADD", "COPY", "RUN"];

/// The here-document markers in `text`: `<<[-]WORD`, `<<[-]"WORD"`, `<<[-]'WORD'`.
fn heredoc_markers(text: &str) -> Vec<(String, bool, bool, String)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None if text[i..].starts_with("<<") && !text[i..].starts_with("<<<") => {
                let start = i;
                let mut j = i + 2;
                let strip = b.get(j) == Some(&b'-');
                if strip {
                    j += 1;
                }
                let q = match b.get(j) {
                    Some(&q @ (b'"' | b'\'')) => {
                        j += 1;
                        Some(q)
                    }
                    _ => None,
                };
                let name_start = j;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b"_.-/".contains(&b[j])) {
                    j += 1;
                }
                let name = &text[name_start..j];
                if let Some(q) = q {
                    if b.get(j) != Some(&q) {
                        i += 1;
                        continue;
                    }
                    j += 1;
                }
                if !name.is_empty() {
                    out.push((
                        name.to_string(),
                        q.is_none(),
                        strip,
                        text[start..j].to_string(),
                    ));
                    i = j;
                    continue;
                }
            }
            None => {}
        }
        i += 1;
    }
    out
}

impl Instruction {
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The arguments as text (an exec form joined by spaces).
    pub fn text(&self) -> String {
        match &self.args {
            Args::Shell(s) => s.clone(),
            Args::Exec(v) => v.join(" "),
        }
    }

    fn invalid(&self, message: impl Into<String>) -> ParseError {
        ParseError::Invalid {
            line: self.line,
            message: message.into(),
        }
    }

    /// Refuses flags other than `known`, as docker does.
    pub fn check_flags(&self, known: &[&str]) -> Result<(), ParseError> {
        match self
            .flags
            .iter()
            .find(|(n, _)| !known.contains(&n.as_str()))
        {
            Some((n, _)) => Err(self.invalid(format!("Unknown flag: {n}"))),
            None => Ok(()),
        }
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub escape: char,
    pub instructions: Vec<Instruction>,
}

/// Parses a Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let lines: Vec<&str> = text.lines().collect();
    let (escape, first) = directives(&lines)?;
    let mut instructions = Vec::new();
    let mut at = first;
    while at < lines.len() {
        let line = lines[at];
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            at += 1;
            continue;
        }
        let start = at;
        let mut joined = String::new();
        let mut current = line.to_string();
        loop {
            let end = current.trim_end();
            match end.strip_suffix(escape) {
                Some(rest) if at + 1 < lines.len() => {
                    joined.push_str(rest);
                    at += 1;
                    // Comment and empty lines inside a continuation are skipped.
                    while at < lines.len() && {
                        let t = lines[at].trim_start();
                        t.is_empty() || t.starts_with('#')
                    } {
                        at += 1;
                    }
                    match lines.get(at) {
                        Some(next) => current = next.to_string(),
                        None => break,
                    }
                }
                Some(rest) => {
                    joined.push_str(rest);
                    break;
                }
                None => {
                    joined.push_str(&current);
                    break;
                }
            }
        }
        at += 1;
        let mut ins = instruction(start + 1, joined.trim(), escape)?;
        if HEREDOC_FORMS.contains(&ins.keyword.as_str()) {
            for (name, expand, strip, marker) in heredoc_markers(&ins.text()) {
                let mut body = String::new();
                loop {
                    let Some(line) = lines.get(at) else {
                        return Err(ParseError::Invalid {
                            line: start + 1,
                            message: format!("unterminated heredoc {marker}"),
                        });
                    };
                    at += 1;
                    let line = if strip {
                        line.trim_start_matches('\t')
                    } else {
                        line
                    };
                    if line == name {
                        break;
                    }
                    body.push_str(line);
                    body.push('\n');
                }
                ins.heredocs.push(Heredoc {
                    name,
                    body,
                    expand,
                    marker,
                });
            }
        }
        instructions.push(ins);
    }
    if instructions.is_empty() {
        return Err(ParseError::Empty);
    }
    Ok(Dockerfile {
        escape,
        instructions,
    })
}

/// Parser directives at the top (`# escape=`` ` ``, `# syntax=…`): the escape character and
/// the first line after them.
fn directives(lines: &[&str]) -> Result<(char, usize), ParseError> {
    let mut escape = '\\';
    let mut seen = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(body) = line.trim().strip_prefix('#') else {
            return Ok((escape, i));
        };
        let Some((name, value)) = body.split_once('=') else {
            return Ok((escape, i));
        };
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Ok((escape, i));
        }
        if seen.contains(&name) {
            return Err(ParseError::Invalid {
                line: i + 1,
                message: format!("only one {name} parser directive can be used"),
            });
        }
        let value = value.trim();
        if name == "escape" {
            escape = match value {
                "`" => '`',
                "\\" => '\\',
                other => return Err(ParseError::Escape(other.into())),
            };
        }
        seen.push(name);
    }
    Ok((escape, lines.len()))
}

fn instruction(line: usize, text: &str, escape: char) -> Result<Instruction, ParseError> {
    let (word, rest) = match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], text[i..].trim_start()),
        None => (text, ""),
    };
    let keyword = word.to_ascii_uppercase();
    if !KEYWORDS.contains(&keyword.as_str()) {
        return Err(ParseError::Unknown { line, keyword });
    }
    let (flags, rest) = flags(rest, &keyword);
    let args = if JSON_FORMS.contains(&keyword.as_str()) {
        json_form(rest).map_or_else(|| Args::Shell(rest.to_string()), Args::Exec)
    } else {
        Args::Shell(rest.to_string())
    };
    let _ = escape;
    Ok(Instruction {
        line,
        keyword,
        flags,
        args,
        original: text.to_string(),
        heredocs: Vec::new(),
    })
}

/// Leading `--name=value` words (for the instructions that take flags).
fn flags<'a>(mut rest: &'a str, keyword: &str) -> (Vec<(String, String)>, &'a str) {
    let mut out = Vec::new();
    if !matches!(keyword, "FROM" | "RUN" | "COPY" | "ADD" | "HEALTHCHECK") {
        return (out, rest);
    }
    while let Some(body) = rest.strip_prefix("--") {
        let end = body.find(char::is_whitespace).unwrap_or(body.len());
        let word = &body[..end];
        if word.is_empty() {
            break;
        }
        let (name, value) = word.split_once('=').unwrap_or((word, ""));
        out.push((name.to_string(), value.to_string()));
        rest = body[end..].trim_start();
    }
    (out, rest)
}

/// `["a", "b"]` as a list; None when the text is not a JSON array of strings.
fn json_form(text: &str) -> Option<Vec<String>> {
    if !text.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_continuations_and_skips_comments() {
        let d = parse(
            "# syntax=docker/dockerfile:1\nFROM busybox AS base\n# a comment\nRUN echo a \\\n  # inside\n\n  && echo b\nCMD [\"sh\", \"-c\", \"x\"]\n",
        )
        .unwrap();
        assert_eq!(d.escape, '\\');
        let kw: Vec<&str> = d.instructions.iter().map(|i| i.keyword.as_str()).collect();
        assert_eq!(kw, ["FROM", "RUN", "CMD"]);
        assert_eq!(d.instructions[1].line, 4);
        assert_eq!(d.instructions[1].original, "RUN echo a   && echo b");
        assert_eq!(
            d.instructions[1].args,
            Args::Shell("echo a   && echo b".into())
        );
        assert_eq!(
            d.instructions[2].args,
            Args::Exec(vec!["sh".into(), "-c".into(), "x".into()])
        );
    }

    #[test]
    fn escape_directive_changes_the_continuation() {
        let d = parse("# escape=`\nFROM busybox\nRUN echo C:\\x `\n  y\n").unwrap();
        assert_eq!(d.escape, '`');
        assert_eq!(d.instructions[1].text(), "echo C:\\x   y");
        assert_eq!(
            parse("# escape=x\nFROM a").unwrap_err().to_string(),
            "invalid escape token 'x' does not match ` or \\"
        );
    }

    #[test]
    fn unknown_instruction_in_dockers_words() {
        let e = parse("FROM busybox\nfrobnicate all\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "dockerfile parse error line 2: unknown instruction: FROBNICATE"
        );
        assert_eq!(parse("# only\n\n").unwrap_err(), ParseError::Empty);
    }

    #[test]
    fn heredocs_of_run_and_copy() {
        let d = parse(
            "FROM a\nRUN <<EOF\necho one\n  echo two\nEOF\nCOPY <<-\"x.txt\" <<y /d/\n\t$A\n\tx.txt\n$B\ny\nRUN cat <<'E' > /f\nE\nCMD x\n",
        )
        .unwrap();
        let kw: Vec<&str> = d.instructions.iter().map(|i| i.keyword.as_str()).collect();
        assert_eq!(kw, ["FROM", "RUN", "COPY", "RUN", "CMD"]);
        let run = &d.instructions[1];
        assert_eq!(run.heredocs.len(), 1);
        assert_eq!(run.heredocs[0].body, "echo one\n  echo two\n");
        assert!(run.heredocs[0].expand);
        let copy = &d.instructions[2];
        let names: Vec<(&str, &str, bool)> = copy
            .heredocs
            .iter()
            .map(|h| (h.name.as_str(), h.body.as_str(), h.expand))
            .collect();
        assert_eq!(names, [("x.txt", "$A\n", false), ("y", "$B\n", true)]);
        assert_eq!(copy.heredocs[0].marker, "<<-\"x.txt\"");
        let run = &d.instructions[3];
        assert_eq!(
            (run.heredocs[0].body.as_str(), run.heredocs[0].expand),
            ("", false)
        );
        assert!(parse("FROM a\nRUN <<EOF\nx\n").is_err(), "unterminated");
        assert!(
            parse("FROM a\nRUN echo '<<X'\n").unwrap().instructions[1]
                .heredocs
                .is_empty(),
            "quoted << is no heredoc"
        );
    }

    #[test]
    fn flags_come_before_arguments() {
        let d = parse("FROM a\nCOPY --from=base --chown=1:2 a b /c/\nRUN [not json\n").unwrap();
        let copy = &d.instructions[1];
        assert_eq!(copy.flag("from"), Some("base"));
        assert_eq!(copy.flag("chown"), Some("1:2"));
        assert_eq!(copy.args, Args::Shell("a b /c/".into()));
        assert!(copy.check_flags(&["from"]).is_err());
        assert_eq!(d.instructions[2].args, Args::Shell("[not json".into()));
    }
}
