"""Rewrites a copy of candle-kernels so that it builds with nvcc alone (see build.sh):
PTX for every top-level .cu file, and an aborting stub for each statically linked MoE/MMQ entry point."""
import re, sys
from pathlib import Path

ck = Path(sys.argv[1])
toml = (ck / "Cargo.toml").read_text()
(ck / "Cargo.toml").write_text(re.sub(r'\[build-dependencies\.cudaforge\]\nversion = "[^"]*"\n', "", toml))
names = re.findall(r"pub fn (\w+)\(", (ck / "src/ffi.rs").read_text())
(ck / "moe_stub.c").write_text("#include <stdlib.h>\n" + "".join(f"void {n}(void) {{ abort(); }}\n" for n in names))
(ck / "build.rs").write_text(r'''
use std::{env, path::PathBuf, process::Command};
fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let arch = env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".into());
    let (mut consts, mut jobs) = (String::new(), Vec::new());
    for entry in std::fs::read_dir("src").unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_stem().unwrap().to_str().unwrap().to_string();
        if p.extension().map_or(true, |e| e != "cu") || name == "mmvq_gguf" { continue; }
        consts.push_str(&format!("pub const {}: &str = include_str!(concat!(env!(\"OUT_DIR\"), \"/{name}.ptx\"));\n", name.to_uppercase()));
        jobs.push(Command::new("nvcc").args(["--ptx", &format!("-arch=sm_{arch}"), "--expt-relaxed-constexpr", "-std=c++17", "-O3", "-Isrc"])
            .arg(&p).arg("-o").arg(out.join(format!("{name}.ptx"))).spawn().unwrap());
    }
    for mut j in jobs { assert!(j.wait().unwrap().success(), "nvcc failed"); }
    std::fs::write(out.join("ptx.rs"), consts).unwrap();
    let obj = out.join("moe_stub.o");
    assert!(Command::new("gcc").args(["-c", "-fPIC", "moe_stub.c", "-o"]).arg(&obj).status().unwrap().success());
    assert!(Command::new("ar").arg("rcs").arg(out.join("libmoe.a")).arg(&obj).status().unwrap().success());
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-lib=moe");
    println!("cargo:rustc-link-lib=dylib=cudart");
    println!("cargo:rustc-link-lib=stdc++");
}
''')
print(f"patched {ck}: {len(names)} stubbed entry points")
