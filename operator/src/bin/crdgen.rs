//! Writes the CustomResourceDefinitions of the operator as YAML files into a directory (committed under
//! operator/deploy/crds/; `just generate`).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: pgrator-crdgen <directory>")?,
    );
    for (file, crd) in pgrator_operator::api::crds() {
        std::fs::write(dir.join(file), serde_yaml::to_string(&crd)?)?;
    }
    Ok(())
}
