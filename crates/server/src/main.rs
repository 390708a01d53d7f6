use clap::Parser;
use tenure_server::commands;
use tenure_server::config::{
    Cli, Command, LogFormat, MerchantCommand, MetricsCommand, SecretsCommand, ServeArgs,
};
use tracing_subscriber::EnvFilter;

/// A list of invoices allocates and frees thousands of small strings per request; with
/// glibc's allocator that was a tenth of the server's CPU (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("TENURE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("tenure: cannot start the runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let global = cli.global;
    let outcome = runtime.block_on(async {
        match cli
            .command
            .unwrap_or_else(|| Command::Serve(ServeArgs::from_env()))
        {
            Command::Serve(args) => commands::serve(&global, &args).await,
            Command::Migrate => commands::migrate(&global).await,
            Command::Merchant(MerchantCommand::Create { name, json }) => {
                commands::create_merchant(&global, &name, json).await
            }
            Command::Openapi => commands::openapi(),
            Command::Demo(args) => commands::demo(&global, &args).await,
            Command::Worker(args) => commands::worker(&global, &args).await,
            Command::Secrets(SecretsCommand::Reseal) => commands::reseal_secrets(&global).await,
            Command::CheckDistribution => commands::check_distribution(&global).await,
            Command::Metrics(MetricsCommand::Reconcile {
                merchant,
                to,
                days,
                periods,
            }) => {
                commands::reconcile_metrics(&global, merchant.id, to.as_deref(), days, periods)
                    .await
            }
            Command::Metrics(MetricsCommand::Rebuild { merchant }) => {
                commands::rebuild_metrics(&global, merchant.id).await
            }
        }
    });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tenure: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
