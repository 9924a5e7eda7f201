//! The TOCTOU guard of `sha256_file`: a file that changes while it is hashed yields
//! `HashError::Changed`, never a digest.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::thread;
use std::time::{Duration, SystemTime};

use model_analysis::{FileStamp, HashBudget, HashError, sha256_file};

fn big_file(len: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("model.gguf");
    let mut f = File::create(&path).expect("create");
    f.write_all(&vec![0x5a; len]).expect("write");
    (dir, path)
}

#[test]
fn a_write_during_hashing_is_detected() {
    let (_dir, path) = big_file(8 << 20);
    let file = File::open(&path).expect("open");
    let stamp = FileStamp::of(&file).expect("stat");
    // 8 MiB at 8 MiB/s: about a second of hashing, with the write in the middle.
    let budget = HashBudget { max_bytes_per_sec: Some(8 << 20), max_bytes: None };
    let writer_path = path.clone();
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(200));
        let f = OpenOptions::new().write(true).open(&writer_path).expect("open for write");
        f.write_at(b"tampered", 6 << 20).expect("write");
        // Some file systems round mtimes: make the change unmistakable.
        f.set_modified(SystemTime::now() + Duration::from_secs(5)).expect("set mtime");
    });
    let result = sha256_file(&file, &stamp, &budget);
    writer.join().expect("writer");
    assert!(matches!(result, Err(HashError::Changed { .. })), "{result:?}");
}

#[test]
fn a_truncation_during_hashing_is_detected() {
    let (_dir, path) = big_file(8 << 20);
    let file = File::open(&path).expect("open");
    let stamp = FileStamp::of(&file).expect("stat");
    let budget = HashBudget { max_bytes_per_sec: Some(8 << 20), max_bytes: None };
    let writer_path = path.clone();
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(200));
        OpenOptions::new().write(true).open(&writer_path).expect("open").set_len(1 << 20).expect("truncate");
    });
    let result = sha256_file(&file, &stamp, &budget);
    writer.join().expect("writer");
    assert!(matches!(result, Err(HashError::Changed { .. })), "{result:?}");
}

#[test]
fn an_mtime_change_alone_is_detected() {
    let (_dir, path) = big_file(1024);
    let file = File::open(&path).expect("open");
    let stamp = FileStamp::of(&file).expect("stat");
    fs::File::options()
        .write(true)
        .open(&path)
        .expect("open")
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
        .expect("set mtime");
    let result = sha256_file(&file, &stamp, &HashBudget::default());
    assert!(matches!(result, Err(HashError::Changed { .. })), "{result:?}");
}

#[test]
fn an_unchanged_file_hashes() {
    let (_dir, path) = big_file(3 << 20);
    let file = File::open(&path).expect("open");
    let stamp = FileStamp::of(&file).expect("stat");
    let digest = sha256_file(&file, &stamp, &HashBudget::default()).expect("hash");
    let again = sha256_file(&file, &stamp, &HashBudget::default()).expect("hash");
    assert_eq!(digest, again);
    assert_ne!(digest, [0; 32]);
}
