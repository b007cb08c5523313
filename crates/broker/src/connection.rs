//! One task per client connection.
//!
//! Requests are read and answered strictly in order, one at a time — Kafka's own model, which
//! clients rely on for ordering (an idempotent producer's pipelined batches must be appended in
//! the order sent). Pipelining still pays: while the read buffer holds further complete
//! requests, their responses accumulate and go out in one write.
//!
//! A connection ends when the peer closes it, when it stays silent longer than the idle
//! timeout (mid-frame included), on a protocol error (logged, counted) or at shutdown (after
//! the request in progress is answered).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;

use crate::frame::{read_frame, FrameError};
use crate::server::Shared;

/// Serves one client connection until it ends.
pub(crate) async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let (rd, wr) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, rd);
    let mut writer = BufWriter::with_capacity(64 * 1024, wr);
    let mut stop = shared.shutting_down.clone();
    let mut out = BytesMut::with_capacity(64 * 1024);
    let max = shared.config.max_frame_bytes;
    let idle = shared.config.idle_timeout;
    tracing::debug!(%peer, "connection opened");
    loop {
        if shared.is_shutting_down() {
            break;
        }
        let read = tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = tokio::time::timeout(idle, read_frame(&mut reader, max)) => r,
        };
        let frame = match read {
            Err(_elapsed) => {
                tracing::info!(%peer, idle_ms = idle.as_millis() as u64, "closing idle connection");
                break;
            }
            Ok(Err(FrameError::Closed)) => break,
            Ok(Err(
                e @ (FrameError::BadSize { .. }
                | FrameError::Truncated { .. }
                | FrameError::BadHeader(_)),
            )) => {
                shared.metrics.protocol_errors.inc();
                tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                break;
            }
            Ok(Err(FrameError::Io(e))) => {
                tracing::debug!(%peer, error = %e, "connection read error");
                break;
            }
            Ok(Ok(frame)) => frame,
        };
        shared.metrics.bytes_in.inc_by(frame.len() as u64 + 4);
        let before = out.len();
        if let Err(e) = crate::api::handle(&shared, frame, peer, &mut out).await {
            shared.metrics.protocol_errors.inc();
            tracing::warn!(%peer, error = %e, "closing connection");
            // Answer what was already handled before closing.
            let _ = writer.write_all(&out[..before]).await;
            let _ = writer.flush().await;
            break;
        }
        if has_complete_frame(reader.buffer()) && out.len() < 1024 * 1024 {
            continue; // more pipelined requests ready: answer them together
        }
        if !out.is_empty() {
            shared.metrics.bytes_out.inc_by(out.len() as u64);
            if let Err(e) = writer.write_all(&out).await {
                tracing::debug!(%peer, error = %e, "connection write error");
                break;
            }
            out.clear();
            if out.capacity() > 4 * 1024 * 1024 {
                out = BytesMut::with_capacity(64 * 1024);
            }
        }
        if let Err(e) = writer.flush().await {
            tracing::debug!(%peer, error = %e, "connection write error");
            break;
        }
    }
    if !out.is_empty() {
        let _ = writer.write_all(&out).await;
    }
    let _ = writer.flush().await;
    tracing::debug!(%peer, "connection closed");
}

fn has_complete_frame(buf: &[u8]) -> bool {
    match buf.get(..4) {
        Some(len) => {
            let size = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            size >= 0 && buf.len() >= 4 + size as usize
        }
        None => false,
    }
}
