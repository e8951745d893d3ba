//! `shelfwatch healthcheck URL`: the container healthcheck of every
//! shelfwatch service. The images carry no curl or wget, so the binary
//! itself makes the request: exit 0 on a 2xx answer, 1 on anything else.

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The URL to GET, e.g. http://127.0.0.1:8080/readyz.
    #[arg(value_parser = parse_http_url)]
    pub url: reqwest::Url,
    /// Seconds to wait for the whole answer.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub timeout_secs: u64,
}

fn parse_http_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!("{text:?}: only http:// URLs are checked"));
    }
    Ok(url)
}

pub async fn run(args: HealthcheckArgs) -> anyhow::Result<ExitCode> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(args.timeout_secs))
        .build()?;
    match client.get(args.url.clone()).send().await {
        Ok(answer) if answer.status().is_success() => {
            println!("healthy: {} answered {}", args.url, answer.status());
            Ok(ExitCode::SUCCESS)
        }
        Ok(answer) => {
            eprintln!("unhealthy: {} answered {}", args.url, answer.status());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("unhealthy: {}: {e}", args.url);
            Ok(ExitCode::FAILURE)
        }
    }
}
