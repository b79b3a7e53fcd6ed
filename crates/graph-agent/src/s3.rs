//! A small S3 client over the `minio` crate: one bucket, bounded time per
//! request, and errors sorted into the classes a drill cares about
//! (`AccessDenied` is not a network problem).

use std::time::Duration;

use minio::s3::creds::StaticProvider;
use minio::s3::error::{Error as MinioError, S3ServerError, ValidationErr};
use minio::s3::types::S3Api;
use minio::s3::{MinioClient, MinioClientBuilder};
use serde::{Deserialize, Serialize};

/// An S3 access key pair, as stored in a credentials file (JSON).
#[derive(Clone, Serialize, Deserialize)]
pub struct S3Credentials {
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// What kind of failure an S3 call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum S3ErrorKind {
    /// The server refused the identity (HTTP 403, `AccessDenied`).
    AccessDenied,
    NotFound,
    /// No answer within the request timeout.
    Timeout,
    /// Connection refused, reset or closed.
    Network,
    /// Any other answer from the server.
    Server,
    /// A bad bucket or key name, caught before sending.
    Invalid,
}

#[derive(Debug, thiserror::Error)]
#[error("s3 {op} `{target}` at {endpoint}: {kind:?}: {message}")]
pub struct S3Error {
    pub op: &'static str,
    pub target: String,
    pub endpoint: String,
    pub kind: S3ErrorKind,
    pub message: String,
}

/// One bucket on one S3 endpoint.
#[derive(Clone, Debug)]
pub struct Bucket {
    client: MinioClient,
    endpoint: String,
    name: String,
    timeout: Duration,
}

impl Bucket {
    /// A client for `bucket` at `endpoint` (e.g. `http://127.0.0.1:8333`).
    /// Each request is abandoned after `timeout`.
    pub fn new(
        endpoint: &str,
        creds: &S3Credentials,
        bucket: &str,
        timeout: Duration,
    ) -> Result<Self, S3Error> {
        let invalid = |message: String| S3Error {
            op: "connect",
            target: bucket.to_string(),
            endpoint: endpoint.to_string(),
            kind: S3ErrorKind::Invalid,
            message,
        };
        let url = endpoint.parse().map_err(|e| invalid(format!("{e}")))?;
        let provider = StaticProvider::new(&creds.access_key, &creds.secret_key, None);
        let client = MinioClientBuilder::new(url)
            .provider(Some(provider))
            .skip_region_lookup(true)
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            client,
            endpoint: endpoint.to_string(),
            name: bucket.to_string(),
            timeout,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs one request under the timeout, sorting its error.
    async fn call<T>(
        &self,
        op: &'static str,
        target: &str,
        fut: impl Future<Output = Result<T, MinioError>>,
    ) -> Result<T, S3Error> {
        let err = |kind, message| S3Error {
            op,
            target: target.to_string(),
            endpoint: self.endpoint.clone(),
            kind,
            message,
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(err(
                S3ErrorKind::Timeout,
                format!("no answer within {:?}", self.timeout),
            )),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let kind = classify(&e);
                let message = match &e {
                    MinioError::S3Server(S3ServerError::S3Error(resp)) => {
                        format!(
                            "{}: {}",
                            resp.code(),
                            resp.message().as_deref().unwrap_or("(no message)")
                        )
                    }
                    _ => error_chain(&e),
                };
                Err(err(kind, message))
            }
        }
    }

    /// ListBuckets: a cheap authenticated round trip.
    pub async fn list_buckets(&self) -> Result<Vec<String>, S3Error> {
        let resp = self
            .call(
                "list-buckets",
                "",
                self.client.list_buckets().build().send(),
            )
            .await?;
        let names = resp
            .buckets()
            .map_err(|e| self.invalid("list-buckets", "", e))?
            .into_iter()
            .map(|b| b.name.to_string())
            .collect();
        Ok(names)
    }

    /// Creates the bucket unless it exists.
    pub async fn ensure_exists(&self) -> Result<(), S3Error> {
        let exists = self
            .call(
                "bucket-exists",
                &self.name,
                self.client
                    .bucket_exists(self.name.as_str())
                    .map_err(|e| self.invalid("bucket-exists", &self.name, e))?
                    .build()
                    .send(),
            )
            .await?
            .exists();
        if !exists {
            self.call(
                "create-bucket",
                &self.name,
                self.client
                    .create_bucket(self.name.as_str())
                    .map_err(|e| self.invalid("create-bucket", &self.name, e))?
                    .build()
                    .send(),
            )
            .await?;
        }
        Ok(())
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), S3Error> {
        let req = self
            .client
            .put_object_content(self.name.as_str(), key, bytes)
            .map_err(|e| self.invalid("put", key, e))?
            .build();
        self.call("put", key, req.send()).await.map(|_| ())
    }

    pub async fn get(&self, key: &str) -> Result<Vec<u8>, S3Error> {
        let req = self
            .client
            .get_object(self.name.as_str(), key)
            .map_err(|e| self.invalid("get", key, e))?
            .build();
        let resp = self.call("get", key, req.send()).await?;
        let bytes = self.call("get", key, resp.into_bytes()).await?;
        Ok(bytes.to_vec())
    }

    /// The object's size, or `None` if it does not exist (HEAD).
    pub async fn stat(&self, key: &str) -> Result<Option<u64>, S3Error> {
        let req = self
            .client
            .stat_object(self.name.as_str(), key)
            .map_err(|e| self.invalid("stat", key, e))?
            .build();
        match self.call("stat", key, req.send()).await {
            Ok(resp) => Ok(Some(resp.size().map_err(|e| self.invalid("stat", key, e))?)),
            Err(e) if e.kind == S3ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every object under `prefix` with its size, in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, S3Error> {
        use futures_util::StreamExt;
        use minio::s3::types::ToStream;
        let req = self
            .client
            .list_objects(self.name.as_str())
            .map_err(|e| self.invalid("list", prefix, e))?
            .prefix(Some(prefix.to_string()))
            .recursive(true)
            .build();
        let mut stream = self
            .call("list", prefix, async { Ok(req.to_stream().await) })
            .await?;
        let mut out = Vec::new();
        loop {
            let page = self
                .call("list", prefix, async { Ok(stream.next().await) })
                .await?;
            match page {
                None => break,
                Some(page) => {
                    let page = self.call("list", prefix, async { page }).await?;
                    out.extend(
                        page.contents
                            .into_iter()
                            .map(|e| (e.name, e.size.unwrap_or(0))),
                    );
                }
            }
        }
        out.sort();
        Ok(out)
    }

    pub async fn delete(&self, key: &str) -> Result<(), S3Error> {
        let req = self
            .client
            .delete_object(self.name.as_str(), key)
            .map_err(|e| self.invalid("delete", key, e))?
            .build();
        self.call("delete", key, req.send()).await.map(|_| ())
    }

    /// Sets the bucket's policy document (JSON).
    pub async fn put_policy(&self, policy: &str) -> Result<(), S3Error> {
        let req = self
            .client
            .put_bucket_policy(self.name.as_str())
            .map_err(|e| self.invalid("put-bucket-policy", &self.name, e))?
            .config(policy.to_string())
            .build();
        self.call("put-bucket-policy", &self.name, req.send())
            .await
            .map(|_| ())
    }

    pub async fn delete_policy(&self) -> Result<(), S3Error> {
        let req = self
            .client
            .delete_bucket_policy(self.name.as_str())
            .map_err(|e| self.invalid("delete-bucket-policy", &self.name, e))?
            .build();
        self.call("delete-bucket-policy", &self.name, req.send())
            .await
            .map(|_| ())
    }

    fn invalid(&self, op: &'static str, target: &str, e: impl std::fmt::Display) -> S3Error {
        S3Error {
            op,
            target: target.to_string(),
            endpoint: self.endpoint.clone(),
            kind: S3ErrorKind::Invalid,
            message: e.to_string(),
        }
    }
}

fn classify(e: &MinioError) -> S3ErrorKind {
    match e {
        MinioError::S3Server(S3ServerError::S3Error(resp)) => {
            match resp.code().to_string().as_str() {
                "AccessDenied" => S3ErrorKind::AccessDenied,
                "NoSuchKey" | "NoSuchBucket" => S3ErrorKind::NotFound,
                _ => S3ErrorKind::Server,
            }
        }
        MinioError::S3Server(S3ServerError::HttpError(403, _)) => S3ErrorKind::AccessDenied,
        MinioError::S3Server(S3ServerError::HttpError(404, _)) => S3ErrorKind::NotFound,
        MinioError::S3Server(_) => S3ErrorKind::Server,
        MinioError::Network(_) | MinioError::DriveIo(_) => S3ErrorKind::Network,
        // The crate files transport failures (refused, reset) under validation.
        MinioError::Validation(ValidationErr::HttpError(e)) if e.is_timeout() => {
            S3ErrorKind::Timeout
        }
        MinioError::Validation(ValidationErr::HttpError(_)) => S3ErrorKind::Network,
        MinioError::Validation(_) => S3ErrorKind::Invalid,
    }
}

/// The error and its causes on one line (reqwest hides the useful part in `source`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_hides_the_secret() {
        let c = S3Credentials {
            access_key: "AK".into(),
            secret_key: "very-secret".into(),
        };
        assert!(!format!("{c:?}").contains("very-secret"));
    }
}
