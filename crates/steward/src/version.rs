//! `steward version`: like `kubectl version`, the client's version and, unless
//! `--client`, the API server's.

use steward_runtime::i18n::{Lang, Localized, Msg};
use steward_runtime::kube_client::KubeArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only print the client version; do not contact the cluster.
    #[arg(long)]
    client: bool,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    output: Output,
    #[command(flatten)]
    kube: KubeArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Output {
    Text,
    Json,
}

pub async fn run(args: Args, lang: Lang) -> anyhow::Result<steward_runtime::Exit> {
    let client = env!("CARGO_PKG_VERSION");
    let server = if args.client {
        None
    } else {
        Some(args.kube.connect().await?.server_version)
    };
    match args.output {
        Output::Json => {
            let mut v = serde_json::json!({ "clientVersion": client });
            if let Some(s) = &server {
                v["serverVersion"] = s.clone().into();
            }
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Output::Text => {
            println!("{}", Msg::ClientVersion(format!("v{client}")).render(lang));
            if let Some(s) = server {
                println!("{}", Msg::ServerVersion(s).render(lang));
            }
        }
    }
    Ok(steward_runtime::Exit::Ok)
}
