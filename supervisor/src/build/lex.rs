//! Words and variables as docker's Dockerfile shell lexer reads them: quotes (`'…'` literal,
//! `"…"` with `$` expanded), the escape character, `$name`, `${name}`, `${name:-word}`,
//! `${name-word}`, `${name:+word}`, `${name+word}`, `${name:?message}`.
use std::collections::BTreeMap;

/// Variables in scope: ENV of the image and ARGs of the stage (ENV wins, as in docker).
pub type Vars = BTreeMap<String, String>;

/// Errors of expansion, in docker's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LexError {
    #[error("failed to process \"{0}\": unexpected end of statement while looking for matching double-quote")]
    OpenDouble(String),
    #[error("failed to process \"{0}\": unexpected end of statement while looking for matching single-quote")]
    OpenSingle(String),
    #[error("failed to process \"{0}\": missing '}}'")]
    OpenBrace(String),
    #[error("failed to process \"{0}\": {1}")]
    Unset(String, String),
    #[error("failed to process \"{0}\": unsupported modifier ({1}) in substitution")]
    Modifier(String, char),
}

/// Splits `text` into words at unquoted whitespace; quotes and escapes stay in the words
/// (for [`expand`]).
pub fn split_words(text: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                word.push(c);
                if c == escape && q == '"' {
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            None => {
                word.push(c);
                if c == escape {
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                } else if c == '"' || c == '\'' {
                    quote = Some(c);
                }
            }
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// One word with quotes removed, escapes applied and variables expanded.
pub fn expand(word: &str, vars: &Vars, escape: char) -> Result<String, LexError> {
    Lexer {
        chars: word.chars().collect(),
        at: 0,
        vars,
        escape,
        word,
    }
    .word(None)
}

/// Expands the variables (`$v`, `${v}`, `${v:-w}` …) in free text, leaving quotes,
/// escapes and whitespace as they are (a here-document's body).
pub fn expand_raw(text: &str, vars: &Vars, escape: char) -> Result<String, LexError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let len = if tail[1..].starts_with('{') {
            tail.find('}').map_or(tail.len(), |i| i + 1)
        } else {
            1 + tail[1..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len() - 1)
        };
        if len == 1 {
            out.push('$');
        } else {
            out.push_str(&expand(&tail[..len], vars, escape)?);
        }
        rest = &tail[len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands every word of `text` (split as [`split_words`]) and joins them with one space.
pub fn expand_text(text: &str, vars: &Vars, escape: char) -> Result<String, LexError> {
    let words = split_words(text, escape)
        .iter()
        .map(|w| expand(w, vars, escape))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(words.join(" "))
}

struct Lexer<'a> {
    chars: Vec<char>,
    at: usize,
    vars: &'a Vars,
    escape: char,
    word: &'a str,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.at += 1;
        c
    }

    /// Reads up to `stop` (a `}` ending a substitution's word) or the end.
    fn word(&mut self, stop: Option<char>) -> Result<String, LexError> {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                break;
            }
            self.at += 1;
            match c {
                '\'' => out.push_str(&self.single()?),
                '"' => out.push_str(&self.double()?),
                '$' => out.push_str(&self.dollar()?),
                c if c == self.escape => match self.next() {
                    Some(n) => out.push(n),
                    None => out.push(c),
                },
                c => out.push(c),
            }
        }
        Ok(out)
    }

    fn single(&mut self) -> Result<String, LexError> {
        let mut out = String::new();
        loop {
            match self.next() {
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
                None => return Err(LexError::OpenSingle(self.word.into())),
            }
        }
    }

    fn double(&mut self) -> Result<String, LexError> {
        let mut out = String::new();
        loop {
            match self.next() {
                Some('"') => return Ok(out),
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) if c == self.escape => match self.next() {
                    Some(n @ ('"' | '$')) => out.push(n),
                    Some(n) if n == self.escape => out.push(n),
                    Some(n) => {
                        out.push(c);
                        out.push(n);
                    }
                    None => return Err(LexError::OpenDouble(self.word.into())),
                },
                Some(c) => out.push(c),
                None => return Err(LexError::OpenDouble(self.word.into())),
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self
            .peek()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            name.push(c);
            self.at += 1;
        }
        name
    }

    fn dollar(&mut self) -> Result<String, LexError> {
        match self.peek() {
            Some('{') => {
                self.at += 1;
                self.braced()
            }
            Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
                let name = self.name();
                Ok(self.vars.get(&name).cloned().unwrap_or_default())
            }
            _ => Ok("$".into()),
        }
    }

    fn braced(&mut self) -> Result<String, LexError> {
        let name = self.name();
        let value = self.vars.get(&name);
        let c = self
            .next()
            .ok_or_else(|| LexError::OpenBrace(self.word.into()))?;
        if c == '}' {
            return Ok(value.cloned().unwrap_or_default());
        }
        let colon = c == ':';
        let modifier = if colon {
            self.next()
                .ok_or_else(|| LexError::OpenBrace(self.word.into()))?
        } else {
            c
        };
        let word = self.word(Some('}'))?;
        if self.next() != Some('}') {
            return Err(LexError::OpenBrace(self.word.into()));
        }
        // With `:`, an empty value counts as unset.
        let set = value.filter(|v| !(colon && v.is_empty()));
        match modifier {
            '-' => Ok(set.cloned().unwrap_or(word)),
            '+' => Ok(if set.is_some() { word } else { String::new() }),
            '?' => match set {
                Some(v) => Ok(v.clone()),
                None if word.is_empty() => Err(LexError::Unset(
                    self.word.into(),
                    format!("{name}: parameter null or not set"),
                )),
                None => Err(LexError::Unset(self.word.into(), format!("{name}: {word}"))),
            },
            other => Err(LexError::Modifier(self.word.into(), other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_expansion_keeps_quotes_and_spaces() {
        let v: Vars = [("A".to_string(), "x".to_string())].into();
        assert_eq!(
            expand_raw("'$A'  \"${A}\" ${B:-d} $ $A_1 \\n\n", &v, '\\').unwrap(),
            "'x'  \"x\" d $  \\n\n"
        );
    }

    fn vars() -> Vars {
        [("A", "apple"), ("E", ""), ("P", "/usr/bin")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn x(word: &str) -> String {
        expand(word, &vars(), '\\').unwrap()
    }

    #[test]
    fn expands_like_dockers_lexer() {
        assert_eq!(x("$A"), "apple");
        assert_eq!(x("${A}s"), "apples");
        assert_eq!(x("${NONE:-dflt}"), "dflt");
        assert_eq!(x("${E:-dflt}"), "dflt");
        assert_eq!(x("${E-dflt}"), "");
        assert_eq!(x("${A:+alt}"), "alt");
        assert_eq!(x("${E:+alt}"), "");
        assert_eq!(x("${E+alt}"), "alt");
        assert_eq!(x("${NONE:-$A/x}"), "apple/x");
        assert_eq!(x("'$A'"), "$A");
        assert_eq!(x("\"$A b\""), "apple b");
        assert_eq!(x("\\$A"), "$A");
        assert_eq!(x("\"\\$A\""), "$A");
        assert_eq!(x("a$"), "a$");
        assert_eq!(x("$P:/x"), "/usr/bin:/x");
    }

    #[test]
    fn errors_name_the_word() {
        let e = expand("${NONE:?needs a value}", &vars(), '\\').unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to process \"${NONE:?needs a value}\": NONE: needs a value"
        );
        assert!(matches!(
            expand("${A", &vars(), '\\'),
            Err(LexError::OpenBrace(_))
        ));
        assert!(matches!(
            expand("\"a", &vars(), '\\'),
            Err(LexError::OpenDouble(_))
        ));
    }

    #[test]
    fn splits_at_unquoted_space() {
        assert_eq!(
            split_words(r#"a="x y" b=c\ d  'e f'"#, '\\'),
            [r#"a="x y""#, r"b=c\ d", "'e f'"]
        );
        assert_eq!(split_words("C:\\x a` b", '`'), ["C:\\x", "a` b"]);
    }
}
