//! The extension image for CloudNativePG: reproducible (two builds, one digest), the layout and metadata CNPG
//! expects, clear refusals of bad input with nothing written, and a module with a bundled `/system` library that
//! PostgreSQL 18 loads from the pulled image exactly as CNPG configures it.

mod oci_support;

use std::path::{Path, PathBuf};

use oci_support::{block_on, client_options, host_arch, open_to_server, pg_module, tree};
use pgrator_extension_oci::extension::{ExtensionSpec, build_extension, build_extension_layout};
use pgrator_extension_oci::layout::read_layout;
use pgrator_extension_oci::registry::{pull_image, push_layout};
use pgrator_extension_oci::spec::{ImageConfig, ImageManifest, from_json};
use pgrator_extension_oci::{Distro, OciError};
use pgrator_world::postgres::{PgConfig, Postgres, conf_quote};
use pgrator_world::registry::{Registry, RegistryOptions};

fn spec(name: &str, library: PathBuf, license: &Path) -> ExtensionSpec {
    ExtensionSpec {
        name: name.to_string(),
        version: "1.0.0".into(),
        distro: Distro::Bookworm,
        libraries: vec![(host_arch(), library)],
        library_file_name: None,
        share_files: vec![],
        license_files: vec![license.to_path_buf()],
        spdx_license: Some("PostgreSQL".into()),
        library_search_path: vec![],
        source: None,
        revision: None,
        epoch: 1_700_000_000,
    }
}

fn license_file(dir: &Path) -> PathBuf {
    let path = dir.join("LICENSE");
    std::fs::write(&path, "PostgreSQL License (test copy)\n").expect("write license");
    path
}

#[test]
fn two_builds_from_the_same_inputs_give_one_digest() {
    let work = tempfile::tempdir().expect("temp dir");
    let license = license_file(work.path());
    let spec = spec("auto-explain", pg_module("auto_explain"), &license);

    let first = build_extension_layout(&spec, &work.path().join("one")).expect("first build");
    let second = build_extension_layout(&spec, &work.path().join("two")).expect("second build");
    assert_eq!(first.set.digest(), second.set.digest());
    // Byte for byte the same layout on disk.
    let files = tree(&work.path().join("one"));
    assert_eq!(files, tree(&work.path().join("two")));
    for f in files
        .iter()
        .filter(|f| work.path().join("one").join(f).is_file())
    {
        let a = std::fs::read(work.path().join("one").join(f)).expect("read");
        let b = std::fs::read(work.path().join("two").join(f)).expect("read");
        assert!(a == b, "{f} differs between the two builds");
    }
    // Rebuilding into an existing layout replaces it, same digest.
    let third = build_extension_layout(&spec, &work.path().join("one")).expect("rebuild in place");
    assert_eq!(third.set.digest(), first.set.digest());
    assert_eq!(
        read_layout(&work.path().join("one"))
            .expect("read back")
            .top
            .descriptor
            .digest,
        first.set.digest()
    );

    // Another timestamp (SOURCE_DATE_EPOCH) is another image.
    let mut later = spec.clone();
    later.epoch += 1;
    assert_ne!(
        build_extension(&later).expect("later build").set.digest(),
        first.set.digest()
    );
}

#[test]
fn the_image_has_the_cnpg_layout_user_and_metadata() {
    let work = tempfile::tempdir().expect("temp dir");
    let license = license_file(work.path());
    let built = build_extension_layout(
        &spec("auto-explain", pg_module("auto_explain"), &license),
        &work.path().join("l"),
    )
    .expect("build");
    assert_eq!(built.tag, "1.0.0-18-bookworm");
    let layout = read_layout(&work.path().join("l")).expect("read the layout");
    assert_eq!(layout.ref_name.as_deref(), Some("1.0.0-18-bookworm"));
    let [image] = layout.images.as_slice() else {
        panic!("one platform image")
    };
    let manifest: ImageManifest = from_json("manifest", &image.manifest.bytes).expect("manifest");
    let config: ImageConfig = from_json("config", &image.config.bytes).expect("config");
    assert_eq!(config.config.user.as_deref(), Some("65532:65532"));
    assert_eq!(
        (config.os.as_str(), config.architecture.as_str()),
        ("linux", host_arch().oci_name())
    );
    for (key, value) in [
        ("io.pgrator.postgresql.major", "18"),
        ("io.pgrator.os", "bookworm"),
        ("io.pgrator.extension.name", "auto-explain"),
        ("io.pgrator.extension.library", "auto_explain.so"),
        ("io.pgrator.system.libraries", ""),
        ("org.opencontainers.image.version", "1.0.0"),
        ("org.opencontainers.image.licenses", "PostgreSQL"),
        ("org.opencontainers.image.created", "2023-11-14T22:13:20Z"),
    ] {
        assert_eq!(
            manifest.annotations.get(key).map(String::as_str),
            Some(value),
            "annotation {key}"
        );
        assert_eq!(
            config.config.labels.get(key).map(String::as_str),
            Some(value),
            "label {key}"
        );
    }

    // The content, unpacked as a node would.
    let registry = Registry::start(RegistryOptions::plain()).expect("start the registry");
    let options = client_options(&registry);
    let pushed = block_on(push_layout(
        &work.path().join("l"),
        &format!("{}/pgrator/auto-explain", registry.address()),
        &options,
    ))
    .expect("push");
    assert!(
        pushed.reference.contains(":1.0.0-18-bookworm@sha256:"),
        "{}",
        pushed.reference
    );
    let root = work.path().join("root");
    block_on(pull_image(&pushed.reference, &root, &options, host_arch())).expect("pull");
    assert_eq!(
        tree(&root),
        [
            "lib",
            "lib/auto_explain.so",
            "licenses",
            "licenses/LICENSE",
            "share",
            "share/extension",
            "system"
        ]
    );
    assert_eq!(
        std::fs::read(root.join("lib/auto_explain.so")).expect("read"),
        std::fs::read(pg_module("auto_explain")).expect("read")
    );
}

/// Each bad input fails with its own clear error, and neither the output nor a staging directory remains.
#[test]
fn bad_inputs_fail_clearly_and_leave_no_output() {
    let work = tempfile::tempdir().expect("temp dir");
    let license = license_file(work.path());
    let out = work.path().join("out");
    let check = |library: PathBuf, expect: &dyn Fn(&OciError) -> bool, words: &[&str]| {
        let before = tree(work.path());
        let err =
            build_extension_layout(&spec("bad", library, &license), &out).expect_err("must fail");
        let text = err.to_string();
        assert!(expect(&err), "unexpected error: {text}");
        for w in words {
            assert!(text.contains(w), "'{w}' missing from: {text}");
        }
        assert_eq!(
            tree(work.path()),
            before,
            "output left behind after: {text}"
        );
    };

    check(
        work.path().join("missing.so"),
        &|e| matches!(e, OciError::LibraryMissing { .. }),
        &["missing.so", "does not exist"],
    );

    // An AArch64 ELF header on an amd64 build (or the reverse on arm64).
    let foreign = work.path().join("foreign.so");
    let mut header = vec![0u8; 64];
    header[..4].copy_from_slice(b"\x7fELF");
    header[4] = 2; // 64-bit
    header[5] = 1; // little-endian
    header[6] = 1;
    header[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
    let other_machine: u16 = if host_arch().oci_name() == "amd64" {
        183
    } else {
        62
    };
    header[18..20].copy_from_slice(&other_machine.to_le_bytes());
    std::fs::write(&foreign, &header).expect("write");
    check(
        foreign,
        &|e| matches!(e, OciError::WrongArchitecture { .. }),
        &["wrong architecture", host_arch().oci_name()],
    );

    let text = work.path().join("notes.so");
    std::fs::write(&text, "not a library\n").expect("write");
    check(
        text,
        &|e| matches!(e, OciError::NotElf { .. }),
        &["not an ELF file"],
    );

    // A real shared library that is not a PostgreSQL module.
    let system_libz = [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/aarch64-linux-gnu/libz.so.1",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("zlib is installed");
    let libz = work.path().join("libz.so");
    std::fs::copy(system_libz, &libz).expect("copy libz");
    check(
        libz.clone(),
        &|e| matches!(e, OciError::NotPostgresModule { .. }),
        &["Pg_magic_func"],
    );
    std::fs::remove_file(&libz).expect("rm");

    // dblink needs the server's bundled libpq; copied away from it, ldd cannot resolve it.
    let lonely = work.path().join("dblink.so");
    std::fs::copy(pg_module("dblink"), &lonely).expect("copy dblink");
    check(
        lonely.clone(),
        &|e| matches!(e, OciError::UnresolvedDependencies { .. }),
        &["libpq-", "not found"],
    );
    std::fs::remove_file(&lonely).expect("rm");

    // A non-empty directory that is not a layout is never overwritten.
    std::fs::create_dir(&out).expect("mkdir");
    std::fs::write(out.join("precious"), "keep me").expect("write");
    let err = build_extension_layout(&spec("ok", pg_module("auto_explain"), &license), &out)
        .expect_err("occupied");
    assert!(matches!(err, OciError::OutputExists { .. }), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("precious")).expect("read"),
        "keep me"
    );
}

/// dblink links against the server's own libpq build (libpq-<hash>.so, not in a stock image): it goes to
/// `/system`, and PostgreSQL 18 started with `dynamic_library_path` and `LD_LIBRARY_PATH` into the pulled tree, as
/// CNPG sets them for an extension with `ld_library_path: [system]`, loads both from there and uses them.
#[test]
fn a_bundled_system_library_is_loaded_from_the_pulled_image() {
    let work = tempfile::tempdir().expect("temp dir");
    let license = license_file(work.path());
    let mut spec = spec("dblink-probe", pg_module("dblink"), &license);
    // A name found only in the image, so the server cannot pick up its own $libdir/dblink.so.
    spec.library_file_name = Some("pgrator_dblink_probe.so".into());
    let built = build_extension_layout(&spec, &work.path().join("layout")).expect("build");
    let [(_, bundled)] = built.bundled.as_slice() else {
        panic!("one architecture")
    };
    let system: Vec<&str> = bundled.iter().map(|b| b.soname.as_str()).collect();
    assert!(
        system.len() == 1 && system[0].starts_with("libpq-"),
        "bundled: {system:?}"
    );

    let registry = Registry::start(RegistryOptions::plain()).expect("start the registry");
    let options = client_options(&registry);
    let pushed = block_on(push_layout(
        &work.path().join("layout"),
        &format!("{}/pgrator/dblink-probe", registry.address()),
        &options,
    ))
    .expect("push");
    // The node's view: /extensions/<name> is the unpacked image.
    let extensions = work.path().join("extensions");
    std::fs::create_dir(&extensions).expect("mkdir");
    let mount = extensions.join("dblink-probe");
    block_on(pull_image(&pushed.reference, &mount, &options, host_arch())).expect("pull by digest");
    open_to_server(work.path());
    open_to_server(&extensions);

    let pg = Postgres::start(
        PgConfig::default()
            .setting(
                "dynamic_library_path",
                conf_quote(&format!("$libdir:{}/lib", mount.display())),
            )
            .setting(
                "extension_control_path",
                conf_quote(&format!("$system:{}/share", mount.display())),
            )
            .env(
                "LD_LIBRARY_PATH",
                mount.join("system").display().to_string(),
            ),
    )
    .expect("start PostgreSQL 18");
    pg.sql(
        "postgres",
        "CREATE FUNCTION probe_dblink(text, text) RETURNS SETOF record \
         AS 'pgrator_dblink_probe', 'dblink_record' LANGUAGE C STRICT",
    )
    .expect("create a function from the image's module");
    let conninfo = format!(
        "host={} port={} user=postgres dbname=postgres",
        pg.socket_dir().display(),
        pg.port()
    );
    // One session: call into the module, then read that backend's memory map.
    let out = pg
        .sql(
            "postgres",
            &format!(
                "SELECT x FROM probe_dblink('{conninfo}', 'SELECT 6 * 7') AS t(x int); \
                 SELECT string_agg(DISTINCT substring(l from '/.*$'), ' ') FROM \
                 regexp_split_to_table(pg_read_file('/proc/self/maps'), E'\\n') AS l WHERE l LIKE '%{}%'",
                mount.display()
            ),
        )
        .expect("dblink through the bundled libpq");
    let (answer, maps) = out.split_once('\n').expect("two results");
    assert_eq!(answer, "42");
    // Both files were mapped from the pulled tree.
    assert!(
        maps.contains(&format!("{}/lib/pgrator_dblink_probe.so", mount.display())),
        "{maps}"
    );
    assert!(
        maps.contains(&format!("{}/system/{}", mount.display(), system[0])),
        "{maps}"
    );
}
