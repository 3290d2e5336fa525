//! Signal names and numbers as docker parses them (`--stop-signal`, `kill -s`): `SIGTERM`,
//! `term`, `15`, `RTMIN+3`, `SIGRTMAX-2`.
use super::SpecError;

const NAMED: [(&str, i32); 31] = [
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
];

/// The real-time signals as glibc numbers them for processes (34..=64).
const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

/// Parses a signal; `field` names the flag in the error (`StopSignal`, `signal`).
pub fn parse(field: &'static str, value: &str) -> Result<i32, SpecError> {
    let bad = || SpecError::invalid(field, value, "invalid signal");
    if let Ok(n) = value.parse::<i32>() {
        return if (1..=RTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = value.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if name == "SYS" {
        return Ok(libc::SIGSYS);
    }
    if let Some(&(_, n)) = NAMED.iter().find(|(n, _)| *n == name) {
        return Ok(n);
    }
    let rt = |base: i32, rest: &str, sign: i32| -> Result<i32, SpecError> {
        let off = if rest.is_empty() {
            0
        } else {
            rest.parse::<i32>().map_err(|_| bad())?
        };
        let n = base + sign * off;
        if (RTMIN..=RTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        }
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(RTMIN, rest.strip_prefix('+').unwrap_or(rest), 1);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(RTMAX, rest.strip_prefix('-').unwrap_or(rest), -1);
    }
    Err(bad())
}
