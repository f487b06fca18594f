//! Validation of JUnit XML against the Jenkins JUnit schema (tests/fixtures/junit), with
//! xmllint. perfgate's JUnit output must pass it; these tests check the helper and the schema
//! on hand-written documents. Without xmllint they fail and say how to install it: a silent
//! pass would hide that nothing was validated.

use std::path::{Path, PathBuf};
use std::process::Command;

const INSTALL: &str = "xmllint is needed to validate JUnit XML: install it with `apt-get install -y libxml2-utils` (Debian/Ubuntu; `sudo` if not root), `dnf install libxml2`, or `brew install libxml2`";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/junit")
        .join(name)
}

/// Validates `xml_path` with `xmllint --noout --schema tests/fixtures/junit/jenkins-junit.xsd`.
/// The error is xmllint's report (which line breaks which rule), or how to install xmllint.
pub fn validate(xml_path: &Path) -> Result<(), String> {
    let schema = fixture("jenkins-junit.xsd");
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(xml_path)
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("xmllint not found. {INSTALL}"),
            _ => format!("cannot run xmllint: {e}"),
        })?;
    if out.status.success() {
        return Ok(());
    }
    let report = String::from_utf8_lossy(&out.stderr);
    // xmllint's status 3 is "fails to validate"; anything else is a broken schema or file.
    Err(match out.status.code() {
        Some(3) => format!("{} is not valid JUnit XML:\n{report}", xml_path.display()),
        code => format!(
            "xmllint could not check {} (status {code:?}):\n{report}",
            xml_path.display()
        ),
    })
}

fn require_xmllint() {
    let found = Command::new("xmllint").arg("--version").output().is_ok();
    assert!(found, "{INSTALL}");
}

#[test]
fn a_complete_junit_report_validates() {
    require_xmllint();
    validate(&fixture("valid.xml")).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn an_invalid_junit_report_is_rejected_with_the_reason() {
    require_xmllint();
    let err = validate(&fixture("invalid.xml")).expect_err("a testcase without a name");
    assert!(
        err.contains("is not valid JUnit XML")
            && err.contains("The attribute 'name' is required but missing"),
        "{err}"
    );
}

/// The schema's strict points, which a JUnit writer has to respect (see SOURCES.md).
#[test]
fn the_schema_keeps_jenkins_strict_points() {
    require_xmllint();
    let dir = tempfile::tempdir().expect("tempdir");
    let check = |name: &str, xml: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, xml).expect("write");
        validate(&path)
    };
    // A single suite may be the document root.
    check(
        "suite.xml",
        r#"<testsuite name="s" tests="1"><testcase name="c"><skipped/></testcase></testsuite>"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for (name, xml, why) in [
        (
            "suites-skipped.xml",
            r#"<testsuites skipped="0"><testsuite name="s" tests="0"/></testsuites>"#,
            "attribute 'skipped' is not allowed",
        ),
        (
            "skipped-message.xml",
            r#"<testsuite name="s" tests="1"><testcase name="c"><skipped message="m"/></testcase></testsuite>"#,
            "attribute 'message' is not allowed",
        ),
        (
            "order.xml",
            r#"<testsuite name="s" tests="1"><testcase name="c"><failure/><skipped/></testcase></testsuite>"#,
            "skipped",
        ),
        (
            "no-tests.xml",
            r#"<testsuite name="s"/>"#,
            "attribute 'tests' is required",
        ),
    ] {
        let err = check(name, xml).expect_err(name);
        assert!(err.contains(why), "{name}: {err}");
    }
}

#[test]
fn a_missing_file_is_an_error_not_a_pass() {
    require_xmllint();
    let err = validate(Path::new("/no/such/junit.xml")).expect_err("no file");
    assert!(err.contains("could not check"), "{err}");
}
