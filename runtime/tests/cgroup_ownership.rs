//! A container's cgroup is its own: cgroupsPath `/`, the runtime's own cgroup or a cgroup that
//! already holds processes is refused at create, and `kill --all` / `delete --force` signal only
//! processes of the container, while `delete` of a stopped container kills what it left behind.
//!
//! Every test runs inside a throw-away cgroup seen through a cgroup namespace of its own
//! (`berth_integration::cgroupns`): there `/` is that throw-away cgroup, so a runtime that gets
//! this wrong kills the test's own decoy processes, never the host's.
mod support;
use berth_integration::cgroupns::CgroupSandbox;
use support::*;

/// A shell prelude: `$RT` runs the runtime with a root in the sandbox; `alive NAME PID` prints
/// `NAME-ALIVE` when PID still runs; `mkcg DIR` makes cgroup DIR on every hierarchy; `joincg
/// DIR PID` moves PID there on every hierarchy.
fn prelude(sb: &CgroupSandbox) -> String {
    format!(
        "RT=\"{bin} --root {root}\"\n\
         alive() {{ kill -0 \"$2\" 2>/dev/null && echo \"$1-ALIVE\"; }}\n\
         hier() {{ for m in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do [ -e \"$m/cgroup.procs\" ] && echo \"$m\"; done; }}\n\
         mkcg() {{ for m in $(hier); do mkdir \"$m/$1\"; for f in cpuset.cpus cpuset.mems; do \
           [ -e \"$m/$1/$f\" ] && [ ! -e \"$m/cgroup.controllers\" ] && cat \"$(dirname \"$m/$1\")/$f\" > \"$m/$1/$f\"; done; done; }}\n\
         joincg() {{ for m in $(hier); do echo \"$2\" > \"$m/$1/cgroup.procs\"; done; }}\n",
        bin = runtime_bin().display(),
        root = sb.work_dir().join("root").display(),
    )
}

/// Bundles the runtime cannot leave behind: their state lives in the sandbox's work dir.
fn bundle_with_cgroup(args: &[&str], cgroups_path: &str) -> Bundle {
    let mut b = Bundle::new(args);
    b.set("/linux/cgroupsPath", json!(cgroups_path));
    b.write();
    b
}

fn run(sb: &CgroupSandbox, script: &str) -> String {
    let out = sb.run(&format!("{}{script}", prelude(sb)));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "sandbox script failed: {text}");
    text
}

#[test]
fn create_refuses_the_root_cgroup() {
    let sb = CgroupSandbox::new("root");
    let b = bundle_with_cgroup(&["sleep", "1000"], "/");
    let out = run(
        &sb,
        &format!(
            "sleep 1000 & decoy=$!\n\
             $RT create --bundle {b} c1; echo \"create=$?\"\n\
             $RT delete --force c1 2>/dev/null\n\
             alive decoy $decoy; alive shell $$\nkill $decoy\n",
            b = b.path_str()
        ),
    );
    assert!(
        out.contains("create=1"),
        "create with cgroupsPath / must fail: {out}"
    );
    assert!(
        out.contains("cgroupsPath \"/\""),
        "the error names the field: {out}"
    );
    assert!(out.contains("root cgroup"), "and the problem: {out}");
    assert!(
        out.contains("decoy-ALIVE") && out.contains("shell-ALIVE"),
        "{out}"
    );
}

#[test]
fn create_refuses_a_cgroup_that_holds_processes() {
    let sb = CgroupSandbox::new("busy");
    let b = bundle_with_cgroup(&["sleep", "1000"], "/busy");
    let out = run(
        &sb,
        &format!(
            "sleep 1000 & decoy=$!\n\
             mkcg busy; joincg busy $decoy\n\
             $RT create --bundle {b} c1; echo \"create=$?\"\n\
             $RT kill --all c1 KILL 2>/dev/null; $RT delete --force c1 2>/dev/null\n\
             alive decoy $decoy\nkill $decoy\n",
            b = b.path_str()
        ),
    );
    assert!(
        out.contains("create=1"),
        "joining a busy cgroup must fail: {out}"
    );
    assert!(
        out.contains("container's cgroup is not empty: 1 process(es) found"),
        "runc's wording: {out}"
    );
    assert!(out.contains("decoy-ALIVE"), "{out}");
}

/// `restore` puts criu's processes in the container's cgroup: the same ownership rule as create,
/// checked before criu runs.
#[test]
fn restore_refuses_a_cgroup_that_holds_processes() {
    let sb = CgroupSandbox::new("busy-restore");
    let b = bundle_with_cgroup(&["sleep", "1000"], "/busy");
    let out = run(
        &sb,
        &format!(
            "sleep 1000 & decoy=$!\n\
             mkcg busy; joincg busy $decoy\n\
             mkdir -p {img}\n\
             $RT restore --image-path {img} --bundle {b} c1; echo \"restore=$?\"\n\
             $RT delete --force c1 2>/dev/null\n\
             alive decoy $decoy\nkill $decoy\n",
            b = b.path_str(),
            img = sb.work_dir().join("image").display(),
        ),
    );
    assert!(
        out.contains("restore=1"),
        "restore into a busy cgroup must fail: {out}"
    );
    assert!(
        out.contains("container's cgroup is not empty: 1 process(es) found"),
        "refused for the cgroup, not by criu: {out}"
    );
    assert!(out.contains("decoy-ALIVE"), "{out}");
}

#[test]
fn create_refuses_an_ancestor_of_a_busy_cgroup() {
    // `/a` itself is empty but `/a/b` holds a process: kill --all of `/a` would reach it.
    let sb = CgroupSandbox::new("anc");
    let b = bundle_with_cgroup(&["sleep", "1000"], "/a");
    let out = run(
        &sb,
        &format!(
            "sleep 1000 & decoy=$!\n\
             mkcg a; mkcg a/b; joincg a/b $decoy\n\
             $RT create --bundle {b} c1; echo \"create=$?\"\n\
             $RT delete --force c1 2>/dev/null\n\
             alive decoy $decoy\nkill $decoy\n",
            b = b.path_str()
        ),
    );
    assert!(out.contains("create=1"), "{out}");
    assert!(out.contains("decoy-ALIVE"), "{out}");
}

#[test]
fn create_refuses_the_runtimes_own_cgroup() {
    // The runtime runs in /own (with nothing else): it must not adopt that cgroup either.
    let sb = CgroupSandbox::new("own");
    let b = bundle_with_cgroup(&["sleep", "1000"], "/own");
    let out = run(
        &sb,
        &format!(
            "mkcg own\n\
             (joincg own 0; exec $RT create --bundle {b} c1); echo \"create=$?\"\n\
             $RT delete --force c1 2>/dev/null\nalive shell $$\n",
            b = b.path_str()
        ),
    );
    assert!(out.contains("create=1"), "{out}");
    assert!(out.contains("runtime's own cgroup"), "{out}");
    assert!(out.contains("shell-ALIVE"), "{out}");
}

#[test]
fn kill_all_spares_a_process_not_started_for_the_container() {
    // A process moved into the container's cgroup from outside its pid namespace is not the
    // container's: kill --all and delete --force leave it alone (and say so).
    let sb = CgroupSandbox::new("foreign");
    let b = bundle_with_cgroup(&["sleep", "1000"], "/c1");
    let out = run(
        &sb,
        &format!(
            "$RT create --bundle {b} c1 && $RT start c1 || echo START-FAILED\n\
             init=$($RT state c1 | sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p')\n\
             sleep 1000 & decoy=$!\n\
             joincg c1 $decoy\n\
             $RT kill --all c1 KILL; echo \"kill=$?\"\n\
             while kill -0 $init 2>/dev/null; do sleep 0.05; done; echo INIT-GONE\n\
             $RT delete --force c1; echo \"delete=$?\"\n\
             alive decoy $decoy\nkill $decoy; wait $decoy\n\
             for m in $(hier); do rmdir \"$m/c1\"; done\n\
             $RT delete --force c1; echo \"delete2=$?\"\n",
            b = b.path_str()
        ),
    );
    assert!(!out.contains("START-FAILED"), "{out}");
    assert!(out.contains("kill=0") && out.contains("INIT-GONE"), "{out}");
    assert!(
        out.contains("decoy-ALIVE"),
        "kill --all / delete --force reached it: {out}"
    );
    assert!(
        out.contains("delete=1"),
        "delete cannot remove a cgroup it does not own: {out}"
    );
    assert!(out.contains("not started for the container"), "{out}");
    assert!(out.contains("delete2=0"), "{out}");
}

#[test]
fn delete_kills_what_a_stopped_container_left_in_its_cgroup() {
    // c2 shares c1's pid namespace and leaves a child behind when its init exits: delete of
    // stopped c2 kills that child (it is c2's, in c2's own cgroup) and removes the cgroup.
    let sb = CgroupSandbox::new("left");
    let b1 = bundle_with_cgroup(&["sleep", "1000"], "/c1");
    let b2 = bundle_with_cgroup(&["sh", "-c", "sleep 1000 & exit 0"], "/c2");
    let out = run(
        &sb,
        &format!(
            "cg2=/sys/fs/cgroup/unified; [ -d $cg2 ] || cg2=/sys/fs/cgroup\n\
             $RT create --bundle {b1} c1 && $RT start c1 || echo START1-FAILED\n\
             init=$($RT state c1 | sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p')\n\
             sed -i \"s|\\\"type\\\": \\\"pid\\\"|&, \\\"path\\\": \\\"/proc/$init/ns/pid\\\"|\" {b2}/config.json\n\
             $RT create --bundle {b2} c2 && $RT start c2 || echo START2-FAILED\n\
             while $RT state c2 | grep -q running; do sleep 0.05; done\n\
             echo \"left=$(wc -l < $cg2/c2/cgroup.procs)\"\n\
             $RT delete c2; echo \"delete=$?\"\n\
             [ -e $cg2/c2 ] || echo CGROUP-GONE\n\
             $RT delete --force c1\n",
            b1 = b1.path_str(),
            b2 = b2.path_str()
        ),
    );
    assert!(
        !out.contains("START1-FAILED") && !out.contains("START2-FAILED"),
        "{out}"
    );
    assert!(
        out.contains("left=1"),
        "the child outlives c2's init: {out}"
    );
    assert!(out.contains("delete=0"), "{out}");
    assert!(out.contains("CGROUP-GONE"), "{out}");
}
