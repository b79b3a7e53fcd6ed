//! `AccessDenied` for writes to a region's backup bucket, by a real bucket
//! policy (a Deny on `s3:PutObject`), set and removed with the admin identity.

use std::time::Duration;

use super::{BoxFuture, Fault, FaultError, valid};
use crate::env::{Environment, S3Endpoint, load_s3_credentials};
use crate::s3::Bucket;

pub struct AccessDenied {
    /// `s3-primary` or `s3-archive`.
    pub region: String,
}

impl AccessDenied {
    pub fn new(region: &str) -> Self {
        Self {
            region: region.to_string(),
        }
    }

    fn policy(bucket: &str) -> String {
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "graphdrill-access-denied",
                "Effect": "Deny",
                "Principal": "*",
                "Action": ["s3:PutObject"],
                "Resource": [format!("arn:aws:s3:::{bucket}/*")]
            }]
        })
        .to_string()
    }
}

/// The admin's client for a region's backup bucket.
pub(super) fn admin_bucket(
    env: &Environment,
    region: &str,
) -> Result<(Bucket, S3Endpoint), FaultError> {
    let state = env.state();
    let endpoint = state
        .s3
        .get(region)
        .cloned()
        .ok_or_else(|| FaultError::UnknownTarget {
            what: "region",
            name: region.to_string(),
            valid: valid(state.s3.keys()),
        })?;
    let creds = load_s3_credentials(&endpoint.admin_credentials_file)?;
    let bucket = Bucket::new(
        &endpoint.url,
        &creds,
        &endpoint.bucket,
        Duration::from_secs(10),
    )?;
    Ok((bucket, endpoint))
}

impl Fault for AccessDenied {
    fn describe(&self) -> String {
        format!("AccessDenied on PutObject in {}", self.region)
    }

    fn inject<'a>(&'a self, env: &'a Environment) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let (bucket, endpoint) = admin_bucket(env, &self.region)?;
            bucket.put_policy(&Self::policy(&endpoint.bucket)).await?;
            Ok(())
        })
    }

    fn heal<'a>(&'a self, env: &'a Environment) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let (bucket, _) = admin_bucket(env, &self.region)?;
            bucket.delete_policy().await?;
            Ok(())
        })
    }
}
