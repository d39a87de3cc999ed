//! Compiles `proto/modal/v1/*.proto` with protox (no system `protoc`) into tonic/prost code in OUT_DIR.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/modal/v1/api.proto"];
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .bytes(".")
        .compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
