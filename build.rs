//! Generates the raw FreeRADIUS bindings against the headers of the *installed* server.
//!
//! Debian's libfreeradius-dev ships only part of the headers radiusd.h includes; the rest
//! come from the matching Debian source package (scripts/deps.sh fetches it). We build an
//! overlay include directory (installed headers first, source headers for what is missing)
//! so both spellings, <freeradius-devel/x.h> and <freeradius/x.h>, resolve.
//!
//! Environment:
//! - FREERADIUS_INCLUDE_DIR: a complete header directory (custom server builds); used alone.
//! - FREERADIUS_SRC_INCLUDE: the source tree's src/include (default: located by version).
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const INSTALLED: &str = "/usr/include/freeradius";
/// Debian builds the server with NDEBUG; without it REQUEST silently changes layout.
const DEFINES: &[&str] = &["-DNDEBUG"];

fn main() {
    println!("cargo:rerun-if-changed=include");
    println!("cargo:rerun-if-env-changed=FREERADIUS_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=FREERADIUS_SRC_INCLUDE");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let include = overlay(&out.join("fr-include"));

    let mut clang_args: Vec<String> = DEFINES.iter().map(|s| s.to_string()).collect();
    clang_args.push(format!("-I{}", include.display()));

    let bindings = bindgen::Builder::default()
        .header("include/wrapper.h")
        .clang_args(&clang_args)
        .allowlist_type("module_t|main_config_t|REQUEST|RADIUS_PACKET|VALUE_PAIR|DICT_ATTR|CONF_PARSER|CONF_SECTION|rlm_rcode_t|rlm_components|log_type_t|log_lvl_t|FR_TOKEN|PW_TYPE|fr_ipaddr_t|xlat_func_t|xlat_escape_t|RADCLIENT")
        .allowlist_function("radlog|radlog_request|radlog_request_error|radlog_debug_enabled|fr_pair_make|fr_pair_find_by_num|fr_pair_find_by_da|dict_attrbyname|cf_log_err_cs|cf_section_name1|cf_section_name2|xlat_register|xlat_unregister|fr_pair_value_strcpy|fr_pair_afrom_da|fr_pair_add|fr_pair_delete_by_num|fr_pair_value_from_str|rad_get_request_identifier|client_find|vp_prints_value")
        .allowlist_var("rad_debug_lvl|check_config|PW_TYPE_.*|RLM_TYPE_.*|TAG_ANY")
        .default_enum_style(bindgen::EnumVariation::ModuleConsts)
        .derive_default(false)
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .expect("bindgen failed on the FreeRADIUS headers");
    bindings.write_to_file(out.join("bindings.rs")).unwrap();

    fs::write(
        out.join("magic.rs"),
        format!("pub const RLM_MODULE_INIT: u64 = {:#x};\n", magic(&include)),
    )
    .unwrap();

    let mut layout = cc::Build::new();
    layout
        .file("include/layout.c")
        .include(&include)
        .warnings(false);
    for d in DEFINES {
        layout.flag(d);
    }
    layout.compile("rlm_rust_layout");
}

/// The module magic, evaluated by the C preprocessor from the installed headers.
fn magic(include: &Path) -> u64 {
    let mut b = cc::Build::new();
    b.file("include/magic.h").include(include);
    for d in DEFINES {
        b.flag(d);
    }
    let expanded = String::from_utf8(b.expand()).unwrap();
    let line = expanded
        .lines()
        .find(|l| l.starts_with("rlm_rust_magic"))
        .expect("RLM_MODULE_INIT not found");
    let hex = line
        .split("0x")
        .nth(1)
        .expect("RLM_MODULE_INIT is not a hex literal");
    let digits: String = hex.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    u64::from_str_radix(&digits, 16).unwrap()
}

fn overlay(dir: &Path) -> PathBuf {
    if let Ok(custom) = env::var("FREERADIUS_INCLUDE_DIR") {
        return link_dirs(dir, &[PathBuf::from(custom)]);
    }
    if !Path::new(INSTALLED).join("radiusd.h").exists() {
        panic!(
            "{INSTALLED}/radiusd.h not found: install libfreeradius-dev (scripts/deps.sh does it)"
        );
    }
    let src = match env::var("FREERADIUS_SRC_INCLUDE") {
        Ok(s) => PathBuf::from(s),
        Err(_) => {
            let v = installed_version();
            PathBuf::from(format!(
                "/usr/local/src/rlm_rust/freeradius-{v}/src/include"
            ))
        }
    };
    if !src.join("log.h").exists() {
        panic!(
            "FreeRADIUS source headers not found in {} (radiusd.h needs log.h, xlat.h, ... which \
             libfreeradius-dev lacks): run scripts/deps.sh, or set FREERADIUS_SRC_INCLUDE",
            src.display()
        );
    }
    link_dirs(dir, &[PathBuf::from(INSTALLED), src])
}

/// Debian version of the installed server, e.g. 3.2.1+dfsg-4+deb12u1.
fn installed_version() -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "freeradius"])
        .output();
    match out {
        Ok(o) if o.status.success() && !o.stdout.is_empty() => String::from_utf8(o.stdout).unwrap(),
        _ => panic!("the freeradius package is not installed: run scripts/deps.sh"),
    }
}

/// Symlinks every header of `sources` (earlier wins) into dir/freeradius-devel; dir/freeradius aliases it.
fn link_dirs(dir: &Path, sources: &[PathBuf]) -> PathBuf {
    let devel = dir.join("freeradius-devel");
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(&devel).unwrap();
    for src in sources {
        for entry in fs::read_dir(src).unwrap_or_else(|e| panic!("{}: {e}", src.display())) {
            let path = entry.unwrap().path();
            let target = devel.join(path.file_name().unwrap());
            if path.extension().is_some_and(|e| e == "h") && !target.exists() {
                std::os::unix::fs::symlink(&path, &target).unwrap();
            }
        }
    }
    std::os::unix::fs::symlink("freeradius-devel", dir.join("freeradius")).unwrap();
    dir.to_path_buf()
}
