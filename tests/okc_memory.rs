//! Memory stays flat as an order grows: the serial list is streamed at
//! import, devices are paged from the journal during production, and the
//! manifests are streamed to disk. Peak resident memory of `okc produce`
//! for a ten times larger order must stay within 1.5× (measured by GNU time,
//! a tool we did not write). A memory bound, not a timing.

mod common;

use std::process::Command;

use common::Workspace;

fn peak_rss_kib(devices: usize) -> u64 {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    let serials: Vec<String> = (0..devices)
        .map(|i| format!("FU{:08}", 10_000_000 + i * 7))
        .collect();
    ws.write("list.txt", (serials.join("\n") + "\n").as_bytes());
    let journal = ws.path("journal.sqlite").display().to_string();
    let env = [("CERTMINT_JOURNAL", journal.as_str())];
    let list = ws.path("list.txt").display().to_string();
    common::register_manufacturer(|args| ws.certmint_env(args, &env), "4540536920", "FU", true);
    ws.certmint_env(
        &[
            "order",
            "import",
            "--manufacturer-vkn",
            "4540536920",
            "--ca",
            "ca",
            "--prefixes",
            "FU",
            "--serials",
            &list,
        ],
        &env,
    )
    .ok();
    ws.certmint_env(&["order", "pay", "--order", "1"], &env)
        .ok();
    let out = Command::new("/usr/bin/time")
        .args([
            "-f",
            "peak_rss_kib=%M",
            env!("CARGO_BIN_EXE_certmint"),
            "okc",
            "produce",
            "--order",
            "1",
            "--ca",
            "ca",
            "--out",
            "out",
        ])
        .env("CERTMINT_JOURNAL", &journal)
        .env("CERTMINT_OPERATOR", "test-operator")
        .current_dir(ws.dir.path())
        .output()
        .expect("GNU time (apt-get install time)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kib="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {stderr}"))
}

#[test]
fn peak_memory_of_production_stays_flat_as_the_order_grows() {
    let small = peak_rss_kib(150);
    let large = peak_rss_kib(1500);
    eprintln!("peak RSS: 150 devices {small} KiB, 1500 devices {large} KiB");
    assert!(
        large * 2 <= small * 3,
        "1500 devices used {large} KiB, 150 used {small} KiB: more than 1.5×"
    );
}
