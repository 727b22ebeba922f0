//! The connector socket (the signer connects; [`proto::mdm`]): only the configured signer
//! uid is served (SO_PEERCRED), one call per connection, frames capped.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::Connector;
use proto::mdm::Answer;

/// Bind the socket (replacing a stale one), mode 0660, group `gid` if given.
pub fn bind(path: &Path, gid: Option<u32>) -> Result<UnixListener, String> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path).map_err(|e| format!("cannot bind {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(g) = gid {
        std::os::unix::fs::chown(path, None, Some(g))
            .map_err(|e| format!("cannot give {} to group {g}: {e}", path.display()))?;
    }
    Ok(l)
}

/// Serve the signer until the task is dropped.
pub async fn serve(listener: UnixListener, connector: Arc<Connector>, signer_uid: u32) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "connector socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(c) if c.uid() == signer_uid => {}
            Ok(c) => {
                tracing::warn!(uid = c.uid(), pid = ?c.pid(), signer_uid, "connector socket: refused a peer with the wrong uid");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "connector socket: no peer credentials");
                continue;
            }
        }
        let connector = connector.clone();
        tokio::spawn(async move {
            if let Err(e) = one(stream, &connector).await {
                tracing::warn!(error = %e, "connector socket: call failed");
            }
        });
    }
}

async fn one(mut s: UnixStream, connector: &Connector) -> Result<(), String> {
    let mut header = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut header))
        .await
        .map_err(|_| "no request within 10 s".to_owned())?
        .map_err(|e| e.to_string())?;
    let answer = match proto::mdm::frame_len(header) {
        Err(e) => Answer::Unavailable {
            reason: e.to_string(),
        },
        Ok(n) => {
            let mut body = vec![0u8; n];
            tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut body))
                .await
                .map_err(|_| "request body not sent within 10 s".to_owned())?
                .map_err(|e| e.to_string())?;
            match proto::mdm::decode_call(&body) {
                Ok(call) => {
                    let secs = connector.deadline.as_secs();
                    tokio::time::timeout(connector.deadline, connector.answer(call.op))
                        .await
                        .unwrap_or_else(|_| Answer::Unavailable {
                            reason: format!("no answer from the MDM service within {secs} s"),
                        })
                }
                Err(e) => Answer::Unavailable {
                    reason: format!("malformed call: {e}"),
                },
            }
        }
    };
    let frame = proto::mdm::encode(&answer).map_err(|e| e.to_string())?;
    s.write_all(&frame).await.map_err(|e| e.to_string())
}
