//! The README's main job, as a user runs it: `scripts/demo.sh` (an ÖKC
//! batch of 3,000 devices on the embedded defaults, checked with OpenSSL)
//! and `scripts/demo-mali-muhur.sh` (seals, an HSM session on SoftHSM2),
//! each run whole with this build of certmint (`CERTMINT_BIN`), so that a
//! change that breaks a demo breaks the suite.

use std::process::Command;

fn run_demo(script: &str) -> (i32, String) {
    let out = tempfile::tempdir().unwrap();
    let output = Command::new("bash")
        .arg(format!("{}/scripts/{script}", env!("CARGO_MANIFEST_DIR")))
        .arg(out.path().join("demo-output"))
        .env("CERTMINT_BIN", env!("CARGO_BIN_EXE_certmint"))
        .output()
        .expect("run bash");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), said)
}

#[test]
fn the_okc_demo_produces_and_verifies_its_3000_devices() {
    let (code, said) = run_demo("demo.sh");
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("certificates verified: 3000"), "{said}");
    assert!(said.contains("Audit chain intact"), "{said}");
    assert!(said.contains("3000 devices in"), "{said}");
}

#[test]
fn the_mali_muhur_demo_runs_end_to_end() {
    let (code, said) = run_demo("demo-mali-muhur.sh");
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("company.pem: OK"), "{said}");
    assert!(said.contains("FU00022547.pem: OK"), "{said}");
}
