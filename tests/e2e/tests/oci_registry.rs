//! Pushing to and pulling from the real OCI registry of the test world (distribution 2.8): a small artifact round
//! trip by digest, basic auth over TLS with the test CA, and the failures a user must be able to tell apart —
//! wrong password, unreachable registry, tampered content — each leaving no output behind.

mod oci_support;

use oci_support::{block_on, client_options, host_arch, tree};
use pgrator_extension_oci::OciError;
use pgrator_extension_oci::epoch::rfc3339_utc;
use pgrator_extension_oci::image::{ImageInput, ImageSet, build_image, build_index};
use pgrator_extension_oci::layer::{FileMode, LayerBuilder};
use pgrator_extension_oci::layout::write_layout;
use pgrator_extension_oci::registry::{
    Credentials, RegistryOptions as ClientOptions, pull_image, push_layout,
};
use pgrator_extension_oci::spec::{Annotations, ContainerConfig, annotation};
use pgrator_world::ports::free_port;
use pgrator_world::registry::{Registry, RegistryOptions};

const TEXT: &str = "a small artifact from pgrator\n";

/// A one-file image, written as a layout under `dir`; returns the layout path and the built set.
fn small_artifact(dir: &std::path::Path) -> (std::path::PathBuf, ImageSet) {
    let mut layer = LayerBuilder::new();
    layer
        .file(
            "artifact/hello.txt",
            FileMode::Regular,
            TEXT.as_bytes().to_vec(),
        )
        .expect("file");
    let mut annotations = Annotations::new();
    annotations.insert(annotation::TITLE.into(), "pgrator test artifact".into());
    let image = build_image(ImageInput {
        arch: host_arch(),
        layers: vec![layer.build(0).expect("layer")],
        container: ContainerConfig::default(),
        created: rfc3339_utc(0),
        annotations: annotations.clone(),
        created_by: "oci_registry test".into(),
    })
    .expect("image");
    let set = build_index(vec![image], annotations).expect("index");
    let layout = dir.join("layout");
    write_layout(&layout, &set, "v1").expect("write the layout");
    (layout, set)
}

fn with_credentials(mut options: ClientOptions, user: &str, password: &str) -> ClientOptions {
    options.credentials = Some(Credentials {
        username: user.into(),
        password: password.into(),
    });
    options
}

#[test]
fn a_small_artifact_is_pushed_and_pulled_back_by_digest() {
    let registry = Registry::start(RegistryOptions::plain()).expect("start the registry");
    let work = tempfile::tempdir().expect("temp dir");
    let (layout, set) = small_artifact(work.path());
    let options = client_options(&registry);

    let pushed = block_on(push_layout(
        &layout,
        &format!("{}/pgrator/artifact:v1", registry.address()),
        &options,
    ))
    .expect("push");
    assert_eq!(pushed.digest, set.digest());
    assert_eq!(
        pushed.reference,
        format!(
            "{}/pgrator/artifact:v1@{}",
            registry.address(),
            set.digest()
        )
    );
    let layer_digest = set.images[0].layers[0].digest.to_string();
    assert!(
        registry.blob_data_path(&layer_digest).is_file(),
        "the registry stores the layer"
    );

    // By digest alone (no tag), into an existing empty directory, as a node pulls an image volume.
    let out = work.path().join("rootfs");
    std::fs::create_dir(&out).expect("mkdir");
    let by_digest = format!("{}/pgrator/artifact@{}", registry.address(), pushed.digest);
    let pulled =
        block_on(pull_image(&by_digest, &out, &options, host_arch())).expect("pull by digest");
    assert_eq!(
        pulled.manifest_digest,
        set.images[0].manifest.descriptor.digest
    );
    assert_eq!(
        std::fs::read_to_string(out.join("artifact/hello.txt")).expect("read"),
        TEXT
    );
    assert_eq!(tree(&out), ["artifact", "artifact/hello.txt"]);

    // Pushing the same content again uploads nothing and yields the same digest.
    let again = block_on(push_layout(
        &layout,
        &format!("{}/pgrator/artifact:v1", registry.address()),
        &options,
    ))
    .expect("push again");
    assert_eq!((again.digest, again.uploaded_blobs), (pushed.digest, 0));
}

#[test]
fn basic_auth_over_tls_with_the_test_ca() {
    let registry = Registry::start(
        RegistryOptions::plain()
            .tls()
            .basic_auth("pusher", "correct horse"),
    )
    .expect("start");
    let work = tempfile::tempdir().expect("temp dir");
    let (layout, set) = small_artifact(work.path());
    let options = with_credentials(client_options(&registry), "pusher", "correct horse");
    assert!(options.ca_file.is_some() && !options.insecure_http);

    let pushed = block_on(push_layout(
        &layout,
        &format!("{}/pgrator/private:v1", registry.address()),
        &options,
    ))
    .expect("push over TLS with basic auth");
    assert_eq!(pushed.digest, set.digest());
    let out = work.path().join("rootfs");
    block_on(pull_image(&pushed.reference, &out, &options, host_arch()))
        .expect("pull over TLS with basic auth");
    assert_eq!(
        std::fs::read_to_string(out.join("artifact/hello.txt")).expect("read"),
        TEXT
    );

    // Without the test CA the certificate is not trusted.
    let mut no_ca = options.clone();
    no_ca.ca_file = None;
    let untrusted = work.path().join("untrusted");
    let err = block_on(pull_image(
        &pushed.reference,
        &untrusted,
        &no_ca,
        host_arch(),
    ))
    .expect_err("untrusted CA");
    let text = err.to_string();
    assert!(
        matches!(err, OciError::Unreachable { .. }) && text.contains("certificate"),
        "{text}"
    );
    assert!(!untrusted.exists());

    // Without credentials the registry refuses.
    let anonymous = ClientOptions {
        credentials: None,
        ..options.clone()
    };
    let refused = work.path().join("anonymous");
    let err = block_on(pull_image(
        &pushed.reference,
        &refused,
        &anonymous,
        host_arch(),
    ))
    .expect_err("anonymous");
    assert!(matches!(err, OciError::Unauthorized { .. }), "{err}");
    assert!(!refused.exists());
}

#[test]
fn a_wrong_password_is_refused_and_nothing_is_written() {
    let registry =
        Registry::start(RegistryOptions::plain().basic_auth("pusher", "right")).expect("start");
    let work = tempfile::tempdir().expect("temp dir");
    let (layout, _) = small_artifact(work.path());
    let good = with_credentials(client_options(&registry), "pusher", "right");
    let pushed = block_on(push_layout(
        &layout,
        &format!("{}/pgrator/locked:v1", registry.address()),
        &good,
    ))
    .expect("push with the right password");

    let bad = with_credentials(client_options(&registry), "pusher", "wrong");
    let err = block_on(push_layout(
        &layout,
        &format!("{}/pgrator/locked:v2", registry.address()),
        &bad,
    ))
    .expect_err("push with a wrong password");
    let text = err.to_string();
    assert!(matches!(err, OciError::Unauthorized { .. }), "{text}");
    assert!(
        text.contains(&registry.address()) && text.contains("refused the credentials"),
        "{text}"
    );

    let before = tree(work.path());
    let out = work.path().join("rootfs");
    let err = block_on(pull_image(&pushed.reference, &out, &bad, host_arch()))
        .expect_err("pull, wrong password");
    assert!(matches!(err, OciError::Unauthorized { .. }), "{err}");
    assert_eq!(
        tree(work.path()),
        before,
        "a refused pull leaves nothing behind"
    );
}

#[test]
fn an_unreachable_registry_is_a_clear_error() {
    // A free port nobody listens on.
    let address = format!("127.0.0.1:{}", free_port());
    let work = tempfile::tempdir().expect("temp dir");
    let (layout, set) = small_artifact(work.path());
    let options = ClientOptions {
        insecure_http: true,
        ..ClientOptions::default()
    };
    let err = block_on(push_layout(
        &layout,
        &format!("{address}/pgrator/artifact:v1"),
        &options,
    ))
    .expect_err("push to a closed port");
    let text = err.to_string();
    assert!(matches!(err, OciError::Unreachable { .. }), "{text}");
    assert!(
        text.contains(&address) && text.contains("Connection refused"),
        "{text}"
    );

    let before = tree(work.path());
    let out = work.path().join("rootfs");
    let err = block_on(pull_image(
        &format!("{address}/pgrator/artifact@{}", set.digest()),
        &out,
        &options,
        host_arch(),
    ))
    .expect_err("pull from a closed port");
    assert!(matches!(err, OciError::Unreachable { .. }), "{err}");
    assert_eq!(tree(work.path()), before);
}

#[test]
fn a_tampered_layer_is_refused_on_pull() {
    let registry = Registry::start(RegistryOptions::plain()).expect("start the registry");
    let work = tempfile::tempdir().expect("temp dir");
    let (layout, set) = small_artifact(work.path());
    let options = client_options(&registry);
    let pushed = block_on(push_layout(
        &layout,
        &format!("{}/pgrator/artifact:v1", registry.address()),
        &options,
    ))
    .expect("push");

    // Flip bytes inside the stored layer, keeping its size: only the digest can tell.
    let layer_digest = set.images[0].layers[0].digest.to_string();
    let data = registry.blob_data_path(&layer_digest);
    let mut bytes = std::fs::read(&data).expect("read the stored layer");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&data, &bytes).expect("tamper with the stored layer");

    let before = tree(work.path());
    let out = work.path().join("rootfs");
    let err = block_on(pull_image(&pushed.reference, &out, &options, host_arch()))
        .expect_err("tampered layer");
    let text = err.to_string();
    assert!(matches!(err, OciError::DigestMismatch { .. }), "{text}");
    assert!(
        text.contains(&layer_digest) && text.contains("tampered"),
        "{text}"
    );
    assert_eq!(tree(work.path()), before, "no half-written output");
}

#[test]
fn pulling_needs_a_digest_and_an_empty_target() {
    let work = tempfile::tempdir().expect("temp dir");
    let options = ClientOptions::default();
    let err = block_on(pull_image(
        "127.0.0.1:1/pgrator/artifact:v1",
        &work.path().join("x"),
        &options,
        host_arch(),
    ))
    .expect_err("tag only");
    assert!(err.to_string().contains("pull by digest"), "{err}");

    std::fs::write(work.path().join("keep"), "user data").expect("write");
    let reference = format!("127.0.0.1:1/pgrator/artifact@sha256:{}", "0".repeat(64));
    let err = block_on(pull_image(&reference, work.path(), &options, host_arch()))
        .expect_err("non-empty target");
    assert!(matches!(err, OciError::OutputExists { .. }), "{err}");
    assert_eq!(
        std::fs::read_to_string(work.path().join("keep")).expect("read"),
        "user data"
    );
}

#[test]
fn token_auth_gets_a_bearer_token_with_the_credentials() {
    use oci_support::token_issuer::TokenIssuer;
    let issuer = TokenIssuer::start("ci", "token-secret");
    let registry = Registry::start(RegistryOptions::plain().token_auth(issuer.registry_auth()))
        .expect("start");
    let work = tempfile::tempdir().expect("temp dir");
    let (layout, set) = small_artifact(work.path());
    let options = with_credentials(client_options(&registry), "ci", "token-secret");

    let pushed = block_on(push_layout(
        &layout,
        &format!("{}/pgrator/tokened:v1", registry.address()),
        &options,
    ))
    .expect("push with a bearer token");
    assert_eq!(pushed.digest, set.digest());
    let out = work.path().join("rootfs");
    block_on(pull_image(&pushed.reference, &out, &options, host_arch()))
        .expect("pull with a bearer token");
    assert_eq!(
        std::fs::read_to_string(out.join("artifact/hello.txt")).expect("read"),
        TEXT
    );
    assert!(issuer.issued() >= 2, "tokens issued: {}", issuer.issued());

    // The issuer refuses wrong credentials, so no token, so no access.
    let bad = with_credentials(client_options(&registry), "ci", "wrong");
    let denied = work.path().join("denied");
    let err = block_on(pull_image(&pushed.reference, &denied, &bad, host_arch()))
        .expect_err("wrong password");
    assert!(matches!(err, OciError::Unauthorized { .. }), "{err}");
    assert!(!denied.exists());
}
