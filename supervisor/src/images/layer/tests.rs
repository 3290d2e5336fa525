//! Tests of layer application, malicious layers first. Layers are built from raw headers so
//! that names a well-behaved tar writer refuses (`../x`, `/etc/x`) can be tried.
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use super::*;

/// A tar stream built entry by entry from raw headers.
#[derive(Default)]
pub struct RawTar {
    bytes: Vec<u8>,
}

/// Kinds of entries the tests craft.
#[derive(Clone, Copy)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Fifo,
    Char,
}

impl RawTar {
    /// Appends one entry: `name` and `link` are written into the header verbatim.
    pub fn entry(
        &mut self,
        kind: Kind,
        name: &str,
        link: &str,
        data: &[u8],
        mode: u32,
    ) -> &mut Self {
        let mut header = tar::Header::new_gnu();
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(match kind {
            Kind::File => tar::EntryType::Regular,
            Kind::Dir => tar::EntryType::Directory,
            Kind::Symlink => tar::EntryType::Symlink,
            Kind::Hardlink => tar::EntryType::Link,
            Kind::Fifo => tar::EntryType::Fifo,
            Kind::Char => tar::EntryType::Char,
        });
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_600_000_000);
        header.set_size(data.len() as u64);
        header.set_cksum();
        self.bytes.extend_from_slice(header.as_bytes());
        self.bytes.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.bytes.extend(std::iter::repeat_n(0, pad));
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.entry(Kind::File, name, "", data, 0o644)
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.entry(Kind::Dir, name, "", b"", 0o755)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(Kind::Symlink, name, target, b"", 0o777)
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(Kind::Hardlink, name, target, b"", 0o644)
    }

    /// The finished stream (two zero blocks appended).
    pub fn finish(&self) -> Vec<u8> {
        let mut out = self.bytes.clone();
        out.extend(std::iter::repeat_n(0, 1024));
        out
    }
}

fn overlay() -> ApplyOptions {
    ApplyOptions {
        whiteouts: Whiteouts::Overlay,
        ..Default::default()
    }
}

/// `base/dest` (the extraction target) and `base/outside` (must stay untouched).
fn sandbox() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let base = tempfile::tempdir().unwrap();
    let dest = base.path().join("dest");
    let outside = base.path().join("outside");
    fs::create_dir(&dest).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"secret").unwrap();
    (base, dest, outside)
}

fn apply_bytes(bytes: &[u8], dest: &Path) -> Result<Applied, Error> {
    apply(bytes, dest, &ApplyOptions::default())
}

fn assert_untouched(outside: &Path) {
    let names: Vec<_> = fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("secret")]);
    assert_eq!(fs::read(outside.join("secret")).unwrap(), b"secret");
    assert_eq!(fs::metadata(outside.join("secret")).unwrap().nlink(), 1);
}

fn refused_naming(result: Result<Applied, Error>, entry: &str) {
    let err = result.expect_err("layer must be refused");
    assert!(
        err.to_string().contains(entry),
        "error {err} should name {entry}"
    );
}

#[test]
fn dotdot_paths_are_refused() {
    let (_base, dest, outside) = sandbox();
    let layer = RawTar::default().file("../outside/pwned", b"x").finish();
    refused_naming(apply_bytes(&layer, &dest), "../outside/pwned");
    let layer = RawTar::default()
        .file("a/../../outside/pwned", b"x")
        .finish();
    refused_naming(apply_bytes(&layer, &dest), "a/../../outside/pwned");
    assert_untouched(&outside);
}

#[test]
fn absolute_paths_are_refused() {
    let (_base, dest, outside) = sandbox();
    let name = format!("{}/pwned", outside.display());
    let layer = RawTar::default().file(&name, b"x").finish();
    refused_naming(apply_bytes(&layer, &dest), &name);
    assert_untouched(&outside);
}

#[test]
fn symlinked_parent_pointing_out_never_reaches_out() {
    let (_base, dest, outside) = sandbox();
    let passwd = fs::read("/etc/passwd").unwrap();
    let layer = RawTar::default()
        .symlink("etc", "/etc")
        .file("etc/passwd", b"root::0:0::/:/bin/sh\n")
        .finish();
    refused_naming(apply_bytes(&layer, &dest), "etc/passwd");
    assert_eq!(fs::read("/etc/passwd").unwrap(), passwd);

    let target = outside.display().to_string();
    let dest2 = dest.parent().unwrap().join("dest2");
    fs::create_dir(&dest2).unwrap();
    let layer = RawTar::default()
        .symlink("out", &target)
        .file("out/pwned", b"x")
        .finish();
    refused_naming(apply_bytes(&layer, &dest2), "out/pwned");
    assert_untouched(&outside);
}

#[test]
fn symlink_chains_stay_inside() {
    let (_base, dest, outside) = sandbox();
    let layer = RawTar::default()
        .symlink("a", "b")
        .symlink("b", "c")
        .symlink("c", "../../../../../outside")
        .file("a/pwned", b"x")
        .finish();
    refused_naming(apply_bytes(&layer, &dest), "a/pwned");
    assert_untouched(&outside);

    // A chain that ends inside the destination is followed there (like a chroot would).
    let dest2 = dest.parent().unwrap().join("dest2");
    fs::create_dir(&dest2).unwrap();
    let layer = RawTar::default()
        .dir("real")
        .symlink("a", "/b")
        .symlink("b", "../../../real")
        .file("a/file", b"inside")
        .finish();
    apply_bytes(&layer, &dest2).unwrap();
    assert_eq!(fs::read(dest2.join("real/file")).unwrap(), b"inside");
    assert_untouched(&outside);
}

#[test]
fn hardlinks_out_or_through_symlinks_are_refused() {
    let (_base, dest, outside) = sandbox();
    let secret = format!("{}/secret", outside.display());
    let layer = RawTar::default().hardlink("h", &secret).finish();
    refused_naming(apply_bytes(&layer, &dest), "h");
    let layer = RawTar::default()
        .hardlink("h", "../outside/secret")
        .finish();
    refused_naming(apply_bytes(&layer, &dest), "h");
    let layer = RawTar::default()
        .symlink("s", &outside.display().to_string())
        .hardlink("h", "s/secret")
        .finish();
    refused_naming(apply_bytes(&layer, &dest), "h");
    let layer = RawTar::default()
        .symlink("s2", "../outside")
        .hardlink("h2", "s2/secret")
        .finish();
    refused_naming(apply_bytes(&layer, &dest), "h2");
    assert_untouched(&outside);
}

#[test]
fn whiteouts_naming_dotdot_are_refused() {
    let (_base, dest, outside) = sandbox();
    for (name, options) in [
        (".wh...", ApplyOptions::default()),
        ("sub/.wh...", overlay()),
        (".wh..", ApplyOptions::default()),
        (".wh.", overlay()),
    ] {
        let layer = RawTar::default().dir("sub").file(name, b"").finish();
        refused_naming(apply(&layer[..], &dest, &options), name);
    }
    assert!(dest.exists());
    assert_untouched(&outside);
}

fn base_layer() -> Vec<u8> {
    RawTar::default()
        .dir("a")
        .file("a/x", b"x")
        .file("a/y", b"y")
        .file("f", b"f")
        .dir("d")
        .file("d/keep", b"k")
        .finish()
}

fn whiteout_layer() -> Vec<u8> {
    RawTar::default()
        .file(".wh.f", b"")
        .dir("a")
        .file("a/z", b"z")
        .file("a/.wh..wh..opq", b"")
        .file("d/.wh.gone", b"")
        .finish()
}

fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

#[test]
fn whiteouts_applied_in_place() {
    let (_base, dest, _outside) = sandbox();
    apply_bytes(&base_layer(), &dest).unwrap();
    apply_bytes(&whiteout_layer(), &dest).unwrap();
    assert_eq!(names(&dest), ["a", "d"]);
    assert_eq!(names(&dest.join("a")), ["z"]);
    assert_eq!(names(&dest.join("d")), ["keep"]);
}

#[test]
fn whiteouts_in_overlay_form() {
    let (_base, dest, _outside) = sandbox();
    apply(&whiteout_layer()[..], &dest, &overlay()).unwrap();
    let f = fs::symlink_metadata(dest.join("f")).unwrap();
    assert!(f.file_type().is_char_device());
    assert_eq!(f.rdev(), 0);
    assert_eq!(
        at::get_xattr(&dest.join("a"), "trusted.overlay.opaque").unwrap(),
        Some(b"y".to_vec())
    );
    assert_eq!(names(&dest.join("a")), ["z"]);
    assert!(fs::symlink_metadata(dest.join("d/gone"))
        .unwrap()
        .file_type()
        .is_char_device());
}

#[test]
fn modes_are_exactly_the_layers() {
    let (_base, dest, _outside) = sandbox();
    let mut tar = RawTar::default();
    tar.entry(Kind::Dir, "sgid", "", b"", 0o2775)
        .entry(Kind::File, "suid", "", b"#!", 0o4755)
        .entry(Kind::File, "plain", "", b"p", 0o644)
        .entry(Kind::File, "open", "", b"o", 0o777)
        .entry(Kind::File, "sticky", "", b"s", 0o1700);
    let old = nix::sys::stat::umask(Mode::from_bits_truncate(0o077));
    let result = apply_bytes(&tar.finish(), &dest);
    nix::sys::stat::umask(old);
    result.unwrap();
    let mode = |n: &str| {
        fs::symlink_metadata(dest.join(n))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("sgid"), 0o2775);
    assert_eq!(mode("suid"), 0o4755);
    assert_eq!(mode("plain"), 0o644);
    assert_eq!(mode("open"), 0o777);
    assert_eq!(mode("sticky"), 0o1700);
}

#[test]
fn setuid_survives_a_non_root_owner() {
    let (_base, dest, _outside) = sandbox();
    let mut header_tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o6755);
    header.set_uid(1000);
    header.set_gid(1000);
    header.set_size(1);
    header_tar
        .append_data(&mut header, "bin", &b"x"[..])
        .unwrap();
    let bytes = header_tar.into_inner().unwrap();
    apply_bytes(&bytes, &dest).unwrap();
    let meta = fs::metadata(dest.join("bin")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o6755);
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
}

#[test]
fn links_fifos_times_and_xattrs_are_kept() {
    let (_base, dest, _outside) = sandbox();
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_pax_extensions([
            ("SCHILY.xattr.user.note", &b"hi"[..]),
            ("SCHILY.xattr.trusted.overlay.opaque", &b"y"[..]),
        ])
        .unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o640);
    header.set_mtime(1_234_567_890);
    header.set_size(5);
    builder
        .append_data(&mut header, "dir/file", &b"hello"[..])
        .unwrap();
    // Without the end-of-archive blocks `into_inner` would add.
    let bytes = builder.get_ref().clone();
    let mut raw = RawTar { bytes };
    raw.hardlink("dir/link", "dir/file")
        .symlink("sym", "dir/file")
        .entry(Kind::Fifo, "fifo", "", b"", 0o600)
        .entry(Kind::Char, "null", "", b"", 0o666);
    let applied = apply_bytes(&raw.finish(), &dest).unwrap();
    assert_eq!(applied.size, 5);
    let file = fs::metadata(dest.join("dir/file")).unwrap();
    assert_eq!(file.mtime(), 1_234_567_890);
    assert_eq!(file.nlink(), 2);
    assert_eq!(fs::read(dest.join("dir/link")).unwrap(), b"hello");
    assert_eq!(
        fs::read_link(dest.join("sym")).unwrap(),
        Path::new("dir/file")
    );
    assert!(fs::symlink_metadata(dest.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(fs::symlink_metadata(dest.join("null"))
        .unwrap()
        .file_type()
        .is_char_device());
    assert_eq!(
        at::get_xattr(&dest.join("dir/file"), "user.note").unwrap(),
        Some(b"hi".to_vec())
    );
    assert_eq!(
        at::get_xattr(&dest.join("dir/file"), "trusted.overlay.opaque").unwrap(),
        None
    );
}

#[test]
fn devices_only_when_allowed() {
    let (_base, dest, _outside) = sandbox();
    let layer = RawTar::default()
        .entry(Kind::Char, "null", "", b"", 0o666)
        .finish();
    let options = ApplyOptions {
        devices: false,
        ..Default::default()
    };
    apply(&layer[..], &dest, &options).unwrap();
    assert!(!dest.join("null").exists());
}

#[test]
fn diff_id_is_the_uncompressed_digest_in_every_compression() {
    let plain = base_layer();
    let expected = crate::images::content::digest_of(&plain);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&plain[..], 1).unwrap();
    for bytes in [plain.clone(), gz, zst] {
        let (_base, dest, _outside) = sandbox();
        let applied = apply_bytes(&bytes, &dest).unwrap();
        assert_eq!(applied.diff_id, expected);
        assert_eq!(applied.tar_size, plain.len() as u64);
        assert_eq!(fs::read(dest.join("a/x")).unwrap(), b"x");
    }
}

#[test]
fn exported_overlay_upper_round_trips() {
    let (_base, upper, _outside) = sandbox();
    apply(&base_layer()[..], &upper, &overlay()).unwrap();
    apply(&whiteout_layer()[..], &upper, &overlay()).unwrap();
    let mut tar_bytes = Vec::new();
    let exported = export_overlay(&upper, &mut tar_bytes).unwrap();
    assert_eq!(
        exported.diff_id,
        crate::images::content::digest_of(&tar_bytes)
    );
    let mut names = Vec::new();
    for entry in tar::Archive::new(&tar_bytes[..]).entries().unwrap() {
        names.push(entry.unwrap().path().unwrap().display().to_string());
    }
    assert!(names.contains(&".wh.f".to_string()), "{names:?}");
    assert!(names.contains(&"a/.wh..wh..opq".to_string()), "{names:?}");
    assert!(names.contains(&"d/.wh.gone".to_string()), "{names:?}");
}

/// A tree with what real layers carry: long names, unicode, links, setuid, xattrs.
fn rich_tree(root: &Path) {
    let long = "d".repeat(120);
    fs::create_dir_all(root.join(&long).join("sub")).unwrap();
    fs::write(root.join(&long).join("sub").join("f".repeat(150)), b"long").unwrap();
    fs::write(root.join("ünïcødé"), b"u").unwrap();
    fs::write(root.join("suid"), b"s").unwrap();
    fs::set_permissions(root.join("suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::hard_link(root.join("suid"), root.join("suid-link")).unwrap();
    std::os::unix::fs::symlink("../../etc/shadow", root.join("rel-link")).unwrap();
    std::os::unix::fs::symlink("x".repeat(200), root.join("long-link")).unwrap();
    std::os::unix::fs::lchown(root.join("ünïcødé"), Some(1234), Some(5678)).unwrap();
    let dir = File::open(root).unwrap();
    at::set_xattr_at(dir.as_fd(), OsStr::new("suid"), b"user.k", b"v").unwrap();
}

fn tree_listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let detail = if meta.is_dir() {
                stack.push(path.clone());
                String::new()
            } else if meta.file_type().is_symlink() {
                fs::read_link(&path).unwrap().display().to_string()
            } else {
                String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned()
            };
            let xattrs = at::xattrs(&path).unwrap();
            out.push(format!(
                "{rel} {:o} {}:{} n{} {detail} {xattrs:?}",
                meta.mode(),
                meta.uid(),
                meta.gid(),
                meta.nlink()
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn gnu_tar_layers_extract_faithfully() {
    let (base, dest, _outside) = sandbox();
    let src = base.path().join("src");
    fs::create_dir(&src).unwrap();
    rich_tree(&src);
    for format in ["pax", "gnu"] {
        let archive = base.path().join(format!("layer-{format}.tar.gz"));
        let xattrs = if format == "pax" {
            "--xattrs"
        } else {
            "--no-xattrs"
        };
        let status = std::process::Command::new("tar")
            .args([xattrs, "--numeric-owner", "-czf"])
            .arg(&archive)
            .arg(format!("--format={format}"))
            .arg("-C")
            .arg(&src)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success());
        let out = dest.join(format);
        fs::create_dir(&out).unwrap();
        let applied = apply(
            File::open(&archive).unwrap(),
            &out,
            &ApplyOptions::default(),
        )
        .unwrap();
        // GNU tar pads to 10 KiB records after the end marker: the diff ID covers it all.
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(File::open(&archive).unwrap())
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain.len() % 10240, 0);
        assert_eq!(applied.diff_id, crate::images::content::digest_of(&plain));
        assert_eq!(applied.tar_size, plain.len() as u64);
        let mut want = tree_listing(&src);
        if format == "gnu" {
            // GNU format carries no xattrs.
            want = want
                .into_iter()
                .map(|l| l.replace("[([117, 115, 101, 114, 46, 107], [118])]", "[]"))
                .collect();
        }
        assert_eq!(tree_listing(&out), want, "{format}");
    }
}

#[test]
fn a_long_name_bomb_is_refused_without_reading_it() {
    // 8 GiB declared, 4 GiB of zeros present in about 4 MB of gzip.
    let bomb = stream::tests::long_name_bomb(8 << 30, 4096);
    assert!(bomb.len() < 8 << 20, "{}", bomb.len());
    let (_tmp, dest, _outside) = sandbox();
    let started = std::time::Instant::now();
    let error = apply_bytes(&bomb, &dest).unwrap_err().to_string();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        error.contains("././@LongLink") && error.contains("GNU long name of 8589934592 bytes"),
        "{error}"
    );
}
