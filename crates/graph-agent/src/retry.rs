//! Bounded retries with exponential backoff and full jitter, for transient
//! failures only: a `permission` or `auth` failure is final at once.

use super::defect::{self, Defect};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use rand::Rng;

use super::JobError;

/// One try of an operation. Boxed, so callers' futures have one concrete,
/// `Send` type (generic async closures trip the compiler's `Send` checks).
pub type Attempt<'a, T> = Pin<Box<dyn Future<Output = Result<T, JobError>> + Send + 'a>>;

/// How many times to retry and how long to wait between tries.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    /// The wait before retry number `n` (0-based): uniform in
    /// `[0, min(cap, base · 2^n)]` ("full jitter").
    pub fn backoff(&self, n: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(n.min(30)))
            .min(self.cap);
        let ms = ceiling.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(0..=ms))
    }

    /// Runs `op` until it succeeds, fails with a class that is not
    /// transient, or has been retried `max_retries` times. `on_retry` sees
    /// each failure that is retried.
    pub async fn run<'a, T>(
        &self,
        mut op: impl FnMut() -> Attempt<'a, T>,
        mut on_retry: impl FnMut(&JobError),
    ) -> Result<T, JobError> {
        let mut retries = 0;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e)
                    if (e.class.is_transient() && retries < self.max_retries)
                        || (e.class == graph_agent_api::FailureClass::Permission
                            && defect::active(Defect::RetryAccessDenied)) =>
                {
                    on_retry(&e);
                    tokio::time::sleep(self.backoff(retries)).await;
                    retries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graph_agent_api::FailureClass;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(4),
        }
    }

    #[test]
    fn backoff_never_exceeds_the_cap() {
        let p = RetryPolicy {
            max_retries: 3,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(250),
        };
        for n in 0..40 {
            assert!(p.backoff(n) <= Duration::from_millis(250));
        }
        assert!(p.backoff(0) <= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn transient_failures_are_retried_at_most_max_retries_times() {
        let mut calls = 0;
        let mut retried = 0;
        let r: Result<(), _> = policy()
            .run(
                || {
                    calls += 1;
                    Box::pin(async { Err(JobError::new(FailureClass::Network, "reset")) })
                },
                |_| retried += 1,
            )
            .await;
        assert_eq!(r.unwrap_err().class, FailureClass::Network);
        assert_eq!((calls, retried), (4, 3));
    }

    #[tokio::test]
    async fn access_denied_fails_fast_without_retry() {
        let mut calls = 0;
        let r: Result<(), _> = policy()
            .run(
                || {
                    calls += 1;
                    Box::pin(async { Err(JobError::new(FailureClass::Permission, "AccessDenied")) })
                },
                |_| panic!("a permission failure was retried"),
            )
            .await;
        assert_eq!(r.unwrap_err().class, FailureClass::Permission);
        assert_eq!(calls, 1);
    }
}
