#!/usr/bin/env python3
"""A stock grpcio client of the admin socket, driven by tests/tests/grpc_surface.rs.

Uses only grpcio and its standard modules (grpc_health.v1, grpc_reflection.v1alpha),
with default channel options: `grpc.insecure_channel("unix:///path/supervisor.sock")`.
Admin RPCs are called the way grpcurl does, from descriptors fetched by reflection.

Reads one JSON request per line on stdin, answers one JSON line per request on
stdout ({"id": N, ...}); a Watch started by "watch" prints {"watch": SERVICE,
"status": NAME} for every update. Errors are {"id": N, "code": "PERMISSION_DENIED",
"details": "..."}.

    driver.py SOCKET [--uid UID] [--authority A]
      --uid: drop to UID before connecting
      --authority: send A as :authority (what grpc-java or an older grpcurl send),
        the one option this driver ever sets, and only when asked to
"""

import argparse
import json
import os
import sys
import threading

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

ADMIN = "plexichat.admin.v1.Admin"
# v1 and v1alpha reflection are the same messages under two package names; grpcio
# ships only v1alpha stubs, so v1 is called with them on its own method path.
REFLECTION_V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"

_out = threading.Lock()


def emit(obj):
    with _out:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def status_name(status):
    return health_pb2.HealthCheckResponse.ServingStatus.Name(status)


class Driver:
    def __init__(self, socket, authority=None):
        # Default options on purpose: no grpc.default_authority unless asked.
        options = [] if authority is None else [("grpc.default_authority", authority)]
        self.channel = grpc.insecure_channel("unix://" + socket, options=options)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.pool = None

    def check(self, req):
        resp = self.health.Check(health_pb2.HealthCheckRequest(service=req["service"]), timeout=10)
        return {"status": status_name(resp.status)}

    def watch(self, req):
        service = req["service"]
        stream = self.health.Watch(health_pb2.HealthCheckRequest(service=service))

        def pump():
            try:
                for resp in stream:
                    emit({"watch": service, "status": status_name(resp.status)})
            except grpc.RpcError as e:
                emit({"watch": service, "code": e.code().name, "details": e.details()})

        threading.Thread(target=pump, daemon=True).start()
        return {"watching": service}

    def _reflect(self, path, requests):
        if path == "v1alpha":
            stub = reflection_pb2_grpc.ServerReflectionStub(self.channel)
            call = stub.ServerReflectionInfo
        else:
            call = self.channel.stream_stream(
                REFLECTION_V1,
                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
            )
        return list(call(iter(requests), timeout=10))

    def list_services(self, req):
        [resp] = self._reflect(req["version"], [reflection_pb2.ServerReflectionRequest(list_services="")])
        return {"services": sorted(s.name for s in resp.list_services_response.service)}

    def file_containing_symbol(self, req):
        [resp] = self._reflect(
            req["version"],
            [reflection_pb2.ServerReflectionRequest(file_containing_symbol=req["symbol"])],
        )
        if resp.HasField("error_response"):
            return {"reflection_error": resp.error_response.error_code, "message": resp.error_response.error_message}
        files = []
        for raw in resp.file_descriptor_response.file_descriptor_proto:
            f = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files.append({
                "name": f.name,
                "package": f.package,
                "services": [s.name for s in f.service],
                "methods": [m.name for s in f.service for m in s.method],
            })
        return {"files": files}

    def call(self, req):
        """A unary admin RPC from reflected descriptors, request and answer as JSON."""
        if self.pool is None:
            self.pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(self.channel))
        method = self.pool.FindServiceByName(ADMIN).methods_by_name[req["method"]]
        request_type = message_factory.GetMessageClass(method.input_type)
        response_type = message_factory.GetMessageClass(method.output_type)
        rpc = self.channel.unary_unary(
            f"/{ADMIN}/{method.name}",
            request_serializer=request_type.SerializeToString,
            response_deserializer=response_type.FromString,
        )
        message = json_format.ParseDict(req.get("request", {}), request_type())
        resp = rpc(message, timeout=30)
        return {"response": json_format.MessageToDict(resp, preserving_proto_field_name=True)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("socket")
    ap.add_argument("--uid", type=int)
    ap.add_argument("--authority")
    args = ap.parse_args()
    # grpc imports parts of itself lazily, from under /root here: everything is loaded
    # before the uid drops. The channel connects at its first call, as the new uid
    # (SO_PEERCRED is taken at connect).
    driver = Driver(args.socket, args.authority)
    if args.uid is not None:
        os.setgroups([])
        os.setgid(args.uid)
        os.setuid(args.uid)
    emit({"ready": os.getuid()})
    for line in sys.stdin:
        req = json.loads(line)
        try:
            answer = getattr(driver, req["op"])(req)
        except grpc.RpcError as e:
            answer = {"code": e.code().name, "details": e.details()}
        emit({"id": req["id"], **answer})


if __name__ == "__main__":
    main()
