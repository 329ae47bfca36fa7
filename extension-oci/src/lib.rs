//! OCI images for PostgreSQL 18 extensions in the layout CloudNativePG mounts as image volumes, and for the
//! operator itself: built from files, reproducibly (same inputs, same digest), without a container daemon; pushed
//! to and pulled from any OCI registry with oci-client.
//!
//! - [`extension`]: the extension image (`/lib`, `/share/extension`, `/system`, `/licenses`, user 65532).
//! - [`layer`], [`image`], [`layout`]: deterministic layers, configs, manifests, indexes and layout directories.
//! - [`elf`], [`system_libs`]: checks of the module and the decision which shared libraries go to `/system`.
//! - [`registry`], [`unpack`]: push, pull by digest with verification, unpack as a node would.

pub mod cli;
pub mod digest;
pub mod elf;
pub mod epoch;
pub mod error;
pub mod extension;
pub mod image;
pub mod labels;
pub mod layer;
pub mod layout;
pub mod platform;
pub mod registry;
pub mod spec;
pub mod system_libs;
pub mod unpack;

pub use digest::Digest;
pub use error::{OciError, Result};
pub use platform::{Arch, Distro};
