//! cgroup v2 device control: a BPF_PROG_TYPE_CGROUP_DEVICE program, written instruction by
//! instruction from the rules, loaded with bpf(2) and attached to the container's cgroup with
//! BPF_F_ALLOW_MULTI. On update the new program is attached first, then the old ones detached,
//! so there is no moment without a filter.
//!
//! The program sees `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`,
//! access_type = (access << 16) | type, type 1 = block, 2 = char; access 1 = mknod, 2 = read,
//! 4 = write. It returns 1 to allow, 0 to deny. Rules are tested last first (the last matching
//! rule wins); an allow rule matches when it grants every requested access, a deny rule when it
//! covers any of them.
use super::validate::{DeviceProgram, DeviceRule};
use super::{Error, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    /// dst in the low nibble, src in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

// Opcodes (class | op | source).
const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const ALU32_AND_K: u8 = 0x54;
const ALU32_RSH_K: u8 = 0x74;
const ALU64_AND_K: u8 = 0x57;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const JMP_JNE_K: u8 = 0x55;
const JMP_JEQ_K: u8 = 0x15;
const JMP_EXIT: u8 = 0x95;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// Registers: r2 = device type, r3 = requested access, r4 = major, r5 = minor.
pub fn assemble(program: &DeviceProgram) -> Vec<Insn> {
    let mut out = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU32_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU32_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for rule in program.rules.iter().rev() {
        out.extend(rule_block(rule));
    }
    out.push(insn(ALU64_MOV_K, 0, 0, 0, i32::from(program.default_allow)));
    out.push(insn(JMP_EXIT, 0, 0, 0, 0));
    out
}

/// Tests that jump past the block when the rule does not match, then `return allow`.
fn rule_block(rule: &DeviceRule) -> Vec<Insn> {
    // (code, dst, imm) of each "skip this rule" jump; the offset is patched below.
    let mut block: Vec<Insn> = Vec::new();
    let mut jumps = Vec::new();
    let mut jump = |block: &mut Vec<Insn>, code: u8, dst: u8, imm: i32| {
        jumps.push(block.len());
        block.push(insn(code, dst, 0, 0, imm));
    };
    match rule.kind {
        'b' => jump(&mut block, JMP_JNE_K, 2, 1),
        'c' => jump(&mut block, JMP_JNE_K, 2, 2),
        _ => {}
    }
    if rule.allow && rule.access != 7 {
        // Requested bits outside the rule → not granted by it.
        block.push(insn(ALU64_MOV_X, 1, 3, 0, 0));
        block.push(insn(ALU64_AND_K, 1, 0, 0, (!rule.access & 7) as i32));
        jump(&mut block, JMP_JNE_K, 1, 0);
    } else if !rule.allow && rule.access != 7 {
        // No requested bit covered → the deny does not apply.
        block.push(insn(ALU64_MOV_X, 1, 3, 0, 0));
        block.push(insn(ALU64_AND_K, 1, 0, 0, rule.access as i32));
        jump(&mut block, JMP_JEQ_K, 1, 0);
    }
    if let Some(major) = rule.major {
        jump(&mut block, JMP_JNE_K, 4, major as i32);
    }
    if let Some(minor) = rule.minor {
        jump(&mut block, JMP_JNE_K, 5, minor as i32);
    }
    block.push(insn(ALU64_MOV_K, 0, 0, 0, i32::from(rule.allow)));
    block.push(insn(JMP_EXIT, 0, 0, 0, 0));
    let len = block.len();
    for at in jumps {
        block[at].off = (len - at - 1) as i16;
    }
    block
}

fn bpf(cmd: libc::c_long, attr: &mut [u64]) -> std::io::Result<i64> {
    // SAFETY: `attr` is a zero-padded `union bpf_attr` image of the size we pass.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr),
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn err(op: &'static str, path: &Path, source: std::io::Error, log: String) -> Error {
    Error::Bpf {
        op,
        path: path.to_path_buf(),
        source,
        log,
    }
}

/// Load the program; on a verifier error the kernel's log is put in the error.
fn load(insns: &[Insn], cgroup: &Path) -> Result<OwnedFd> {
    let license = b"GPL\0";
    let mut log = vec![0u8; 0];
    for attempt in 0..2 {
        if attempt == 1 {
            log = vec![0u8; 65536];
        }
        let mut attr = [0u64; 16];
        attr[0] = u64::from(BPF_PROG_TYPE_CGROUP_DEVICE) | ((insns.len() as u64) << 32);
        attr[1] = insns.as_ptr() as u64;
        attr[2] = license.as_ptr() as u64;
        if attempt == 1 {
            attr[3] = 1 | ((log.len() as u64) << 32); // log_level, log_size
            attr[4] = log.as_mut_ptr() as u64;
        }
        // attr[5]: kern_version, prog_flags; attr[6..8]: prog_name; attr[8]: prog_ifindex,
        // expected_attach_type.
        attr[8] = u64::from(BPF_CGROUP_DEVICE) << 32;
        match bpf(BPF_PROG_LOAD, &mut attr) {
            // SAFETY: a new fd owned by nobody else.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
            Err(e) if attempt == 1 => {
                let text = String::from_utf8_lossy(&log);
                let text = text.trim_end_matches('\0').trim();
                return Err(err("load", cgroup, e, format!("; verifier: {text}")));
            }
            Err(_) => continue,
        }
    }
    unreachable!("the second attempt returns")
}

fn open_dir(cgroup: &Path) -> Result<OwnedFd> {
    let f = std::fs::File::open(cgroup).map_err(|e| err("open", cgroup, e, String::new()))?;
    Ok(OwnedFd::from(f))
}

/// Ids of the device programs attached to the cgroup itself.
fn attached(dir: &OwnedFd, cgroup: &Path) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = [0u64; 8];
    attr[0] = dir.as_raw_fd() as u64 | (u64::from(BPF_CGROUP_DEVICE) << 32);
    attr[2] = ids.as_mut_ptr() as u64;
    attr[3] = ids.len() as u64; // prog_cnt (in/out)
    bpf(BPF_PROG_QUERY, &mut attr).map_err(|e| err("query", cgroup, e, String::new()))?;
    ids.truncate((attr[3] & 0xffff_ffff) as usize);
    Ok(ids)
}

fn detach(dir: &OwnedFd, id: u32, cgroup: &Path) -> Result<()> {
    let mut attr = [0u64; 4];
    attr[0] = u64::from(id);
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)
        .map_err(|e| err("get fd by id", cgroup, e, String::new()))?;
    // SAFETY: a new fd owned by nobody else.
    let prog = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut attr = [0u64; 4];
    attr[0] = dir.as_raw_fd() as u64 | ((prog.as_raw_fd() as u64) << 32);
    attr[1] = u64::from(BPF_CGROUP_DEVICE);
    bpf(BPF_PROG_DETACH, &mut attr).map_err(|e| err("detach", cgroup, e, String::new()))?;
    Ok(())
}

/// Replace the device programs on `cgroup` with one enforcing `program`.
pub fn apply(cgroup: &Path, program: &DeviceProgram) -> Result<()> {
    let insns = assemble(program);
    let prog = load(&insns, cgroup)?;
    let dir = open_dir(cgroup)?;
    let old = attached(&dir, cgroup)?;
    let mut attr = [0u64; 4];
    attr[0] = dir.as_raw_fd() as u64 | ((prog.as_raw_fd() as u64) << 32);
    attr[1] = u64::from(BPF_CGROUP_DEVICE) | (u64::from(BPF_F_ALLOW_MULTI) << 32);
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|e| err("attach", cgroup, e, String::new()))?;
    for id in old {
        detach(&dir, id, cgroup)?;
    }
    Ok(())
}

/// How many device programs are attached to `cgroup` (tests).
#[cfg(test)]
pub fn attached_count(cgroup: &Path) -> Result<usize> {
    let dir = open_dir(cgroup)?;
    Ok(attached(&dir, cgroup)?.len())
}
