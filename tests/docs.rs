//! The documentation stays in step with the code: every setting is in the README's table,
//! every error code in `docs/PROTOCOL.md`.

use charla::config::SETTINGS;
use charla::error::ErrorCode;

fn read(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

#[test]
fn the_readme_lists_every_setting() {
    let readme = read("README.md");
    for s in SETTINGS {
        assert!(
            readme.contains(&format!("`{}`", s.env)),
            "README.md lacks {}",
            s.env
        );
        assert!(
            readme.contains(&format!("`{}`", s.key)),
            "README.md lacks key {}",
            s.key
        );
    }
}

#[test]
fn the_protocol_documents_every_error_code() {
    let protocol = read("docs/PROTOCOL.md");
    for code in ErrorCode::ALL {
        assert!(
            protocol.contains(&format!("`{}`", code.as_str())),
            "docs/PROTOCOL.md lacks the error code {}",
            code.as_str()
        );
    }
}
