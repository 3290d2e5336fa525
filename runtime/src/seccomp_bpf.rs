//! The filter as the kernel gets it: libseccomp's BPF program, led by a check of our own that
//! answers ENOSYS to a syscall number above the newest one the profile names (for each of its
//! architectures), then installed with seccomp(2) and the config's flags.
//!
//! A syscall newer than the profile was unknown to whoever wrote it: ENOSYS (not the default
//! action) lets libc fall back as on an older kernel (clone3 → clone), and a number no kernel
//! knows yet (1000) gets what the kernel itself would answer.
use crate::seccomp::Error;
use libseccomp::{ScmpArch, ScmpFilterContext, ScmpSyscall};
use std::io::{Read, Seek};
use std::os::fd::{FromRawFd, OwnedFd};
use std::str::FromStr;

// Classic BPF opcodes (linux/filter.h).
/// BPF_LD | BPF_W (both 0) | BPF_ABS.
const LD_W_ABS: u16 = 0x20;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x05 | 0x10;
const JMP_JGT_K: u16 = 0x05 | 0x20;
const JMP_JSET_K: u16 = 0x05 | 0x40;
const RET_K: u16 = 0x06;
// Offsets in struct seccomp_data.
const NR: u32 = 0;
const ARCH: u32 = 4;
/// x32 syscalls come with the x86_64 audit arch and this bit in their number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// One architecture of the filter: its audit token and the newest syscall the profile names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchLimit {
    pub token: u32,
    pub newest: u32,
}

/// The newest syscall `names` holds for each architecture (the native one and `archs`, as
/// the config names them: `SCMP_ARCH_X86_64`); architectures where none is known are left out,
/// and x32 too (its numbers are checked as x86_64's are not: they keep the main filter).
pub fn arch_limits<'a>(
    archs: &[String],
    names: impl Iterator<Item = &'a str> + Clone,
) -> Vec<ArchLimit> {
    let mut list: Vec<(u32, ScmpArch)> = vec![(
        unsafe { libseccomp_sys::seccomp_arch_native() },
        ScmpArch::native(),
    )];
    for a in archs {
        let short = a.trim_start_matches("SCMP_ARCH_").to_ascii_lowercase();
        let Ok(c) = std::ffi::CString::new(short) else {
            continue;
        };
        let token = unsafe { libseccomp_sys::seccomp_arch_resolve_name(c.as_ptr()) };
        let Ok(arch) = ScmpArch::from_str(a) else {
            continue;
        };
        if token != 0 && !list.iter().any(|(t, _)| *t == token) {
            list.push((token, arch));
        }
    }
    list.into_iter()
        .filter(|(token, _)| *token != libseccomp_sys::SCMP_ARCH_X32)
        .filter_map(|(token, arch)| {
            let newest = names
                .clone()
                .filter_map(|n| ScmpSyscall::from_name_by_arch(n, arch).ok())
                .map(i32::from)
                .filter(|nr| *nr >= 0)
                .max()?;
            Some(ArchLimit {
                token,
                newest: newest as u32,
            })
        })
        .collect()
}

/// `program` led by the ENOSYS check for `limits`.
pub fn with_enosys_prefix(
    program: Vec<libc::sock_filter>,
    limits: &[ArchLimit],
) -> Result<Vec<libc::sock_filter>, Error> {
    if limits.is_empty() {
        return Ok(program);
    }
    // The prefix leaves the arch/nr in the accumulator: the program must load its own first.
    if program
        .first()
        .is_none_or(|i| i.code != LD_W_ABS || i.k != ARCH)
    {
        return Err(Error::Unsupported(
            "libseccomp's program does not start by loading the architecture".into(),
        ));
    }
    // ld arch; per arch: jeq token (else next arch); ld nr; [jset x32 → end]; jgt newest →
    // enosys, else end. Then: ja end; enosys: ret ERRNO(ENOSYS); end: the program.
    let x86_64 = libseccomp_sys::SCMP_ARCH_X86_64;
    let block_len = |l: &ArchLimit| if l.token == x86_64 { 4 } else { 3 };
    let len: usize = 1 + limits.iter().map(block_len).sum::<usize>() + 2;
    let (enosys, end) = (len - 1, len);
    let rel = |from: usize, to: usize| -> Result<u8, Error> {
        u8::try_from(to - from - 1).map_err(|_| {
            Error::Unsupported(format!("{} architectures: jump too far", limits.len()))
        })
    };
    let mut prefix = vec![insn(LD_W_ABS, 0, 0, ARCH)];
    for l in limits {
        let at = prefix.len();
        let next = at + block_len(l);
        prefix.push(insn(JMP_JEQ_K, 0, rel(at, next)?, l.token));
        prefix.push(insn(LD_W_ABS, 0, 0, NR));
        if l.token == x86_64 {
            let i = prefix.len();
            prefix.push(insn(JMP_JSET_K, rel(i, end)?, 0, X32_SYSCALL_BIT));
        }
        let i = prefix.len();
        prefix.push(insn(JMP_JGT_K, rel(i, enosys)?, rel(i, end)?, l.newest));
    }
    prefix.push(insn(JMP_JA, 0, 0, 1));
    prefix.push(insn(
        RET_K,
        0,
        0,
        libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
    ));
    debug_assert_eq!(prefix.len(), len);
    prefix.extend(program);
    Ok(prefix)
}

/// libseccomp's program for `ctx`, through a memfd.
pub fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, Error> {
    let fd = unsafe { libc::memfd_create(c"berth-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::Unsupported(format!(
            "memfd for the filter: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: memfd_create returned a new fd that nothing else owns.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    ctx.export_bpf(&file).map_err(|source| Error::Lib {
        what: "export filter".into(),
        source,
    })?;
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| Error::Unsupported(format!("read the exported filter: {e}")))?;
    Ok(bytes
        .chunks_exact(8)
        .map(crate::seccomp_cache::decode)
        .collect())
}

/// Install `program` in the calling thread with seccomp(2) `flags`; with
/// SECCOMP_FILTER_FLAG_NEW_LISTENER the notify listener (close-on-exec).
pub fn install(
    program: &[libc::sock_filter],
    flags: libc::c_ulong,
) -> Result<Option<OwnedFd>, Error> {
    let len = u16::try_from(program.len())
        .map_err(|_| Error::Unsupported(format!("filter of {} instructions", program.len())))?;
    let prog = libc::sock_fprog {
        len,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if r < 0 {
        return Err(Error::Unsupported(format!(
            "load filter: {}",
            std::io::Error::last_os_error()
        )));
    }
    if flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER == 0 {
        if r > 0 {
            // TSYNC without a listener: the thread that could not take the filter.
            return Err(Error::Unsupported(format!(
                "load filter: thread {r} could not be synchronized"
            )));
        }
        return Ok(None);
    }
    // SAFETY: with NEW_LISTENER seccomp(2) returns a new fd (O_CLOEXEC) that nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(r as i32) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_architecture_skip_x32_and_unknown_names() {
        let archs = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"].map(String::from);
        let l = arch_limits(&archs, ["read", "exit_group", "no_such_call"].into_iter());
        assert_eq!(
            l,
            vec![
                ArchLimit {
                    token: libseccomp_sys::SCMP_ARCH_X86_64,
                    newest: 231
                },
                ArchLimit {
                    token: libseccomp_sys::SCMP_ARCH_X86,
                    newest: 252
                },
            ]
        );
        assert!(arch_limits(&archs, ["no_such_call"].into_iter()).is_empty());
    }

    #[test]
    fn the_prefix_jumps_land_on_enosys_or_the_program() {
        let program = vec![insn(LD_W_ABS, 0, 0, ARCH), insn(RET_K, 0, 0, 0)];
        let limits = [
            ArchLimit {
                token: libseccomp_sys::SCMP_ARCH_X86_64,
                newest: 231,
            },
            ArchLimit {
                token: libseccomp_sys::SCMP_ARCH_X86,
                newest: 252,
            },
        ];
        let p = with_enosys_prefix(program, &limits).unwrap();
        // 1 + 4 + 3 + 2 prefix instructions, then the program.
        assert_eq!(p.len(), 12);
        let (enosys, end) = (9, 10);
        assert_eq!(p[enosys].k, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
        assert_eq!((p[3].code, 3 + 1 + p[3].jt as usize), (JMP_JSET_K, end));
        assert_eq!(4 + 1 + p[4].jt as usize, enosys);
        assert_eq!(4 + 1 + p[4].jf as usize, end);
        assert_eq!(
            1 + 1 + p[1].jf as usize,
            5,
            "x86_64 miss goes to the x86 block"
        );
        assert_eq!(
            5 + 1 + p[5].jf as usize,
            8,
            "x86 miss goes on to the program"
        );
        assert_eq!(7 + 1 + p[7].jt as usize, enosys);
        assert_eq!(8 + 1 + p[8].k as usize, end);
        let bad = vec![insn(RET_K, 0, 0, 0)];
        assert!(with_enosys_prefix(bad, &limits).is_err());
    }
}
