//! `schema/ventanilla.graphql` is the schema the gateway serves.

use std::path::PathBuf;

#[test]
fn schema_file_is_the_served_schema() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schema/ventanilla.graphql");
    let served = ventanilla_gateway::schema::sdl();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &served).unwrap();
        return;
    }
    let file = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        file == served,
        "schema/ventanilla.graphql differs from the schema the gateway serves; \
         regenerate it with `UPDATE_SCHEMA=1 cargo test -p ventanilla-gateway schema_file` \
         and review the diff (a removed or changed field breaks integrators)"
    );
}
