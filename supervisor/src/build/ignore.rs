//! `.dockerignore`, docker's way (its own matcher, not gitignore's): one pattern a line,
//! `#` comments, `!` exceptions, patterns cleaned and taken relative to the context root,
//! `*` and `?` never crossing `/`, `**` any number of directories (none included), `[…]`
//! classes, `\` escaping; a path is excluded when the last pattern matching it or one of its
//! parent directories is not an exception.

/// One pattern, compiled.
#[derive(Debug, Clone)]
struct Pattern {
    exception: bool,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Byte(u8),
    /// `?`: one byte but `/`.
    One,
    /// `*`: a run without `/`.
    Star,
    /// `**/` (or `**` inside a segment): any run, empty included, ending at a `/`.
    Dirs,
    /// `**` at the end: anything.
    Rest,
    /// `[…]`: (negated, ranges).
    Class(bool, Vec<(u8, u8)>),
}

/// The patterns of a `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

/// `filepath.Clean` on a slash path.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            ".." if rooted => {}
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

fn compile(pattern: &str) -> Vec<Token> {
    let b = pattern.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'*' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                if b.get(i) == Some(&b'/') {
                    i += 1;
                }
                out.push(if i >= b.len() {
                    Token::Rest
                } else {
                    Token::Dirs
                });
                continue;
            }
            b'*' => out.push(Token::Star),
            b'?' => out.push(Token::One),
            b'\\' if i + 1 < b.len() => {
                i += 1;
                out.push(Token::Byte(b[i]));
            }
            b'[' => {
                if let Some(len) = b[i + 1..].iter().skip(1).position(|&c| c == b']') {
                    let body = &b[i + 1..i + 2 + len];
                    let (negated, body) = match body.split_first() {
                        Some((b'^' | b'!', rest)) => (true, rest),
                        _ => (false, body),
                    };
                    let mut ranges = Vec::new();
                    let mut j = 0;
                    while j < body.len() {
                        let mut c = body[j];
                        if c == b'\\' && j + 1 < body.len() {
                            j += 1;
                            c = body[j];
                        }
                        if j + 2 < body.len() && body[j + 1] == b'-' {
                            ranges.push((c, body[j + 2]));
                            j += 3;
                        } else {
                            ranges.push((c, c));
                            j += 1;
                        }
                    }
                    out.push(Token::Class(negated, ranges));
                    i += len + 3;
                    continue;
                }
                out.push(Token::Byte(b'['));
            }
            c => out.push(Token::Byte(c)),
        }
        i += 1;
    }
    out
}

fn matches(tokens: &[Token], text: &[u8]) -> bool {
    match tokens.split_first() {
        None => text.is_empty(),
        Some((Token::Rest, _)) => true,
        Some((Token::Star, rest)) => (0..=text.len())
            .take_while(|&i| i == 0 || text[i - 1] != b'/')
            .any(|i| matches(rest, &text[i..])),
        Some((Token::Dirs, rest)) => {
            matches(rest, text)
                || (0..text.len())
                    .filter(|&i| text[i] == b'/')
                    .any(|i| matches(rest, &text[i + 1..]))
        }
        Some((Token::One, rest)) => {
            !text.is_empty() && text[0] != b'/' && matches(rest, &text[1..])
        }
        Some((Token::Class(negated, ranges), rest)) => match text.first() {
            Some(&c) if c != b'/' => {
                let hit = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                hit != *negated && matches(rest, &text[1..])
            }
            _ => false,
        },
        Some((Token::Byte(c), rest)) => text.first() == Some(c) && matches(rest, &text[1..]),
    }
}

impl Ignore {
    /// Parses a `.dockerignore`'s text.
    pub fn parse(text: &str) -> Ignore {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, body) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            if body.is_empty() {
                continue;
            }
            let mut body = clean(body);
            if body.len() > 1 && body.starts_with('/') {
                body.remove(0);
            }
            patterns.push(Pattern {
                exception,
                tokens: compile(&body),
            });
        }
        Ignore { patterns }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether some pattern is an exception (an excluded directory may then hold paths that
    /// are not excluded, so a walk must look inside it).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }

    /// Adds `!path` (docker keeps the Dockerfile and .dockerignore this way).
    pub fn keep(&mut self, path: &str) {
        self.patterns.push(Pattern {
            exception: true,
            tokens: compile(&clean(path)),
        });
    }

    /// Whether `path` (relative to the context, `/`-separated) is excluded: the last pattern
    /// matching it or one of its parents decides.
    pub fn excluded(&self, path: &str) -> bool {
        let path = clean(path);
        let path = path.trim_start_matches('/');
        let mut parents = Vec::new();
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            parents.push(&path[..at + i]);
            at += i + 1;
        }
        let mut excluded = false;
        for p in &self.patterns {
            if p.exception != excluded {
                continue;
            }
            let hit = matches(&p.tokens, path.as_bytes())
                || parents.iter().any(|d| matches(&p.tokens, d.as_bytes()));
            if hit {
                excluded = !p.exception;
            }
        }
        excluded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(text: &str) -> Ignore {
        Ignore::parse(text)
    }

    #[test]
    fn plain_names_and_their_contents() {
        let i = ig("# comment\nnode_modules\n/build/\n*.log\n");
        assert!(i.excluded("node_modules"));
        assert!(i.excluded("node_modules/a/b.js"));
        assert!(!i.excluded("src/node_modules"), "patterns are rooted");
        assert!(i.excluded("build/x"));
        assert!(i.excluded("a.log"));
        assert!(!i.excluded("d/a.log"), "* does not cross /");
        assert!(!i.excluded("src/main.rs"));
    }

    #[test]
    fn double_star_spans_directories() {
        let i = ig("**/*.tmp\ndocs/**\na/**/z\n");
        assert!(i.excluded("x.tmp"), "**/ matches no directory too");
        assert!(i.excluded("d/e/x.tmp"));
        assert!(i.excluded("docs/a/b"));
        assert!(i.excluded("a/z") && i.excluded("a/b/c/z"));
        assert!(!i.excluded("b/z"));
    }

    #[test]
    fn exceptions_and_last_match_wins() {
        let i = ig("*.md\n!README.md\nREADME*\n");
        assert!(i.excluded("CHANGES.md"));
        assert!(i.excluded("README.md"), "the later README* wins");
        let i = ig("data\n!data/keep\n");
        assert!(i.excluded("data/other"));
        assert!(!i.excluded("data/keep"));
        assert!(!i.excluded("data/keep/inner"));
        assert!(i.has_exceptions());
        let i = ig("*\n!src\n");
        assert!(!i.excluded("src/a/b"));
        assert!(i.excluded("other"));
    }

    #[test]
    fn cleaned_patterns_classes_and_escapes() {
        let i = ig("./a/../b\n[ab]?.txt\n\\*star\n  spaced  \n");
        assert!(i.excluded("b"));
        assert!(i.excluded("ax.txt") && i.excluded("by.txt"));
        assert!(!i.excluded("cx.txt"));
        assert!(i.excluded("*star") && !i.excluded("xstar"));
        assert!(i.excluded("spaced"));
        assert_eq!(clean("a//b/./c/.."), "a/b");
        assert_eq!(clean("/../a"), "/a");
    }
}
