//! The signer's outgoing port to castellan-mdm: a unix socket the connector listens on.
//! One connection per call; the peer must be the configured uid (SO_PEERCRED), so a
//! process that took the socket's path cannot answer for the connector. Every failure is
//! an [`Answer::Unavailable`], which refuses the request.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use proto::mdm::{Answer, Call, Op, VERSION};

use crate::enroll::mdm::Connector;

/// The connector at a unix socket.
#[derive(Debug)]
pub struct UnixConnector {
    path: PathBuf,
    uid: u32,
    timeout: Duration,
}

impl UnixConnector {
    /// The connector at `path`, served by `uid` (default: ours), answering within `timeout`.
    pub fn new(path: PathBuf, uid: Option<u32>, timeout: Duration) -> Self {
        UnixConnector {
            path,
            uid: uid.unwrap_or_else(|| nix::unistd::getuid().as_raw()),
            timeout,
        }
    }

    fn exchange(&self, op: Op) -> Result<Answer, String> {
        let mut s = UnixStream::connect(&self.path).map_err(|e| {
            format!(
                "castellan-mdm is not reachable at {}: {e}",
                self.path.display()
            )
        })?;
        let cred = nix::sys::socket::getsockopt(&s, nix::sys::socket::sockopt::PeerCredentials)
            .map_err(|e| format!("SO_PEERCRED on the connector socket: {e}"))?;
        if cred.uid() != self.uid {
            tracing::error!(uid = cred.uid(), expected = self.uid, path = %self.path.display(), "the connector socket is served by the wrong user");
            return Err(format!(
                "the connector socket is served by uid {}, not the connector's uid {}",
                cred.uid(),
                self.uid
            ));
        }
        let io = |e: std::io::Error| format!("connector socket: {e}");
        s.set_read_timeout(Some(self.timeout)).map_err(io)?;
        s.set_write_timeout(Some(self.timeout)).map_err(io)?;
        let frame = proto::mdm::encode(&Call {
            version: VERSION,
            op,
        })
        .map_err(|e| e.to_string())?;
        s.write_all(&frame).map_err(io)?;
        let mut header = [0u8; 4];
        s.read_exact(&mut header).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => format!(
                "castellan-mdm did not answer within {} s",
                self.timeout.as_secs()
            ),
            _ => io(e),
        })?;
        let n = proto::mdm::frame_len(header).map_err(|e| e.to_string())?;
        let mut body = vec![0u8; n];
        s.read_exact(&mut body).map_err(io)?;
        proto::mdm::decode_answer(&body).map_err(|e| format!("connector answer: {e}"))
    }
}

impl Connector for UnixConnector {
    fn call(&self, op: Op) -> Answer {
        self.exchange(op).unwrap_or_else(|reason| {
            tracing::warn!(%reason, "castellan-mdm call failed");
            Answer::Unavailable { reason }
        })
    }
}
