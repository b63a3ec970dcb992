//! The `bitrouter` binary: parse the command line and run the verb.

/// mimalloc instead of glibc's malloc: every request allocates and frees header maps, buffers
/// and boxed futures of a few KB, and glibc spent ~12 % of the proxy's CPU on them (bins
/// consolidation) in the load benchmark.
#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    std::process::exit(bitrouter_proxy::cli::main());
}
