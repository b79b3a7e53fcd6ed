//! The judge's repository reader against the golden repository in
//! `fixtures/golden-repo/` (written once by graph-agent, see
//! fixtures/README.md): it reads the whole chain back, and each kind of
//! damage, one per test, is refused with the object it is in.

use std::path::{Path, PathBuf};

use graphdrill::repository::envelope::Keys;
use graphdrill::repository::records::Counts;
use graphdrill::repository::{Objects, Reader, RepositoryError, Verified};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/golden-repo");
const KEY_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/golden-repo.key");

/// The golden repository's two backups, by its catalog: the full one and
/// the incremental on top of it.
fn backups() -> (String, String) {
    let mut full = None;
    let mut incremental = None;
    for entry in std::fs::read_dir(Path::new(GOLDEN).join("catalog"))
        .unwrap()
        .flatten()
    {
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
        let id = json["id"].as_str().unwrap().to_string();
        match json["kind"].as_str().unwrap() {
            "full" => full = Some(id),
            _ => incremental = Some(id),
        }
    }
    (full.unwrap(), incremental.unwrap())
}

fn master() -> Keys {
    let hex = std::fs::read_to_string(KEY_FILE).unwrap();
    Keys::from([("key-1".into(), ::hex::decode(hex.trim()).unwrap())])
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A copy of the golden repository to damage.
fn copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    copy_dir(Path::new(GOLDEN), &repo);
    (dir, repo)
}

fn verify(repo: &Path, backup: &str) -> Result<Verified, RepositoryError> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let reader = Reader::open(Objects::Folder(repo.to_path_buf()), &master()).await?;
        reader.verify(backup).await
    })
}

/// A chunk of the repository: the first by path.
fn a_chunk_of(repo: &Path) -> PathBuf {
    let mut chunks: Vec<PathBuf> = walk(&repo.join("chunks"));
    chunks.sort();
    chunks.remove(0)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}

fn catalog(repo: &Path, backup: &str) -> PathBuf {
    repo.join(format!("catalog/{backup}.json"))
}

#[test]
fn the_golden_repository_reads_back_whole() {
    let (full, incremental) = backups();
    let read_full = verify(Path::new(GOLDEN), &full).unwrap();
    assert_eq!(read_full.chain, vec![full.clone()]);
    let read_incremental = verify(Path::new(GOLDEN), &incremental).unwrap();
    assert_eq!(read_incremental.chain, vec![incremental, full.clone()]);
    assert!(read_incremental.bytes > read_full.bytes);
    // The full backup holds the fixture (fixtures/every-type.cypher) and
    // the workload's first writes, as its catalog entry says.
    let entry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(catalog(Path::new(GOLDEN), &full)).unwrap()).unwrap();
    let counts: Counts = serde_json::from_value(entry["counts"].clone()).unwrap();
    assert!(counts.nodes >= 5 && counts.rels >= 7, "{counts:?}");
}

#[test]
fn a_flipped_byte_in_a_chunk_is_named() {
    let (full, incremental) = backups();
    let (_dir, repo) = copy();
    let chunk = a_chunk_of(&repo);
    let mut bytes = std::fs::read(&chunk).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&chunk, bytes).unwrap();
    let name = chunk.file_name().unwrap().to_string_lossy().into_owned();
    // Whichever backup lists it fails; the full one lists every chunk it has.
    let errors: Vec<RepositoryError> = [&full, &incremental]
        .iter()
        .filter_map(|b| verify(&repo, b).err())
        .collect();
    assert!(!errors.is_empty(), "a damaged chunk went unnoticed");
    for e in errors {
        assert!(
            matches!(&e, RepositoryError::Damaged { object, .. } if object.ends_with(&name)),
            "{e}"
        );
        assert!(e.to_string().contains("authentication failed"), "{e}");
    }
}

#[test]
fn a_missing_chunk_is_named() {
    let (full, incremental) = backups();
    let (_dir, repo) = copy();
    let chunk = a_chunk_of(&repo);
    std::fs::remove_file(&chunk).unwrap();
    let name = chunk.file_name().unwrap().to_string_lossy().into_owned();
    let e = [&full, &incremental]
        .iter()
        .find_map(|b| verify(&repo, b).err())
        .expect("a missing chunk went unnoticed");
    assert!(
        matches!(&e, RepositoryError::Missing { object } if object.ends_with(&name)),
        "{e}"
    );
}

#[test]
fn a_missing_parent_is_named() {
    let (full, incremental) = backups();
    let (_dir, repo) = copy();
    std::fs::remove_file(catalog(&repo, &full)).unwrap();
    let e = verify(&repo, &incremental).unwrap_err();
    assert_eq!(
        e,
        RepositoryError::Missing {
            object: format!("catalog/{full}.json")
        }
    );
}

#[test]
fn a_manifest_stored_under_another_backup_does_not_open() {
    let (full, incremental) = backups();
    let (_dir, repo) = copy();
    let manifest = |b: &str| repo.join(format!("backup/{b}/manifest"));
    std::fs::copy(manifest(&full), manifest(&incremental)).unwrap();
    let e = verify(&repo, &incremental).unwrap_err();
    let object = format!("backup/{incremental}/manifest");
    assert!(
        matches!(&e, RepositoryError::Damaged { object: o, .. } if *o == object),
        "{e}"
    );
}

#[test]
fn a_catalog_entry_that_disagrees_with_its_manifest_is_named() {
    let (full, _) = backups();
    let (_dir, repo) = copy();
    let path = catalog(&repo, &full);
    let mut entry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    entry["counts"]["nodes"] = serde_json::json!(entry["counts"]["nodes"].as_u64().unwrap() + 1);
    std::fs::write(&path, serde_json::to_vec(&entry).unwrap()).unwrap();
    let e = verify(&repo, &full).unwrap_err();
    assert!(e.to_string().contains("`counts` differs"), "{e}");
}

#[test]
fn a_catalog_entry_without_a_required_field_is_refused() {
    let (full, _) = backups();
    let (_dir, repo) = copy();
    let path = catalog(&repo, &full);
    let mut entry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    entry.as_object_mut().unwrap().remove("recovery_point");
    entry["a_field_from_the_future"] = serde_json::json!(true);
    std::fs::write(&path, serde_json::to_vec(&entry).unwrap()).unwrap();
    let e = verify(&repo, &full).unwrap_err();
    assert!(matches!(e, RepositoryError::Format(_)), "{e}");
    assert!(e.to_string().contains("recovery_point"), "{e}");
}

#[test]
fn a_newer_format_is_refused_as_such() {
    let (full, _) = backups();
    let (_dir, repo) = copy();
    let path = repo.join("config");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["format"] = serde_json::json!(2);
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let e = verify(&repo, &full).unwrap_err();
    assert!(e.to_string().contains("format 2"), "{e}");
}

#[test]
fn without_the_master_key_the_repository_does_not_open() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let wrong = Keys::from([("key-1".to_string(), vec![0u8; 32])]);
    let e = rt
        .block_on(Reader::open(Objects::Folder(GOLDEN.into()), &wrong))
        .err()
        .expect("opened with a wrong key");
    assert!(e.to_string().contains("name key does not open"), "{e}");
    let other = Keys::from([("key-9".to_string(), vec![0u8; 32])]);
    let e = rt
        .block_on(Reader::open(Objects::Folder(GOLDEN.into()), &other))
        .err()
        .expect("opened with no key it knows");
    assert!(e.to_string().contains("`key-1`"), "{e}");
}
