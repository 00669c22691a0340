//! Links the system CBLAS when the `blas` feature is on: OpenBLAS by default
//! (Debian: `apt-get install libopenblas-dev`); `SRLM_BLAS_LIB` names another library
//! (e.g. `blis` or `mkl_rt`) and `SRLM_BLAS_DIR` adds a directory to search.

fn main() {
    println!("cargo:rerun-if-env-changed=SRLM_BLAS_LIB");
    println!("cargo:rerun-if-env-changed=SRLM_BLAS_DIR");
    if std::env::var_os("CARGO_FEATURE_BLAS").is_none() {
        return;
    }
    if let Ok(dir) = std::env::var("SRLM_BLAS_DIR") {
        println!("cargo:rustc-link-search=native={dir}");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    let lib = std::env::var("SRLM_BLAS_LIB").unwrap_or_else(|_| "openblas".to_string());
    println!("cargo:rustc-link-lib=dylib={lib}");
}
