//! The binary put into the image must run alone: a static ELF executable (no
//! program interpreter, so no dynamic loader or libraries to find; static-pie is
//! fine) for the image's
//! architecture. Checked before packing so a dynamically linked debug build is
//! refused with a clear message instead of an image that fails at start.

use object::elf::{EM_AARCH64, EM_X86_64, PT_INTERP};
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{Endianness, FileKind};

use crate::error::{Result, invalid};

/// Checks that `data` is a static 64-bit ELF executable for `arch` (`amd64`, `arm64`).
pub fn check_static(data: &[u8], arch: &str) -> Result<()> {
    let bad = |why: String| invalid("--binary", why);
    if FileKind::parse(data).ok() != Some(FileKind::Elf64) {
        return Err(bad("is not a 64-bit ELF executable".into()));
    }
    let elf =
        ElfFile64::<Endianness>::parse(data).map_err(|e| bad(format!("unreadable ELF: {e}")))?;
    let endian = elf.endian();
    let machine = elf.elf_header().e_machine(endian);
    let want = match arch {
        "amd64" => EM_X86_64,
        "arm64" => EM_AARCH64,
        other => {
            return Err(invalid(
                "--arch",
                format!("{other:?} is not amd64 or arm64"),
            ));
        }
    };
    if machine != want {
        return Err(bad(format!(
            "is built for ELF machine {machine}, not {arch}"
        )));
    }
    // A dynamically linked executable names its loader in PT_INTERP; a static one,
    // static-pie included (which keeps a PT_DYNAMIC for its own relocations), has none.
    for ph in elf.elf_program_headers() {
        if ph.p_type(endian) == PT_INTERP {
            let interp = ph
                .data(endian, data)
                .ok()
                .map(|d| {
                    String::from_utf8_lossy(d)
                        .trim_end_matches('\0')
                        .to_string()
                })
                .unwrap_or_default();
            return Err(bad(format!(
                "is dynamically linked (loader {interp}); the image has no libraries: build it static (hack/static-build.sh)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_would_not_run_alone() {
        // The test binary itself is a dynamically linked glibc executable.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let e = check_static(&me, "amd64").unwrap_err().to_string();
        assert!(
            e.starts_with("--binary: is dynamically linked (loader /lib"),
            "{e}"
        );
        let e = check_static(&me, "arm64").unwrap_err().to_string();
        assert!(e.contains("not arm64"), "{e}");
        let e = check_static(b"#!/bin/sh\necho hi\n", "amd64")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a 64-bit ELF"), "{e}");
        let e = check_static(&me, "riscv64").unwrap_err().to_string();
        assert!(e.starts_with("--arch: "), "{e}");
    }
}
