//! Signal names and numbers as docker takes them (`KILL`, `SIGKILL`, `9`).

/// The signal number of `name`, or None.
pub fn parse(name: &str) -> Option<i32> {
    if let Ok(n) = name.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let n = match bare {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => return rt_signal(bare),
    };
    Some(n)
}

/// `RTMIN`, `RTMIN+3`, `RTMAX-1`.
fn rt_signal(name: &str) -> Option<i32> {
    let (base, rest) = if let Some(r) = name.strip_prefix("RTMIN") {
        (libc::SIGRTMIN(), r)
    } else if let Some(r) = name.strip_prefix("RTMAX") {
        (libc::SIGRTMAX(), r)
    } else {
        return None;
    };
    let offset: i32 = match rest {
        "" => 0,
        r => r.parse().ok()?,
    };
    Some(base + offset).filter(|n| (1..=64).contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_prefixes() {
        assert_eq!(parse("KILL"), Some(9));
        assert_eq!(parse("sigterm"), Some(15));
        assert_eq!(parse("9"), Some(9));
        assert_eq!(parse("SIGRTMIN+1"), Some(libc::SIGRTMIN() + 1));
        assert_eq!(parse("NOPE"), None);
        assert_eq!(parse("0"), None);
    }
}
