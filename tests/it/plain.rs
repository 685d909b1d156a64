//! `--plain`: mcprobe against Python scripts that behave like the course lab's (tests/lab_scripts/),
//! on loopback.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::*;

const LAB_GROUP: &str = "224.3.29.71";

fn script(name: &str) -> String {
    format!("{}/tests/lab_scripts/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A lab-style Python receiver, ready once it printed its waiting line; killed when dropped.
struct PyReceiver(Child, std::sync::mpsc::Receiver<String>);

impl PyReceiver {
    fn start(port: u16, reply_from: &str) -> Self {
        let mut child = Command::new("python3")
            .args(["-u", &script("receiver.py"), "--group", LAB_GROUP, "--port", &port.to_string()])
            .args(["--reply-from", reply_from, "--seconds", "30"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let first = rx.recv_timeout(PATIENCE).expect("the receiver starts");
        assert!(first.contains("waiting to receive"), "{first}");
        PyReceiver(child, rx)
    }
}

impl Drop for PyReceiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn plain_probes_count_every_lab_receiver() {
    let port = free_port();
    let rx: Vec<PyReceiver> = (2..=4).map(|i| PyReceiver::start(port, &format!("127.0.0.{i}"))).collect();
    let dir = tempfile::tempdir().unwrap();
    // Plain acks carry no sequence number: one is the latest probe's only within --timeout, which
    // must stay below --interval. 90 ms leaves slow Python receivers on a loaded machine room.
    let mut c = bin();
    c.args(["probe", "--plain", "--message", "privet", "--iface", "127.0.0.1", "--group", LAB_GROUP])
        .args(["--port", &port.to_string(), "--count", "40", "--interval", "100ms", "--timeout", "90ms", "--quiet"])
        .args(["--out", dir.path().to_str().unwrap()]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = csv_rows(&dir.path().join("summary.csv"));
    assert_eq!(rows.len(), 3, "one host per reply address: {rows:?}");
    for (i, r) in rows.iter().enumerate() {
        assert!(r["address"].starts_with(&format!("127.0.0.{}:", i + 2)), "{r:?}");
        assert_eq!((num(r, "sent"), num(r, "received"), num(r, "lost")), (40.0, 40.0, 0.0), "{r:?}");
        assert!(num(r, "rtt_p50_us") > 0.0);
    }
    // The receivers got the message, as the lab's did.
    let got: Vec<String> = rx[0].1.try_iter().collect();
    assert!(got.iter().any(|l| l == "b'privet'"), "{got:?}");
}

#[test]
fn the_lab_sender_hears_plain_responders() {
    let port = free_port();
    let _r: Vec<Responder> = ["p1", "p2"].iter().map(|n| Responder::start_with(port, n, &["--plain"])).collect();
    let out = Command::new("python3")
        .args([&script("sender.py"), "--group", GROUP, "--port", &port.to_string()])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let acks = stdout.lines().filter(|l| l.starts_with("received b'ack' from")).count();
    assert_eq!(acks, 2, "{stdout}");
}
