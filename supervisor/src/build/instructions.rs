//! What the metadata instructions do to an image's config, and the words docker records for
//! them in the history (`ENV a=b`, `CMD ["sh" "-c" "x"]`, `VOLUME [/data]`).
use super::lex::{self, Vars};
use super::parser::{Args, Instruction};
use super::BuildError;
use crate::containers::config::{Config, Empty, HealthConfig};
use crate::containers::spec::merge::inherit_health;

fn invalid(message: impl Into<String>) -> BuildError {
    BuildError::Invalid(message.into())
}

/// `ENV`/`LABEL`/`ARG` pairs: `k=v k2="v 2"`, or the old `ENV k v w` form (one pair).
/// A value of None is an `ARG k` without default.
pub fn pairs(
    ins: &Instruction,
    vars: &Vars,
    escape: char,
) -> Result<Vec<(String, Option<String>)>, BuildError> {
    let text = ins.text();
    let words = lex::split_words(&text, escape);
    let kw = ins.keyword.as_str();
    if words.is_empty() {
        return Err(invalid(format!("{kw} requires at least one argument")));
    }
    let expand = |w: &str| lex::expand(w, vars, escape);
    if !words[0].contains('=') && kw != "ARG" {
        if words.len() < 2 {
            return Err(invalid(format!("{kw} must have two arguments")));
        }
        let rest = text.trim_start()[words[0].len()..].trim_start();
        return Ok(vec![(
            expand(&words[0])?,
            Some(lex::expand_text(rest, vars, escape)?),
        )]);
    }
    let mut out = Vec::new();
    for w in &words {
        match w.split_once('=') {
            Some((k, v)) => {
                let k = expand(k)?;
                if k.is_empty() {
                    return Err(invalid(format!("{kw} names can not be blank")));
                }
                out.push((k, Some(expand(v)?)));
            }
            None if kw == "ARG" => out.push((expand(w)?, None)),
            None => {
                return Err(invalid(format!(
                    "Syntax error - can't find = in \"{w}\". Must be of the form: name=value"
                )))
            }
        }
    }
    if kw == "ARG" && out.len() != 1 {
        return Err(invalid("ARG requires exactly one argument"));
    }
    Ok(out)
}

/// Sets `name=value` in an environment list, replacing an earlier value.
pub fn set_env(env: &mut Vec<String>, name: &str, value: &str) {
    let entry = format!("{name}={value}");
    match env
        .iter_mut()
        .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == name)
    {
        Some(e) => *e = entry,
        None => env.push(entry),
    }
}

/// The environment as variables.
pub fn env_vars(config: &Config) -> Vars {
    config
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The command of RUN/CMD/ENTRYPOINT: an exec form as given, a shell form after the shell.
pub fn command(args: &Args, shell: &[String]) -> Vec<String> {
    match args {
        Args::Exec(v) => v.clone(),
        Args::Shell(s) => {
            let mut cmd = shell.to_vec();
            cmd.push(s.clone());
            cmd
        }
    }
}

/// Go's `%q` of a string list: `["a" "b c"]`.
pub fn go_quoted(list: &[String]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", items.join(" "))
}

/// Go's `%v` of a string list: `[a b]`.
pub fn go_list(list: &[String]) -> String {
    format!("[{}]", list.join(" "))
}

/// Go's `%q` of an int: a quoted rune (`'\x03'`, `'\n'`, `'A'`).
fn go_rune(n: i64) -> String {
    let quoted = match u32::try_from(n).ok().and_then(char::from_u32) {
        Some('\x07') => "\\a".to_string(),
        Some('\x08') => "\\b".to_string(),
        Some('\x0c') => "\\f".to_string(),
        Some('\n') => "\\n".to_string(),
        Some('\r') => "\\r".to_string(),
        Some('\t') => "\\t".to_string(),
        Some('\x0b') => "\\v".to_string(),
        Some('\'') => "\\'".to_string(),
        Some('\\') => "\\\\".to_string(),
        Some(c) if (c as u32) < 0x80 && !c.is_ascii_control() => c.to_string(),
        Some(c) if (c as u32) < 0x80 => format!("\\x{:02x}", c as u32),
        Some(c) if !c.is_control() => c.to_string(),
        Some(c) if (c as u32) < 0x10000 => format!("\\u{:04x}", c as u32),
        Some(c) => format!("\\U{:08x}", c as u32),
        None => '\u{fffd}'.to_string(),
    };
    format!("'{quoted}'")
}

/// A health config as dockerd 20.10 records it: Go's `%q` of the struct
/// (`&{["CMD-SHELL" "x"] "5s" "0s" "0s" '\x03'}`).
pub fn go_health(h: &HealthConfig) -> String {
    let d = |n: i64| format!("\"{}\"", crate::duration::format(n));
    format!(
        "&{{{} {} {} {} {}}}",
        go_quoted(h.test.as_deref().unwrap_or_default()),
        d(h.interval),
        d(h.timeout),
        d(h.start_period),
        go_rune(h.retries)
    )
}

/// `80`, `80/udp`, `8000-8001/tcp` → docker's port keys.
pub fn exposed(words: &[String]) -> Result<Vec<String>, BuildError> {
    let mut out = Vec::new();
    for w in words {
        let (ports, proto) = w.split_once('/').unwrap_or((w, "tcp"));
        let proto = proto.to_ascii_lowercase();
        if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
            return Err(invalid(format!("invalid proto: {proto}")));
        }
        let (lo, hi) = ports.split_once('-').unwrap_or((ports, ports));
        let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>()) else {
            return Err(invalid(format!("invalid containerPort: {ports}")));
        };
        for p in lo..=hi.max(lo) {
            out.push(format!("{p}/{proto}"));
        }
    }
    Ok(out)
}

pub fn add_set(set: &mut Option<std::collections::BTreeMap<String, Empty>>, keys: &[String]) {
    let map = set.get_or_insert_with(Default::default);
    for k in keys {
        map.insert(k.clone(), Empty);
    }
}

/// `/a/./b/../c` → `/a/c` (never above `/`).
pub fn clean_abs(path: &std::path::Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            std::path::Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
            std::path::Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

/// Go duration (`30s`, `1m30s`, `500ms`, `1h`) in nanoseconds.
pub fn duration(flag: &str, text: &str) -> Result<i64, BuildError> {
    let bad = || {
        invalid(format!(
            "Error parsing {flag}: time: invalid duration \"{text}\""
        ))
    };
    crate::duration::parse(text)
        .filter(|_| !text.is_empty())
        .ok_or_else(bad)
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [--interval=… --timeout=… --start-period=…
/// --retries=…] CMD …`.
pub fn healthcheck(ins: &Instruction, shell: &[String]) -> Result<HealthConfig, BuildError> {
    ins.check_flags(&[
        "interval",
        "timeout",
        "start-period",
        "start-interval",
        "retries",
    ])
    .map_err(BuildError::Parse)?;
    let text = match &ins.args {
        Args::Shell(s) => s.trim().to_string(),
        Args::Exec(_) => String::new(),
    };
    let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((&text, ""));
    match word.to_ascii_uppercase().as_str() {
        "NONE" if rest.trim().is_empty() && ins.flags.is_empty() => {
            return Ok(HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            })
        }
        "NONE" => return Err(invalid("HEALTHCHECK NONE takes no arguments")),
        "CMD" => {}
        other => {
            return Err(invalid(format!(
                "Unknown type \"{other}\" in HEALTHCHECK (try CMD)"
            )))
        }
    }
    let rest = rest.trim();
    let test = match serde_json::from_str::<Vec<String>>(rest) {
        Ok(v) if rest.starts_with('[') => [vec!["CMD".to_string()], v].concat(),
        _ => {
            let _ = shell;
            vec!["CMD-SHELL".to_string(), rest.to_string()]
        }
    };
    let time = |name: &str| -> Result<i64, BuildError> {
        match ins.flag(name) {
            Some(v) => duration(&format!("--{name}"), v),
            None => Ok(0),
        }
    };
    let retries = match ins.flag("retries") {
        Some(v) => v
            .parse::<i64>()
            .map_err(|_| invalid(format!("Error parsing --retries: invalid number \"{v}\"")))?,
        None => 0,
    };
    Ok(HealthConfig {
        test: Some(test),
        interval: time("interval")?,
        timeout: time("timeout")?,
        start_period: time("start-period")?,
        retries,
        start_interval: time("start-interval")?,
    })
}

/// What metadata instructions change: the config, and what ENTRYPOINT and MAINTAINER need.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub config: Config,
    /// Whether this stage set CMD (ENTRYPOINT then keeps it).
    pub cmd_set: bool,
    pub author: String,
}

/// The shell of shell forms when no SHELL was given.
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

impl Meta {
    pub fn shell(&self) -> Vec<String> {
        match &self.config.shell {
            Some(s) if !s.is_empty() => s.clone(),
            _ => DEFAULT_SHELL.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// Applies a metadata instruction (not FROM, RUN, COPY, ADD, ARG) to `meta`; returns the
/// words docker records for it (`ENV a=b`). Also what `docker commit --change` runs.
pub fn apply(
    meta: &mut Meta,
    i: &Instruction,
    vars: &Vars,
    escape: char,
) -> Result<String, BuildError> {
    let words = || -> Result<Vec<String>, BuildError> {
        let list = match &i.args {
            Args::Exec(v) => v.clone(),
            Args::Shell(s) => lex::split_words(s, escape),
        };
        Ok(list
            .iter()
            .map(|w| lex::expand(w, vars, escape))
            .collect::<Result<_, _>>()?)
    };
    let vars = vars.clone();
    Ok(match i.keyword.as_str() {
        "ENV" => {
            let pairs = pairs(i, &vars, escape)?;
            let env = meta.config.env.get_or_insert_with(Vec::new);
            let mut shown = Vec::new();
            for (k, v) in pairs {
                let v = v.unwrap_or_default();
                set_env(env, &k, &v);
                shown.push(format!("{k}={v}"));
            }
            format!("ENV {}", shown.join(" "))
        }
        "LABEL" => {
            let pairs = pairs(i, &vars, escape)?;
            let labels = meta.config.labels.get_or_insert_with(Default::default);
            let mut shown = Vec::new();
            for (k, v) in pairs {
                let v = v.unwrap_or_default();
                shown.push(format!("{k}={v}"));
                labels.insert(k, v);
            }
            format!("LABEL {}", shown.join(" "))
        }
        "CMD" => {
            let cmd = command(&i.args, &meta.shell());
            let shown = format!("CMD {}", go_quoted(&cmd));
            meta.config.cmd = Some(cmd);
            meta.cmd_set = true;
            shown
        }
        "ENTRYPOINT" => {
            let ep = command(&i.args, &meta.shell());
            let shown = format!("ENTRYPOINT {}", go_quoted(&ep));
            meta.config.entrypoint = Some(ep);
            if !meta.cmd_set {
                meta.config.cmd = None;
            }
            shown
        }
        "EXPOSE" => {
            let words = words()?;
            if words.is_empty() {
                return Err(BuildError::Invalid(
                    "EXPOSE requires at least one argument".into(),
                ));
            }
            add_set(&mut meta.config.exposed_ports, &exposed(&words)?);
            // dockerd records them sorted, as written.
            let mut words = words;
            words.sort();
            format!("EXPOSE {}", words.join(" "))
        }
        "VOLUME" => {
            let words = words()?;
            if words.is_empty() || words.iter().any(|w| w.trim().is_empty()) {
                return Err(BuildError::Invalid(
                    "VOLUME specified can not be an empty string".into(),
                ));
            }
            add_set(&mut meta.config.volumes, &words);
            format!("VOLUME {}", go_list(&words))
        }
        "WORKDIR" => {
            let dir = lex::expand_text(&i.text(), &vars, escape)?;
            if dir.is_empty() {
                return Err(BuildError::Invalid(
                    "WORKDIR requires exactly one argument".into(),
                ));
            }
            let current = match meta.config.working_dir.as_str() {
                "" => "/",
                wd => wd,
            };
            let joined = std::path::Path::new(current).join(&dir);
            meta.config.working_dir = clean_abs(&joined);
            format!("WORKDIR {}", meta.config.working_dir)
        }
        "USER" => {
            let user = lex::expand_text(&i.text(), &vars, escape)?;
            if user.is_empty() {
                return Err(BuildError::Invalid(
                    "USER requires exactly one argument".into(),
                ));
            }
            meta.config.user = user.clone();
            format!("USER {user}")
        }
        "STOPSIGNAL" => {
            let sig = lex::expand_text(&i.text(), &vars, escape)?;
            if crate::containers::signal::parse(&sig).is_none() {
                return Err(BuildError::Invalid(format!("Invalid signal: {sig}")));
            }
            meta.config.stop_signal = sig.clone();
            format!("STOPSIGNAL {sig}")
        }
        "SHELL" => {
            let Args::Exec(shell) = &i.args else {
                return Err(BuildError::Invalid(
                    "SHELL requires the arguments to be in JSON form".into(),
                ));
            };
            if shell.is_empty() {
                return Err(BuildError::Invalid(
                    "SHELL requires at least one argument".into(),
                ));
            }
            meta.config.shell = Some(shell.clone());
            format!("SHELL {}", go_list(shell))
        }
        "MAINTAINER" => {
            meta.author = i.text();
            format!("MAINTAINER {}", meta.author)
        }
        "HEALTHCHECK" => {
            let mut new = healthcheck(i, &meta.shell())?;
            let shown = format!("HEALTHCHECK {}", go_health(&new));
            // As dockerd's commit merges it: what the new one leaves zero, the old one gives.
            if let Some(old) = &meta.config.healthcheck {
                inherit_health(&mut new, old);
            }
            meta.config.healthcheck = Some(new);
            shown
        }
        "ONBUILD" => {
            let text = i.text();
            let trigger = text
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            if matches!(trigger.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                return Err(BuildError::Invalid(format!(
                    "{trigger} isn't allowed as an ONBUILD trigger"
                )));
            }
            meta.config
                .on_build
                .get_or_insert_with(Vec::new)
                .push(text.clone());
            format!("ONBUILD {text}")
        }
        other => {
            return Err(BuildError::Invalid(format!(
                "{other} is not a metadata instruction"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::parser::parse;

    fn first(text: &str) -> Instruction {
        parse(&format!("FROM a\n{text}\n")).unwrap().instructions[1].clone()
    }

    #[test]
    fn env_pairs_in_both_forms() {
        let vars: Vars = [("A".to_string(), "x".to_string())].into();
        let p = pairs(&first(r#"ENV B="$A y" C=${A:+set} D=\$A"#), &vars, '\\').unwrap();
        assert_eq!(
            p,
            [
                ("B".into(), Some("x y".into())),
                ("C".into(), Some("set".into())),
                ("D".into(), Some("$A".into()))
            ]
        );
        let p = pairs(&first("ENV K some value $A"), &vars, '\\').unwrap();
        assert_eq!(p, [("K".into(), Some("some value x".into()))]);
        let p = pairs(&first("ARG V"), &vars, '\\').unwrap();
        assert_eq!(p, [("V".into(), None)]);
    }

    #[test]
    fn history_words_like_go() {
        assert_eq!(
            go_quoted(&["/bin/sh".into(), "-c".into(), "echo \"hi\"".into()]),
            r#"["/bin/sh" "-c" "echo \"hi\""]"#
        );
        assert_eq!(go_list(&["/data".into(), "/x".into()]), "[/data /x]");
    }

    #[test]
    fn ports_and_durations() {
        assert_eq!(
            exposed(&["80".into(), "53/udp".into(), "8000-8001".into()]).unwrap(),
            ["80/tcp", "53/udp", "8000/tcp", "8001/tcp"]
        );
        assert!(exposed(&["x".into()]).is_err());
        assert_eq!(duration("--interval", "1m30s").unwrap(), 90_000_000_000);
        assert_eq!(duration("--timeout", "500ms").unwrap(), 500_000_000);
        assert!(duration("--timeout", "5").is_err());
    }

    #[test]
    fn healthcheck_forms() {
        let h = healthcheck(
            &first("HEALTHCHECK --interval=5s --retries=3 CMD wget -q x"),
            &[],
        )
        .unwrap();
        assert_eq!(h.test.unwrap(), ["CMD-SHELL", "wget -q x"]);
        assert_eq!((h.interval, h.retries), (5_000_000_000, 3));
        let h = healthcheck(&first(r#"HEALTHCHECK CMD ["true"]"#), &[]).unwrap();
        assert_eq!(h.test.clone().unwrap(), ["CMD", "true"]);
        assert_eq!(go_health(&h), r#"&{["CMD" "true"] "0s" "0s" "0s" '\x00'}"#);
        let five = healthcheck(
            &first("HEALTHCHECK --interval=1m30s --retries=10 CMD x"),
            &[],
        )
        .unwrap();
        assert_eq!(
            go_health(&five),
            r#"&{["CMD-SHELL" "x"] "1m30s" "0s" "0s" '\n'}"#
        );
        let none = healthcheck(&first("HEALTHCHECK NONE"), &[]).unwrap();
        assert_eq!(none.test.clone().unwrap(), ["NONE"]);
        let mut merged = none;
        inherit_health(&mut merged, &five);
        assert_eq!(
            (merged.test.unwrap(), merged.interval, merged.retries),
            (vec!["NONE".to_string()], 90_000_000_000, 10)
        );
        assert_eq!(go_rune(65), "'A'");
        assert_eq!(go_rune(39), r"'\''");
    }
}
