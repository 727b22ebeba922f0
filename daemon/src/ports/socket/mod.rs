//! The signing socket: a unix socket (mode 0660, group of the edge) on which
//! castellan-edge sends [`proto::wire`] frames. Only the configured peer uid is
//! accepted (SO_PEERCRED); the first frame must be Hello with our version; then
//! requests run concurrently and replies go back tagged with their ids.

mod dispatch;

pub use dispatch::EdgeApi;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use proto::wire::{self, Op, Refusal, Reply};
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};

use crate::error::ConfigError;
use crate::{Error, Result};

/// Bind the socket: replace a stale file, set mode 0660 and the group.
pub fn bind(path: &Path, gid: Option<u32>) -> Result<UnixListener> {
    if path.exists() {
        std::fs::remove_file(path).map_err(|e| {
            Error::Config(ConfigError::io(
                format!("cannot replace {}", path.display()),
                e,
            ))
        })?;
    }
    let listener = UnixListener::bind(path).map_err(|e| {
        Error::Config(ConfigError::io(
            format!("cannot bind the signing socket {}", path.display()),
            e,
        ))
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| Error::Config(ConfigError::io(path.display(), e)))?;
    if let Some(gid) = gid {
        nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid))).map_err(|e| {
            Error::Config(ConfigError::Chown {
                path: path.display().to_string(),
                gid,
                source: e,
            })
        })?;
    }
    Ok(listener)
}

/// Serve until the task is dropped. `allowed_uid` is the only peer accepted.
pub async fn serve(
    listener: UnixListener,
    signer: Arc<dyn EdgeApi>,
    allowed_uid: u32,
) -> Result<()> {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "signing socket accept failed");
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(c) if c.uid() == allowed_uid => {}
            Ok(c) => {
                tracing::warn!(uid = c.uid(), pid = ?c.pid(), allowed_uid, "signing socket: refused a peer with the wrong uid");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "signing socket: no peer credentials; refused");
                continue;
            }
        }
        let signer = signer.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, signer).await {
                tracing::info!(error = %e, "signing socket connection closed");
            }
        });
    }
}

async fn connection(stream: UnixStream, signer: Arc<dyn EdgeApi>) -> std::io::Result<()> {
    let (mut rd, mut wr) = stream.into_split();
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    // Hello first.
    let Some(frame) = wire::read_frame::<Op, _>(&mut rd).await? else {
        return Ok(());
    };
    match wire::decode::<Op>(&frame) {
        Ok((id, Op::Hello { version })) if version == wire::VERSION => {
            let out = wire::encode(
                id,
                &Reply::Hello {
                    version: wire::VERSION,
                },
            )
            .map_err(|e| bad(&e.to_string()))?;
            wr.write_all(&out).await?;
        }
        _ => return Err(bad("the first frame must be Hello with protocol version 1")),
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            if wr.write_all(&out).await.is_err() {
                break;
            }
        }
    });
    while let Some(frame) = wire::read_frame::<Op, _>(&mut rd).await? {
        let (id, op) = match wire::decode::<Op>(&frame) {
            Ok(x) => x,
            Err(e) => {
                // Answer the one bad request if its id is readable; keep the connection.
                let id = frame
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes)
                    .unwrap_or(0);
                let reply = Reply::Refused {
                    reason: Refusal::BadRequest,
                    message: format!("malformed request: {e}"),
                };
                if let Ok(out) = wire::encode(id, &reply) {
                    let _ = tx.send(out).await;
                }
                continue;
            }
        };
        let signer = signer.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let reply = tokio::task::spawn_blocking(move || signer.answer(op))
                .await
                .unwrap_or_else(|_| Reply::Refused {
                    reason: Refusal::Internal,
                    message: "signer worker failed".into(),
                });
            match wire::encode(id, &reply) {
                Ok(out) => {
                    let _ = tx.send(out).await;
                }
                Err(e) => tracing::error!(error = %e, "reply too large"),
            }
        });
    }
    drop(tx);
    let _ = writer.await;
    Ok(())
}
