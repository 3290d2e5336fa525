//! Terminal: the pty master goes to `--console-socket`; the container sees /dev/pts/0 of the
//! configured size.
mod support;
use support::*;

#[test]
fn console_socket_receives_the_pty() {
    let rt = runtime();
    let console = ConsoleSocket::listen().unwrap();
    let mut b = Bundle::new(&["sh", "-c", "tty; stty size"]);
    b.set("/process/terminal", json!(true));
    b.set("/process/consoleSize", json!({"height": 33, "width": 101}));
    b.write();
    let id = unique_id("tty");
    rt.ok(&[
        "create",
        "--bundle",
        b.path_str(),
        "--console-socket",
        console.path_str(),
        &id,
    ]);
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped");
    let out = console.output().unwrap();
    rt.ok(&["delete", &id]);
    assert!(out.contains("/dev/pts/0"), "{out:?}");
    assert!(out.contains("33 101"), "{out:?}");
}
