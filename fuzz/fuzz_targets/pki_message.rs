//! SCEP PKIMessages from devices (RFC 8894): the edge's screen, and the signer's parse (leniently read throwaway certificates,
//! any SignerIdentifier), then open the envelope with a key-unwrap stand-in addressed to
//! the signer's own certificate. Must never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = scep::message::screen(data);
    if let Ok(msg) = scep::message::parse(data, true) {
        if let Ok(me) = scep::envelope::Recipient::of(&msg.signer_cert) {
            let _ = scep::envelope::open(&msg.envelope, &[me], true, &mut |_, _, ek| {
                Some(ek.iter().take(16).copied().collect())
            });
        }
    }
    let _ = scep::envelope::decode(data);
    let _ = scep::client::ca_certs(data);
});
