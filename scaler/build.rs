//! Compiles KEDA's External Scaler `.proto` when the `keda-grpc` feature is on (protox:
//! no system `protoc` needed).

fn main() {
    #[cfg(feature = "keda-grpc")]
    {
        println!("cargo:rerun-if-changed=proto/externalscaler.proto");
        let descriptors = protox::compile(["proto/externalscaler.proto"], ["proto"])
            .expect("proto/externalscaler.proto compiles");
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .compile_fds(descriptors)
            .expect("code generation for the External Scaler service");
    }
}
