use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use sqlrft_files::Journal;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    n: u64,
    text: String,
}

/// Writes `records` through a journal and returns the file's bytes and where each record ends.
fn journal_bytes(path: &Path, records: &[Record]) -> (Vec<u8>, Vec<usize>) {
    let (mut journal, _) = Journal::open::<Record>(path).unwrap();
    let mut ends = Vec::new();
    for record in records {
        journal.append(record).unwrap();
        ends.push(fs::metadata(path).unwrap().len() as usize);
    }
    journal.sync().unwrap();
    (fs::read(path).unwrap(), ends)
}

/// Cuts the journal to `cut` bytes as a kill would, reopens it, and checks that exactly the
/// records that were whole come back and that an append lands on a clean line.
fn check_cut(path: &Path, bytes: &[u8], ends: &[usize], records: &[Record], cut: usize) {
    fs::write(path, &bytes[..cut]).unwrap();
    let whole = ends.iter().take_while(|end| **end <= cut).count();
    let (mut journal, back) = Journal::open::<Record>(path).unwrap();
    assert_eq!(back, records[..whole], "cut at byte {cut}");
    let next = Record {
        n: u64::MAX,
        text: "after the cut".into(),
    };
    journal.append(&next).unwrap();
    drop(journal);
    let (_, back) = Journal::open::<Record>(path).unwrap();
    assert_eq!(back.len(), whole + 1, "cut at byte {cut}");
    assert_eq!(back[..whole], records[..whole]);
    assert_eq!(back[whole], next);
}

#[test]
fn a_cut_at_any_byte_keeps_exactly_the_whole_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    // Escaped newlines and quotes, multi-byte UTF-8 and an empty string: cuts land inside each.
    let records: Vec<Record> = [
        "plain",
        "line\nbreak \"quoted\"",
        "ünïcødé ✓ 🦀",
        "",
        "{\"x\":1}\n",
    ]
    .iter()
    .enumerate()
    .map(|(n, text)| Record {
        n: n as u64,
        text: text.to_string(),
    })
    .collect();
    let (bytes, ends) = journal_bytes(&path, &records);
    assert_eq!(*ends.last().unwrap(), bytes.len());
    for cut in 0..=bytes.len() {
        check_cut(&path, &bytes, &ends, &records, cut);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_records_cut_anywhere_resume_to_their_whole_prefix(
        texts in prop::collection::vec(any::<String>(), 0..8),
        cut_fraction in 0.0f64..=1.0,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let records: Vec<Record> = texts
            .into_iter()
            .enumerate()
            .map(|(n, text)| Record { n: n as u64, text })
            .collect();
        let (bytes, ends) = journal_bytes(&path, &records);
        let cut = (bytes.len() as f64 * cut_fraction) as usize;
        check_cut(&path, &bytes, &ends, &records, cut);
    }
}

/// Set for the child process of [`a_journal_survives_sigkill`]: the journal to append to.
const CHILD_JOURNAL: &str = "SQLRFT_FILES_TEST_CHILD_JOURNAL";

/// The child half of [`a_journal_survives_sigkill`]: resumes the journal and appends numbered
/// records until it is killed.
#[test]
#[ignore = "the child process of a_journal_survives_sigkill, which runs it"]
fn append_until_killed() {
    let path = std::env::var_os(CHILD_JOURNAL).expect("run by a_journal_survives_sigkill");
    let (mut journal, done) = Journal::open::<Record>(Path::new(&path)).unwrap();
    for n in done.len() as u64.. {
        // Records of varying size, some larger than a page.
        let text = "x".repeat((n as usize * 7919) % 9000);
        journal.append(&Record { n, text }).unwrap();
    }
}

#[test]
fn a_journal_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    let mut seen = 0;
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "journal::append_until_killed", "--ignored"])
            .env(CHILD_JOURNAL, &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Let it write past where the last round stopped, then kill it mid-stream.
        let start = Instant::now();
        let grown = fs::metadata(&path).map_or(0, |m| m.len()) + 200_000;
        while fs::metadata(&path).map_or(0, |m| m.len()) < grown {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "round {round}: the child stopped writing"
            );
            if let Some(status) = child.try_wait().unwrap() {
                panic!("round {round}: the child exited by itself: {status}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let (_, records) = Journal::open::<Record>(&path).unwrap();
        assert!(records.len() > seen, "round {round}: nothing new survived");
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record.n, i as u64, "round {round}: records out of order");
            assert_eq!(record.text.len(), (i * 7919) % 9000);
        }
        seen = records.len();
    }
}
