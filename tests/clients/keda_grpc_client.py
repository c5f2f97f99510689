#!/usr/bin/env python3
# Owns the real-client check of the scaler's KEDA External Scaler service: python grpcio
# calls every RPC the way KEDA does and prints what it got as one JSON object.
"""python3 tests/clients/keda_grpc_client.py HOST:PORT PROTO_FILE"""

import json
import os
import sys
import tempfile

import grpc
from grpc_tools import protoc


def main():
    target, proto = sys.argv[1], sys.argv[2]
    out = tempfile.mkdtemp()
    include = os.path.dirname(os.path.abspath(proto))
    status = protoc.main(["protoc", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}", os.path.basename(proto)])
    if status != 0:
        sys.exit(f"protoc failed: {status}")
    sys.path.insert(0, out)
    import externalscaler_pb2 as pb
    import externalscaler_pb2_grpc as rpc

    channel = grpc.insecure_channel(target)
    grpc.channel_ready_future(channel).result(timeout=10)
    stub = rpc.ExternalScalerStub(channel)
    ref = pb.ScaledObjectRef(name="web", namespace="default")
    result = {"is_active": stub.IsActive(ref, timeout=5).result}
    spec = stub.GetMetricSpec(ref, timeout=5).metricSpecs[0]
    result["spec"] = {"name": spec.metricName, "target": spec.targetSize, "target_float": spec.targetSizeFloat}
    value = stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref, metricName=spec.metricName), timeout=5).metricValues[0]
    result["value"] = {"name": value.metricName, "value": value.metricValue, "value_float": value.metricValueFloat}
    util = pb.ScaledObjectRef(name="web", namespace="default", scalerMetadata={"metric": "utilisation_sum", "target": "0.5"})
    spec = stub.GetMetricSpec(util, timeout=5).metricSpecs[0]
    result["utilisation_spec"] = {"name": spec.metricName, "target_float": spec.targetSizeFloat}
    try:
        stub.GetMetricSpec(pb.ScaledObjectRef(scalerMetadata={"metric": "cpu"}), timeout=5)
        result["bad_metric"] = "accepted"
    except grpc.RpcError as error:
        result["bad_metric"] = error.code().name
    stream = stub.StreamIsActive(ref, timeout=10)
    result["stream"] = [next(stream).result for _ in range(2)]
    stream.cancel()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
