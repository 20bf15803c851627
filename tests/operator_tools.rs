//! What operators and their scripts rely on beyond the main tasks: serial
//! lists as spreadsheets write them.

mod common;

use common::{import_args, run_on_journal, Workspace};

/// RFC 4180 CSV as a spreadsheet exports it: every field quoted, a comma
/// inside a quoted field, a quote written twice. Each row keeps its line.
#[test]
fn order_import_reads_quoted_csv_fields_with_separators_inside() {
    let ws = Workspace::new();
    ws.write(
        "list.csv",
        b"\"No\",\"Seri No\",\"Model\"\n\
          \"1\",\"JI12345671\",\"YK, 100\"\n\
          \"2\",\"JI12345672\",\"the \"\"Y\"\" model, v2\"\n\
          \"3\",\"JI1234567X\",\"bad serial\"\n\
          \"4\",\"JI12345674\",\"unclosed\n",
    );
    let refused = run_on_journal(&ws, &import_args("JI", "list.csv", &[]), &[]);
    assert_ne!(refused.code, 0, "a list with problems is refused whole");
    assert!(
        refused.stderr.contains("line 4") && refused.stderr.contains("JI1234567X"),
        "the bad serial is named with its line: {}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("line 5") && refused.stderr.contains("does not close"),
        "the unclosed quote is named with its line: {}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("fields"),
        "no row is miscounted: {}",
        refused.stderr
    );

    let accepted = run_on_journal(
        &ws,
        &import_args("JI", "list.csv", &["--accept-good-lines", "--json"]),
        &[],
    )
    .ok();
    let report: serde_json::Value = serde_json::from_str(&accepted.stdout).unwrap();
    assert_eq!(report["accepted"], 2, "{}", accepted.stdout);
    assert_eq!(report["problem_count"], 2, "{}", accepted.stdout);
}

/// `certmint inspect --json cert.pem | head -1`: the reader closes the pipe
/// before certmint writes; certmint ends quietly with the status of a
/// process ended by SIGPIPE (141), as `cat` does, and never panics.
#[test]
fn a_closed_standard_output_ends_the_program_quietly() {
    use std::process::{Command, Stdio};
    let ws = Workspace::with_ca(&[]);
    for _ in 0..3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_certmint"))
            .args(["inspect", "--json", "ca/issuing.pem"])
            .current_dir(ws.path("."))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Closed before the child, still starting, writes anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(out.status.code(), Some(141), "{stderr}");
        assert!(stderr.is_empty(), "nothing said: {stderr}");
    }
}
