//! Stalled registry answers: a body must bring at least [`MIN_BYTES`] in every window of the
//! stall timeout (or end), and the headers must come within one window. A registry dripping
//! a byte a second cannot hold a pull for ever, while a big layer on a slow but moving link
//! takes as long as it needs: a stall deadline, not a total one.
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

/// The default window (`berth daemon --registry-stall-timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes a body must bring per window not to count as stalled.
pub const MIN_BYTES: u64 = 1024;

/// The words of a stall, for errors: `stalled: less than 1024 bytes in 30s`.
pub fn describe(window: Duration) -> String {
    format!(
        "stalled: less than {MIN_BYTES} bytes in {}s",
        window.as_secs_f64()
    )
}

/// Waits at most one window for `future` (a request's headers, a token).
pub async fn within<F: Future>(window: Duration, future: F) -> Option<F::Output> {
    tokio::time::timeout(window, future).await.ok()
}

/// A byte stream that fails with [`std::io::ErrorKind::TimedOut`] once a window passes with
/// less than [`MIN_BYTES`] received.
pub struct Guarded {
    inner: BoxStream<'static, Result<Bytes, std::io::Error>>,
    window: Duration,
    deadline: Pin<Box<Sleep>>,
    received: u64,
    done: bool,
}

impl Guarded {
    pub fn new(inner: BoxStream<'static, Result<Bytes, std::io::Error>>, window: Duration) -> Self {
        Guarded {
            inner,
            window,
            deadline: Box::pin(tokio::time::sleep(window)),
            received: 0,
            done: false,
        }
    }
}

impl Stream for Guarded {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.received += chunk.len() as u64;
                if self.received >= MIN_BYTES {
                    self.received = 0;
                    let next = Instant::now() + self.window;
                    self.deadline.as_mut().reset(next);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.done = true;
                    let message = describe(self.window);
                    Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        message,
                    ))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn chunks(
        count: usize,
        size: usize,
        every: Duration,
    ) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
        futures_util::stream::unfold(0, move |n| async move {
            if n == count {
                return None;
            }
            tokio::time::sleep(every).await;
            Some((Ok(Bytes::from(vec![b'x'; size])), n + 1))
        })
        .boxed()
    }

    #[tokio::test]
    async fn a_drip_is_a_stall() {
        let window = Duration::from_millis(300);
        let mut guarded = Guarded::new(chunks(100_000, 1, Duration::from_millis(20)), window);
        let mut got = 0;
        let error = loop {
            match guarded.next().await {
                Some(Ok(chunk)) => got += chunk.len(),
                Some(Err(e)) => break e,
                None => panic!("a drip of 1 byte per 20 ms went through"),
            }
        };
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(error.to_string(), "stalled: less than 1024 bytes in 0.3s");
        assert!(got < MIN_BYTES as usize, "{got}");
        assert!(guarded.next().await.is_none());
    }

    #[tokio::test]
    async fn a_slow_moving_body_outlasts_the_window() {
        // 2 KiB every 100 ms for 3 s: longer than the window, never stalled.
        let guarded = Guarded::new(
            chunks(30, 2048, Duration::from_millis(100)),
            Duration::from_secs(2),
        );
        let all: Vec<_> = guarded.collect().await;
        assert_eq!(all.len(), 30);
        assert!(all.iter().all(|c| c.is_ok()));
    }
}
