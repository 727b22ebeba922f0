//! Crashes under load: real SCEP clients (micromdm's scepclient) enrol concurrently while
//! the signer, then the edge, are killed with SIGKILL and restarted several times.
//! Afterwards every certificate a client received is in the store, no serial is there
//! twice, and the store opened each time.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tests::{Appliance, scepclient};

const SECRET: &str = "crash-secret-1";
const CLIENTS: usize = 4;

/// Enrol in a loop until `stop`: each attempt in a fresh directory; the directories of the
/// attempts that received a certificate.
fn enrol_until(url: String, dir: PathBuf, client: usize, stop: Arc<AtomicBool>) -> Vec<PathBuf> {
    let mut got = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let d = dir.join(format!("c{client}-{i}"));
        let out = scepclient(&d, &url, Some(SECRET), &format!("crash-{client}-{i}"));
        if out.ok() && d.join("cert.pem").exists() {
            got.push(d);
        }
    }
    got
}

#[test]
fn killing_the_signer_and_the_edge_under_load_loses_and_duplicates_nothing() {
    let mut a = Appliance::with_edge(1, &["alice"]);
    a.create_root_and_issuing("CN=Crash Root", "issuing", "CN=Crash Issuing");
    a.create_static_profile("devices", "issuing", SECRET, &["--legacy-algorithms"]);
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (url, dir, stop) = (a.scep_url("devices"), a.path("clients"), stop.clone());
            std::thread::spawn(move || enrol_until(url, dir, c, stop))
        })
        .collect();
    let enrolled = |a: &Appliance| -> usize {
        let s = a.cli_json("alice", &["cert", "stats", "--json"]);
        s.as_array()
            .unwrap()
            .iter()
            .map(|c| c["total"].as_u64().unwrap() as usize)
            .sum()
    };
    // Kill each one three times, a moment after some certificates went out since the last.
    for round in 0..6 {
        let before = enrolled(&a);
        let deadline = Instant::now() + Duration::from_secs(60);
        while enrolled(&a) < before + 3 {
            assert!(
                Instant::now() < deadline,
                "no enrolment progress in round {round}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        if round % 2 == 0 {
            a.crash();
            std::thread::sleep(Duration::from_millis(300));
            a.start();
        } else {
            a.stop_edge();
            std::thread::sleep(Duration::from_millis(300));
            a.start_edge();
        }
    }
    // A last stretch after the last restart, then stop the clients.
    let before = enrolled(&a);
    let deadline = Instant::now() + Duration::from_secs(60);
    while enrolled(&a) < before + 3 {
        assert!(
            Instant::now() < deadline,
            "no enrolment after the last restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::SeqCst);
    let received: Vec<PathBuf> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(received.len() >= 10, "only {} enrolments", received.len());

    // Every certificate a client received is in the store, no serial twice, and no more
    // certificates than requests answered or cut.
    let serials = a.assert_received_stored_once("issuing", &received);
    assert!(serials.len() >= received.len());
    eprintln!(
        "{} certificates received by {CLIENTS} clients across 3 signer and 3 edge kills; {} in the store",
        received.len(),
        serials.len()
    );
}

/// The processes a test starts end with it: through `Drop` when it panics, and through the
/// parent-death signal when nothing runs at all (here: the appliance is leaked, as if the
/// test process had been killed, and only its thread ends).
#[test]
fn processes_a_test_starts_end_with_it() {
    let pids_of = |leak: bool| -> Vec<u32> {
        let (tx, rx) = std::sync::mpsc::channel();
        let ended = std::thread::spawn(move || {
            let a = Appliance::with_edge(1, &["alice"]);
            tx.send(a.pids()).unwrap();
            if leak {
                std::mem::forget(a);
            } else {
                panic!("a test fails with its signer and edge running");
            }
        })
        .join();
        assert_eq!(ended.is_err(), !leak);
        rx.recv().unwrap()
    };
    for leak in [false, true] {
        let pids = pids_of(leak);
        assert_eq!(pids.len(), 2, "signer and edge");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pids.iter().all(|p| tests::process_gone(*p)) {
            assert!(
                Instant::now() < deadline,
                "leak={leak}: {pids:?} still running after their test ended"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
