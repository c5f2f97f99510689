//! The `cacheproxy` binary: command line, logging, signals.
#![forbid(unsafe_code)]

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    println!("cacheproxy: not implemented yet");
}
