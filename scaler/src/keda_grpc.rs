//! KEDA's External Scaler gRPC service (feature `keda-grpc`): `IsActive`,
//! `StreamIsActive`, `GetMetricSpec` and `GetMetrics` answered from the scaler's last
//! tick. The ScaledObject's `scalerMetadata` picks the metric: `metric = desired_replicas`
//! (default; target 1, so KEDA's HPA lands on the scaler's number), `utilisation_sum`
//! (target `target`, default 0.7: the HPA does the maths) or `waiting_sum`.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::{Stream, StreamExt, wrappers::IntervalStream};
use tonic::{Request, Response, Status};

use crate::status::{Status as ScalerStatus, TickReport};

/// The generated messages and service.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("externalscaler");
}

use proto::external_scaler_server::{ExternalScaler, ExternalScalerServer};
use proto::{
    GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, MetricSpec,
    MetricValue, ScaledObjectRef,
};

/// The service over the scaler's status.
#[derive(Debug)]
pub struct KedaService {
    status: Arc<ScalerStatus>,
    interval: Duration,
}

/// Which metric a ScaledObject asked for, and its target.
fn metric(reference: &ScaledObjectRef) -> Result<(String, f64), Status> {
    let name = reference
        .scaler_metadata
        .get("metric")
        .cloned()
        .unwrap_or_else(|| "desired_replicas".to_owned());
    let default_target = match name.as_str() {
        "desired_replicas" => 1.0,
        "utilisation_sum" => 0.7,
        "waiting_sum" => 1.0,
        other => {
            return Err(Status::invalid_argument(format!(
                "unknown metric {other:?}: use desired_replicas, utilisation_sum or waiting_sum"
            )));
        }
    };
    let target = match reference.scaler_metadata.get("target") {
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|target| *target > 0.0)
            .ok_or_else(|| {
                Status::invalid_argument(format!("target {text:?} is not a positive number"))
            })?,
        None => default_target,
    };
    Ok((name, target))
}

fn value(report: &TickReport, name: &str) -> f64 {
    match name {
        "utilisation_sum" => report.utilisation_sum,
        "waiting_sum" => report.waiting_sum,
        _ => f64::from(report.desired_replicas),
    }
}

impl KedaService {
    fn last(&self) -> Result<TickReport, Status> {
        self.status.last().ok_or_else(|| {
            Status::unavailable("no decision yet: the first scrape has not finished")
        })
    }
}

type ActiveStream = Pin<Box<dyn Stream<Item = Result<IsActiveResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl ExternalScaler for KedaService {
    async fn is_active(
        &self,
        _request: Request<ScaledObjectRef>,
    ) -> Result<Response<IsActiveResponse>, Status> {
        Ok(Response::new(IsActiveResponse {
            result: self.last()?.active,
        }))
    }

    type StreamIsActiveStream = ActiveStream;

    async fn stream_is_active(
        &self,
        _request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamIsActiveStream>, Status> {
        let status = Arc::clone(&self.status);
        let ticks = IntervalStream::new(tokio::time::interval(self.interval));
        let stream = ticks.filter_map(move |_| {
            status.last().map(|report| {
                Ok(IsActiveResponse {
                    result: report.active,
                })
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<GetMetricSpecResponse>, Status> {
        let (name, target) = metric(request.get_ref())?;
        Ok(Response::new(GetMetricSpecResponse {
            metric_specs: vec![MetricSpec {
                metric_name: name,
                target_size: target.ceil() as i64,
                target_size_float: target,
            }],
        }))
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let request = request.into_inner();
        let reference = request.scaled_object_ref.unwrap_or_default();
        let (name, _) = metric(&reference)?;
        let report = self.last()?;
        let value = value(&report, &name);
        Ok(Response::new(GetMetricsResponse {
            metric_values: vec![MetricValue {
                metric_name: name,
                metric_value: value.ceil() as i64,
                metric_value_float: value,
            }],
        }))
    }
}

/// Serves the External Scaler on `listener` until the task is dropped.
pub fn spawn(
    listener: tokio::net::TcpListener,
    status: Arc<ScalerStatus>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    let service = ExternalScalerServer::new(KedaService { status, interval });
    tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        if let Err(error) = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await
        {
            tracing::error!(%error, "the KEDA gRPC service stopped");
        }
    })
}
