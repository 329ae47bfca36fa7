//! Assembles layers into an OCI image (config + manifest) per platform, and the platform images into an index.

use crate::digest::Digest;
use crate::error::{OciError, Result};
use crate::layer::Layer;
use crate::platform::Arch;
use crate::spec::{
    Annotations, ContainerConfig, Descriptor, History, ImageConfig, ImageIndex, ImageManifest,
    MEDIA_TYPE_CONFIG, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, Platform, RootFs, to_canonical_json,
};

/// A document and its bytes, exactly as stored and pushed.
#[derive(Debug, Clone)]
pub struct Blob {
    pub descriptor: Descriptor,
    pub bytes: Vec<u8>,
}

impl Blob {
    fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        Blob {
            descriptor: Descriptor {
                media_type: media_type.to_string(),
                digest: Digest::of(&bytes).to_string(),
                size: bytes.len() as u64,
                platform: None,
                annotations: Annotations::new(),
            },
            bytes,
        }
    }
}

/// What one platform's image is made of.
#[derive(Debug, Clone)]
pub struct ImageInput {
    pub arch: Arch,
    pub layers: Vec<Layer>,
    pub container: ContainerConfig,
    /// RFC 3339 time of `created` (from SOURCE_DATE_EPOCH, so reproducible).
    pub created: String,
    /// Manifest annotations.
    pub annotations: Annotations,
    /// One line for the config's history (what made the layer).
    pub created_by: String,
}

/// One platform's image.
#[derive(Debug, Clone)]
pub struct Image {
    pub platform: Platform,
    pub config: Blob,
    pub manifest: Blob,
    pub layers: Vec<Layer>,
}

/// An image index and the images it lists.
#[derive(Debug, Clone)]
pub struct ImageSet {
    pub index: Blob,
    pub images: Vec<Image>,
}

impl ImageSet {
    pub fn digest(&self) -> &str {
        &self.index.descriptor.digest
    }
}

pub fn build_image(input: ImageInput) -> Result<Image> {
    let platform = Platform {
        architecture: input.arch.oci_name().to_string(),
        os: "linux".to_string(),
        variant: input.arch.oci_variant().map(str::to_string),
    };
    let config = ImageConfig {
        created: Some(input.created.clone()),
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        config: input.container,
        rootfs: RootFs {
            kind: "layers".to_string(),
            diff_ids: input.layers.iter().map(|l| l.diff_id.to_string()).collect(),
        },
        history: input
            .layers
            .iter()
            .map(|_| History {
                created: Some(input.created.clone()),
                created_by: Some(input.created_by.clone()),
                comment: None,
            })
            .collect(),
    };
    let config = Blob::new(
        MEDIA_TYPE_CONFIG,
        to_canonical_json("image config", &config)?,
    );
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_MANIFEST.to_string()),
        config: config.descriptor.clone(),
        layers: input
            .layers
            .iter()
            .map(|l| Descriptor {
                media_type: l.media_type.to_string(),
                digest: l.digest.to_string(),
                size: l.blob.len() as u64,
                platform: None,
                annotations: Annotations::new(),
            })
            .collect(),
        annotations: input.annotations,
    };
    let mut manifest = Blob::new(
        MEDIA_TYPE_MANIFEST,
        to_canonical_json("image manifest", &manifest)?,
    );
    manifest.descriptor.platform = Some(platform.clone());
    Ok(Image {
        platform,
        config,
        manifest,
        layers: input.layers,
    })
}

/// An index over `images` (one per architecture, listed in a fixed order).
pub fn build_index(mut images: Vec<Image>, annotations: Annotations) -> Result<ImageSet> {
    if images.is_empty() {
        return Err(OciError::InvalidInput(
            "an image index needs at least one image".into(),
        ));
    }
    images.sort_by(|a, b| a.platform.architecture.cmp(&b.platform.architecture));
    if let Some(dup) = images.windows(2).find(|w| w[0].platform == w[1].platform) {
        return Err(OciError::InvalidInput(format!(
            "two images for {}",
            dup[0].platform
        )));
    }
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_INDEX.to_string()),
        manifests: images
            .iter()
            .map(|i| i.manifest.descriptor.clone())
            .collect(),
        annotations,
    };
    let index = Blob::new(MEDIA_TYPE_INDEX, to_canonical_json("image index", &index)?);
    Ok(ImageSet { index, images })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{FileMode, LayerBuilder};
    use crate::spec::{ImageConfig, from_json};

    fn image(arch: Arch, content: &[u8]) -> Image {
        let mut layer = LayerBuilder::new();
        layer
            .file("lib/x.so", FileMode::Executable, content.to_vec())
            .expect("file");
        build_image(ImageInput {
            arch,
            layers: vec![layer.build(0).expect("layer")],
            container: ContainerConfig {
                user: Some("65532:65532".into()),
                ..ContainerConfig::default()
            },
            created: "1970-01-01T00:00:00Z".into(),
            annotations: Annotations::new(),
            created_by: "test".into(),
        })
        .expect("image")
    }

    #[test]
    fn config_names_the_platform_user_and_diff_ids() {
        let img = image(Arch::Arm64, b"elf");
        let config: ImageConfig = from_json("config", &img.config.bytes).expect("config");
        assert_eq!(
            (config.architecture.as_str(), config.variant.as_deref()),
            ("arm64", Some("v8"))
        );
        assert_eq!(config.config.user.as_deref(), Some("65532:65532"));
        assert_eq!(config.rootfs.diff_ids, [img.layers[0].diff_id.to_string()]);
        Digest::parse(&img.manifest.descriptor.digest)
            .expect("digest")
            .verify("manifest", &img.manifest.bytes)
            .expect("the descriptor names the manifest's bytes");
    }

    #[test]
    fn index_lists_amd64_and_arm64_in_a_fixed_order() {
        let a = build_index(
            vec![image(Arch::Arm64, b"arm"), image(Arch::Amd64, b"x86")],
            Annotations::new(),
        )
        .expect("index");
        let b = build_index(
            vec![image(Arch::Amd64, b"x86"), image(Arch::Arm64, b"arm")],
            Annotations::new(),
        )
        .expect("index");
        assert_eq!(a.digest(), b.digest(), "input order does not matter");
        let index: ImageIndex = from_json("index", &a.index.bytes).expect("index json");
        let platforms: Vec<String> = index
            .manifests
            .iter()
            .map(|m| m.platform.as_ref().expect("platform").to_string())
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"]);
    }

    #[test]
    fn two_images_for_one_platform_are_refused() {
        let err = build_index(
            vec![image(Arch::Amd64, b"1"), image(Arch::Amd64, b"2")],
            Annotations::new(),
        )
        .expect_err("duplicate");
        assert!(
            err.to_string().contains("two images for linux/amd64"),
            "{err}"
        );
        assert!(build_index(vec![], Annotations::new()).is_err());
    }
}
