//! The container backend's settings: which image runs each component and
//! where the program is inside it. The defaults are `docker/images.toml`;
//! a user's file overrides any part of them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::EnvError;

const DEFAULTS: &str = include_str!("../../docker/images.toml");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Images {
    pub neo4j: Neo4jImage,
    pub s3: S3Image,
    pub toxiproxy: ProgramImage,
    pub agent: ProgramImage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Neo4jImage {
    pub image: String,
    /// The Java runtime inside the image.
    pub java: PathBuf,
    /// Neo4j's home inside the image: `lib/` and `labs/` (APOC core).
    pub home: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum S3Kind {
    Seaweedfs,
    Minio,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Image {
    pub kind: S3Kind,
    pub image: String,
    pub program: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramImage {
    pub image: String,
    pub program: PathBuf,
}

impl Default for Images {
    fn default() -> Self {
        Self::parse(DEFAULTS, Path::new("docker/images.toml")).expect("the shipped defaults parse")
    }
}

impl Images {
    /// The defaults with `path`'s tables laid over them.
    pub fn load(path: &Path) -> Result<Self, EnvError> {
        let text = std::fs::read_to_string(path).map_err(|e| EnvError::io(path, e))?;
        let bad = |message: String| EnvError::BadState {
            path: path.to_path_buf(),
            message,
        };
        let mut merged: toml::Table = DEFAULTS.parse().expect("the shipped defaults parse");
        let over: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| bad(e.to_string()))?;
        for (section, value) in over {
            match (merged.get_mut(&section), value) {
                (Some(toml::Value::Table(base)), toml::Value::Table(fields)) => base.extend(fields),
                (_, other) => {
                    merged.insert(section, other);
                }
            }
        }
        Self::parse(&merged.to_string(), path)
    }

    fn parse(text: &str, path: &Path) -> Result<Self, EnvError> {
        let de = toml::Deserializer::parse(text).map_err(|e| EnvError::BadState {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let images: Images =
            serde_path_to_error::deserialize(de).map_err(|e| EnvError::BadState {
                path: path.to_path_buf(),
                message: format!("`{}`: {}", e.path(), e.inner()),
            })?;
        if images.s3.kind == S3Kind::Minio {
            return Err(EnvError::BadState {
                path: path.to_path_buf(),
                message: "`s3.kind` = `minio` is not supported: the agent's least-privilege key \
                          needs MinIO's admin API to create, which graphdrill does not speak; \
                          use `seaweedfs`"
                    .into(),
            });
        }
        Ok(images)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn the_shipped_defaults_name_the_official_images() {
        let d = Images::default();
        assert_eq!(d.neo4j.image, "neo4j:5.26-community");
        assert_eq!(d.s3.kind, S3Kind::Seaweedfs);
        assert_eq!(d.toxiproxy.program, Path::new("/toxiproxy"));
    }

    #[test]
    fn a_file_overrides_only_the_fields_it_names() {
        let f = file("[agent]\nimage = \"graphdrill/graph-agent:local\"\n");
        let images = Images::load(f.path()).unwrap();
        assert_eq!(images.agent.image, "graphdrill/graph-agent:local");
        assert_eq!(images.agent.program, Images::default().agent.program);
        assert_eq!(images.neo4j, Images::default().neo4j);
    }

    #[test]
    fn a_bad_field_is_named_with_the_file() {
        let f = file("[neo4j]\nimage = 5\n");
        let err = Images::load(f.path()).unwrap_err().to_string();
        assert!(err.contains(&f.path().display().to_string()), "{err}");
        assert!(err.contains("neo4j.image"), "{err}");
        let f = file("[toxiproxy]\nimag = \"x\"\n");
        let err = Images::load(f.path()).unwrap_err().to_string();
        assert!(err.contains("imag"), "{err}");
    }

    #[test]
    fn minio_is_refused_with_the_reason() {
        let f = file(
            "[s3]\nkind = \"minio\"\nimage = \"quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z\"\n",
        );
        let err = Images::load(f.path()).unwrap_err().to_string();
        assert!(err.contains("admin API"), "{err}");
    }
}
