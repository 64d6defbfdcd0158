//! `image-tool`: writes the steward image archive from a built binary. Run by
//! `hack/image.sh`, which builds the static binary and finds the meta data.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use image_tool::{Error, image::Meta};

/// Writes an OCI image layout archive holding this steward binary.
#[derive(Debug, Parser)]
#[command(name = "image-tool", max_term_width = 100)]
struct Args {
    /// The static steward binary to put at /usr/local/bin/steward.
    #[arg(long)]
    binary: PathBuf,
    /// Repository without tag, e.g. localhost/steward or registry.example.com/ops/steward.
    #[arg(long)]
    name: String,
    /// Image tag.
    #[arg(long)]
    tag: String,
    /// org.opencontainers.image.version (default: the tag).
    #[arg(long)]
    version: Option<String>,
    /// org.opencontainers.image.revision: the git commit.
    #[arg(long)]
    revision: String,
    /// org.opencontainers.image.source: the repository URL.
    #[arg(long)]
    source: String,
    /// Creation time in seconds since the epoch (SOURCE_DATE_EPOCH); also every file's mtime.
    #[arg(long, env = "SOURCE_DATE_EPOCH")]
    created: i64,
    /// Architecture of the binary (GOARCH name).
    #[arg(long, default_value = "amd64")]
    arch: String,
    /// The archive to write (replaced atomically).
    #[arg(long)]
    out: PathBuf,
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("image-tool: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(a: Args) -> anyhow::Result<()> {
    let binary = std::fs::read(&a.binary).map_err(|source| Error::Read {
        path: a.binary.clone(),
        source,
    })?;
    let meta = Meta {
        version: a.version.unwrap_or_else(|| a.tag.clone()),
        name: a.name,
        tag: a.tag,
        revision: a.revision,
        source: a.source,
        created: a.created,
        arch: a.arch,
    };
    let built = image_tool::build(&meta, binary)?;
    let tmp = a.out.with_extension("tmp");
    std::fs::write(&tmp, &built.archive)
        .and_then(|()| std::fs::rename(&tmp, &a.out))
        .map_err(|source| Error::Write {
            path: a.out.clone(),
            source,
        })
        .context("writing the image archive")?;
    let mib = |n: usize| n as f64 / (1024.0 * 1024.0);
    eprintln!(
        "image-tool: {} manifest {} layer {:.1} MiB compressed, {:.1} MiB uncompressed",
        built.reference,
        built.manifest_digest,
        mib(built.layer_size),
        mib(built.layer_uncompressed)
    );
    Ok(())
}
