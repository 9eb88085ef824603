//! Logs and traces: `tracing` to stderr as text or JSON lines (`telemetry.log_format`, filter
//! from `RUST_LOG`, default `info`), and, when `telemetry.otlp_endpoint` is set, the same spans
//! (connection, session, invocation) exported over OTLP/gRPC in batches.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogFormat, TelemetrySection};

/// The installed telemetry; [`Telemetry::shutdown`] flushes the spans not yet exported.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
#[error("telemetry.otlp_endpoint '{endpoint}': {problem}")]
pub struct TelemetryError {
    endpoint: String,
    problem: String,
}

/// The log filter: `RUST_LOG`, else `info`.
fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber. With an OTLP endpoint it must run inside a tokio runtime
/// (the gRPC channel lives there).
///
/// # Errors
/// An OTLP endpoint the exporter cannot be built for.
pub fn init(section: &TelemetrySection) -> Result<Telemetry, TelemetryError> {
    let (otel, provider) = match section.otlp_endpoint.as_deref() {
        Some(endpoint) => {
            let (layer, provider) = otlp_layer(endpoint)?;
            (Some(layer), Some(provider))
        }
        None => (None, None),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match section.log_format {
        LogFormat::Text => Box::new(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(ansi),
        ),
        LogFormat::Json => Box::new(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr),
        ),
    };
    // A second init (tests, `dev` after a failed start) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter()))
        .with(otel.map(|layer| layer.with_filter(filter())))
        .try_init();
    Ok(Telemetry { provider })
}

/// The OTLP layer and its provider, for `endpoint` (`http://host:4317`).
///
/// # Errors
/// An endpoint the exporter cannot be built for.
pub fn otlp_layer<S>(
    endpoint: &str,
) -> Result<
    (
        tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>,
        SdkTracerProvider,
    ),
    TelemetryError,
>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| TelemetryError {
            endpoint: endpoint.to_owned(),
            problem: e.to_string(),
        })?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("iii-gateway").build())
        .build();
    let tracer = provider.tracer("iii-gateway");
    Ok((tracing_opentelemetry::layer().with_tracer(tracer), provider))
}

impl Telemetry {
    /// Exports what is still buffered and stops the exporter. Blocks: call it outside async
    /// code (or through `spawn_blocking`).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "OTLP exporter shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::otlp_layer;

    #[derive(Clone, Default)]
    struct Collector(Arc<Mutex<Vec<String>>>);

    #[tonic::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let names = request
                .into_inner()
                .resource_spans
                .into_iter()
                .flat_map(|r| r.scope_spans)
                .flat_map(|s| s.spans)
                .map(|s| s.name);
            self.0.lock().unwrap().extend(names);
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[allow(
        clippy::disallowed_methods,
        reason = "a test runs its fake collector beside it"
    )]
    async fn spans_reach_an_otlp_collector() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let collector = Collector::default();
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        let server = tokio::spawn(server);

        let (layer, provider) =
            otlp_layer::<tracing_subscriber::Registry>(&format!("http://{addr}")).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("session", listener = "listener:pub").in_scope(|| {
                tracing::info!("inside");
            });
        });
        tokio::task::spawn_blocking(move || provider.shutdown().unwrap())
            .await
            .unwrap();
        let names = collector.0.lock().unwrap().clone();
        assert!(names.contains(&"session".to_owned()), "{names:?}");
        server.abort();
    }
}
