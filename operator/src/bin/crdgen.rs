//! Prints the CustomResourceDefinitions of the operator as YAML (committed under operator/deploy/crds/).

use kube::CustomResourceExt;
use pgrator_operator::api::Postgres;

fn main() -> Result<(), serde_yaml::Error> {
    print!("{}", serde_yaml::to_string(&Postgres::crd())?);
    Ok(())
}
