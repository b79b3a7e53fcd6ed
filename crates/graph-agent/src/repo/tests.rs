//! The repository on a real local folder: round trips, resumption, and one
//! test per kind of damage, each naming the object it found wrong.

use super::*;

fn keyring(id: &str, byte: u8) -> Keyring {
    Keyring::new(id, Key::from_bytes(&[byte; 32]).unwrap())
}

fn manifest(id: &str, parent: Option<&str>) -> Manifest {
    let point = RecoveryPoint { time_ms: 1, seq: 1 };
    Manifest::new(id, parent.map(String::from), 1, point, &[])
}

/// Pseudo-random bytes, so content-defined chunking finds many cut points.
fn stream(len: usize, seed: u64) -> Vec<u8> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random()).collect()
}

async fn repo(dir: &std::path::Path) -> Repository {
    Repository::open(Store::Local(dir.to_path_buf()), keyring("k1", 1))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_backup_reads_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let r = repo(dir.path()).await;
    let data = stream(1_000_000, 1);
    let (m, stats) = r
        .write_backup(manifest("b1", None), &data, 3)
        .await
        .unwrap();
    assert!(
        stats.chunks > 4,
        "expected several chunks, got {}",
        stats.chunks
    );
    assert_eq!(stats.chunks_uploaded, stats.chunks);
    let chain = r.chain("b1").await.unwrap();
    assert_eq!(chain, vec![m.clone()]);
    assert_eq!(r.read_stream(&m, 2).await.unwrap(), data);
    let report = r.verify("b1", 1.0).await.unwrap();
    assert_eq!(report.chunks_checked, stats.chunks);
}

#[tokio::test]
async fn rewriting_uploads_only_missing_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let r = repo(dir.path()).await;
    let mut data = stream(1_000_000, 2);
    let (_, first) = r
        .write_backup(manifest("b1", None), &data, 3)
        .await
        .unwrap();
    // The same stream again (a resumed backup): nothing to upload.
    let (_, again) = r
        .write_backup(manifest("b2", None), &data, 3)
        .await
        .unwrap();
    assert_eq!(again.chunks_uploaded, 0);
    // A small edit in the middle touches a chunk or two.
    data[500_000] ^= 0xff;
    let (_, edit) = r
        .write_backup(manifest("b3", Some("b1")), &data, 3)
        .await
        .unwrap();
    assert!(edit.chunks_uploaded <= 2, "{edit:?} after {first:?}");
}

#[tokio::test]
async fn a_flipped_byte_in_a_chunk_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let r = repo(dir.path()).await;
    let (m, _) = r
        .write_backup(manifest("b1", None), &stream(200_000, 3), 1)
        .await
        .unwrap();
    let key = chunk_key(&m.chunks[1]);
    let path = dir.path().join(&key);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let err = r.read_stream(&m, 1).await.unwrap_err().to_string();
    assert!(err.contains(&key), "{err}");
    assert!(r.verify("b1", 1.0).await.is_err());
}

#[tokio::test]
async fn a_missing_chunk_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let r = repo(dir.path()).await;
    let (m, _) = r
        .write_backup(manifest("b1", None), &stream(200_000, 4), 1)
        .await
        .unwrap();
    let key = chunk_key(&m.chunks[0]);
    std::fs::remove_file(dir.path().join(&key)).unwrap();
    let err = r.read_stream(&m, 1).await.unwrap_err();
    assert!(
        matches!(&err, RepoError::Store(e) if e.kind == StoreErrorKind::NotFound),
        "{err}"
    );
    assert!(err.to_string().contains(&key), "{err}");
}

#[tokio::test]
async fn a_truncated_manifest_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let r = repo(dir.path()).await;
    r.write_backup(manifest("b1", None), &stream(10_000, 5), 1)
        .await
        .unwrap();
    let path = dir.path().join(manifest_key("b1"));
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = r.chain("b1").await.unwrap_err().to_string();
    assert!(err.contains("backup/b1/manifest"), "{err}");
}

#[tokio::test]
async fn the_wrong_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    repo(dir.path())
        .await
        .write_backup(manifest("b1", None), &stream(10_000, 6), 1)
        .await
        .unwrap();
    let err = Repository::open(Store::Local(dir.path().into()), keyring("k9", 9))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("k9") && err.contains("k1"), "{err}");
}

#[tokio::test]
async fn a_rotated_key_reads_old_backups_and_seals_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = stream(100_000, 7);
    let (m, _) = repo(dir.path())
        .await
        .write_backup(manifest("b1", None), &data, 1)
        .await
        .unwrap();
    let mut ring = keyring("k1", 1);
    ring.rotate("k2", Key::from_bytes(&[2; 32]).unwrap());
    let r = Repository::open(Store::Local(dir.path().into()), ring)
        .await
        .unwrap();
    assert_eq!(r.read_stream(&m, 1).await.unwrap(), data);
    assert!(r.config().name_key.contains_key("k2"));
    // A holder of only the new key can open the repository from now on.
    let only_new = keyring("k2", 2);
    assert!(
        Repository::open(Store::Local(dir.path().into()), only_new)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn data_keys_rotate_without_reuploads_and_open_with_the_master_key_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = || Store::Local(dir.path().into());
    let data = stream(300_000, 8);
    let mut ring = keyring("k1", 1);
    let first = ring.new_data_key(1);
    let r = Repository::open(store(), ring.clone()).await.unwrap();
    let (m1, _) = r
        .write_backup(manifest("b1", None), &data, 2)
        .await
        .unwrap();
    let second = ring.new_data_key(2);
    let r = Repository::open(store(), ring).await.unwrap();
    let (m2, again) = r
        .write_backup(manifest("b2", None), &data, 2)
        .await
        .unwrap();
    // Chunk names do not depend on the data key: nothing is uploaded twice.
    assert_eq!(again.chunks_uploaded, 0, "{again:?}");
    for id in [&first, &second] {
        assert!(store().stat(&data_key_object(id)).await.unwrap().is_some());
    }
    // Another agent with only the master key reads both backups.
    let reader = Repository::open(store(), keyring("k1", 1)).await.unwrap();
    assert_eq!(reader.read_stream(&m1, 1).await.unwrap(), data);
    assert_eq!(reader.read_stream(&m2, 1).await.unwrap(), data);
    // A damaged data key is named as the object at fault.
    let object = data_key_object(&first);
    let path = dir.path().join(&object);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let err = Repository::open(store(), keyring("k1", 1))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&object), "{err}");
}

#[tokio::test]
async fn a_data_key_learned_once_is_not_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = || Store::Local(dir.path().into());
    let data = stream(100_000, 9);
    let mut writer = keyring("k1", 1);
    let data_key = writer.new_data_key(1);
    let (m, _) = Repository::open(store(), writer)
        .await
        .unwrap()
        .write_backup(manifest("b1", None), &data, 1)
        .await
        .unwrap();
    // An agent with only the master key learns the data key on first open…
    let mut agent = keyring("k1", 1);
    let first = Repository::open(store(), agent.clone()).await.unwrap();
    agent.learn(first.keyring());
    assert!(agent.holds(&data_key));
    // …and does not read its object again: even a damaged one goes unseen.
    let path = dir.path().join(data_key_object(&data_key));
    std::fs::write(&path, b"damaged").unwrap();
    let again = Repository::open(store(), agent).await.unwrap();
    assert_eq!(again.read_stream(&m, 1).await.unwrap(), data);
    // A reader without it still has to read the object, and meets the damage.
    assert!(Repository::open(store(), keyring("k1", 1)).await.is_err());
    // And verify does not trust the agent's memory: damaged or gone, the
    // key object fails the backup it seals.
    let object = data_key_object(&data_key);
    let err = again.verify("b1", 1.0).await.unwrap_err().to_string();
    assert!(err.contains(&object), "{err}");
    std::fs::remove_file(&path).unwrap();
    let err = again.verify("b1", 1.0).await.unwrap_err().to_string();
    assert!(err.contains(&object) && err.contains("missing"), "{err}");
}

#[tokio::test]
async fn an_incomplete_chain_names_the_missing_parent() {
    let dir = tempfile::tempdir().unwrap();
    let r = repo(dir.path()).await;
    r.write_backup(manifest("b2", Some("b1")), &stream(1000, 8), 1)
        .await
        .unwrap();
    let err = r.chain("b2").await.unwrap_err().to_string();
    assert!(err.contains("parent `b1`"), "{err}");
}

#[tokio::test]
async fn an_unknown_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    repo(dir.path()).await;
    let path = dir.path().join("config");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"format\": 1", "\"format\": 7");
    std::fs::write(&path, text).unwrap();
    let err = Repository::open(Store::Local(dir.path().into()), keyring("k1", 1))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("format 7 is not supported"), "{err}");
}

#[tokio::test]
async fn a_backup_without_its_catalog_entry_is_not_listed() {
    let dir = tempfile::tempdir().unwrap();
    let r = repo(dir.path()).await;
    r.write_backup(manifest("b1", None), &stream(1000, 9), 1)
        .await
        .unwrap();
    // As if the writer died after the manifest: the backup does not exist.
    std::fs::remove_file(dir.path().join(catalog_key("b1"))).unwrap();
    assert!(r.catalog().await.unwrap().is_empty());
    assert!(matches!(
        r.chain("b1").await,
        Err(RepoError::NotFound { .. })
    ));
}

#[tokio::test]
async fn prune_keeps_what_a_retained_backup_builds_on() {
    let dir = tempfile::tempdir().unwrap();
    let r = repo(dir.path()).await;
    let at = |id: &str, parent: Option<&str>, created_ms: u64| Manifest {
        created_ms,
        ..manifest(id, parent)
    };
    r.write_backup(at("old", None, 1_000), &stream(100_000, 10), 1)
        .await
        .unwrap();
    r.write_backup(at("base", None, 2_000), &stream(100_000, 11), 1)
        .await
        .unwrap();
    r.write_backup(at("inc", Some("base"), 9_000), &stream(100_000, 12), 1)
        .await
        .unwrap();
    // Retention 2 s at t = 10 s: `old` and `base` are expired, but `inc` needs `base`.
    let report = r.prune(10_000, 2_000).await.unwrap();
    assert_eq!(report.backups_removed, vec!["old".to_string()]);
    assert!(report.chunks_removed > 0);
    let left: Vec<String> = r
        .catalog()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(left, vec!["base".to_string(), "inc".to_string()]);
    for m in r.chain("inc").await.unwrap() {
        r.read_stream(&m, 1).await.unwrap();
    }
}
