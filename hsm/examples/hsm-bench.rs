//! `hsm-bench`: private-key operations per second on a PKCS#11 token with N
//! sessions (one per thread) — the ceiling for anything that signs through it.
//! Generates a throwaway key in the token (label `castellan-bench`).
//!
//! `hsm-bench --token-label L --pin-file F [--module M] [--key rsa-2048] [--sessions N] [--seconds S] [--op sign|decrypt]`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hsm::{HashAlg, Hsm, HsmConfig, KeyId, KeySpec, KeyUse, PinSource};

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("hsm-bench: {msg}");
    std::process::exit(1)
}

fn main() {
    let mut module = hsm::SOFTHSM2_MODULE.to_owned();
    let (mut label, mut pin) = (None, None);
    let (mut key, mut sessions, mut seconds, mut op) =
        ("rsa-2048".to_owned(), 2usize, 5u64, "sign".to_owned());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || {
            args.next()
                .unwrap_or_else(|| die(format!("{a} needs a value")))
        };
        match a.as_str() {
            "--module" => module = v(),
            "--token-label" => label = Some(v()),
            "--pin-file" => pin = Some(v()),
            "--key" => key = v(),
            "--sessions" => sessions = v().parse().unwrap_or_else(|_| die("bad --sessions")),
            "--seconds" => seconds = v().parse().unwrap_or_else(|_| die("bad --seconds")),
            "--op" => op = v(),
            _ => die(format!("unknown argument {a}")),
        }
    }
    let spec: KeySpec = key.parse().unwrap_or_else(|e: String| die(e));
    let hsm = Hsm::open(&HsmConfig {
        module: module.into(),
        token_label: label.unwrap_or_else(|| die("--token-label is required")),
        pin: PinSource::File(pin.unwrap_or_else(|| die("--pin-file is required")).into()),
    })
    .unwrap_or_else(|e| die(e));
    let mut idb = [0u8; 16];
    hsm.random(&mut idb).unwrap_or_else(|e| die(e));
    let id = KeyId::new(idb.to_vec()).unwrap_or_else(|e| die(e));
    let usage = if op == "decrypt" {
        KeyUse::SignDecrypt
    } else {
        KeyUse::Sign
    };
    hsm.generate(spec, &id, "castellan-bench", usage)
        .unwrap_or_else(|e| die(e));
    // A ciphertext for the decrypt case: PKCS#1 v1.5 of 32 bytes to our own public key
    // is not available without a software RSA here, so decrypt measures the padding
    // failure path on random input of the right size, which costs the same private-key
    // operation (the token does the exponentiation before checking the padding).
    let ct = vec![0x42u8; (spec.bits() / 8) as usize];
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..sessions.max(1))
        .map(|t| {
            let (hsm, id, stop, count, ct, op) = (
                hsm.clone(),
                id.clone(),
                stop.clone(),
                count.clone(),
                ct.clone(),
                op.clone(),
            );
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let msg = format!("{t}-{i}");
                    let ok = if op == "decrypt" {
                        let _ = hsm.rsa_decrypt(&id, &ct);
                        true
                    } else {
                        hsm.sign(spec, HashAlg::Sha256, &id, msg.as_bytes()).is_ok()
                    };
                    if ok {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let secs = start.elapsed().as_secs_f64();
    let n = count.load(Ordering::Relaxed);
    println!(
        "{spec} {op}: {n} operations in {secs:.2} s with {sessions} sessions: {:.1} ops/s",
        n as f64 / secs
    );
}
