//! Host facts that need no GPU driver: hostname, user, IP, CPU, OS, kernel, container.

use std::ffi::CStr;

use serde_json::{Map, Value};

pub(super) fn facts() -> Map<String, Value> {
    let mut env = Map::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(v) = value
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
        {
            env.insert(key.to_string(), Value::from(v));
        }
    };
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    put("hostname", hostname());
    put("username", username());
    put("ip", ip());
    put("cpu_model", cpu_model(&cpuinfo));
    put("os", os_name());
    put("kernel", kernel());
    put(
        "container_image",
        container_image(|k| std::env::var(k).ok()),
    );
    put("container_id", container_id());
    if let Some(n) = cpu_count(&cpuinfo) {
        env.insert("cpu_count".into(), Value::from(n));
    }
    env
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
}

fn username() -> Option<String> {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .or_else(|| {
            // SAFETY: getuid cannot fail.
            Some(format!("uid {}", unsafe { libc::getuid() }))
        })
}

/// The first IPv4 address of an interface that is up and not the loopback.
fn ip() -> Option<String> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that freeifaddrs releases; every
    // pointer is checked for null before use and the list is not used after it is freed.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return None;
        }
        let mut found = None;
        let mut cursor = list;
        while !cursor.is_null() {
            let entry = &*cursor;
            cursor = entry.ifa_next;
            let flags = entry.ifa_flags;
            if entry.ifa_addr.is_null()
                || flags & libc::IFF_UP as u32 == 0
                || flags & libc::IFF_LOOPBACK as u32 != 0
                || i32::from((*entry.ifa_addr).sa_family) != libc::AF_INET
            {
                continue;
            }
            let addr = &*(entry.ifa_addr as *const libc::sockaddr_in);
            found = Some(std::net::Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)).to_string());
            break;
        }
        libc::freeifaddrs(list);
        found
    }
}

pub(super) fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        // x86: "model name"; many Arm kernels give no name, only "CPU part".
        matches!(key.trim(), "model name" | "Processor" | "cpu model")
            .then(|| value.trim().to_string())
    })
}

fn cpu_count(cpuinfo: &str) -> Option<usize> {
    let listed = cpuinfo
        .lines()
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(k, _)| k.trim() == "processor")
        })
        .count();
    if listed > 0 {
        Some(listed)
    } else {
        std::thread::available_parallelism().ok().map(|n| n.get())
    }
}

pub(super) fn pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|line| {
        let value = line.strip_prefix("PRETTY_NAME=")?;
        Some(value.trim().trim_matches('"').to_string())
    })
}

fn os_name() -> Option<String> {
    ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| pretty_name(&text))
}

fn kernel() -> Option<String> {
    // SAFETY: uname fills a zeroed struct; `release` is NUL-terminated on success.
    unsafe {
        let mut name: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut name) == 0 {
            return Some(
                CStr::from_ptr(name.release.as_ptr())
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()
}

/// The container image, when the environment names it: an explicit name first
/// (`PERFGATE_CONTAINER_IMAGE`, `CONTAINER_IMAGE`, as CI scripts and SLURM pyxis users set),
/// else the NGC image an NGC container's own variables identify (`NVIDIA_PYTORCH_VERSION=25.05`
/// is the `nvcr.io/nvidia/pytorch:25.05-py3` family; the variable is given verbatim so nothing
/// is guessed). `None` otherwise.
pub(super) fn container_image(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    for key in ["PERFGATE_CONTAINER_IMAGE", "CONTAINER_IMAGE"] {
        if let Some(v) = var(key).filter(|v| !v.trim().is_empty()) {
            return Some(v);
        }
    }
    for key in ["NVIDIA_PYTORCH_VERSION", "NVIDIA_TRITON_SERVER_VERSION"] {
        if let Some(v) = var(key).filter(|v| !v.trim().is_empty()) {
            return Some(format!("{key}={v}"));
        }
    }
    None
}

/// The container id, when the cgroup or mount table shows an obvious one (Docker, containerd,
/// Podman: 64 hex digits after `docker/`, `docker-`, `containers/` or `libpod-`).
fn container_id() -> Option<String> {
    ["/proc/self/cgroup", "/proc/self/mountinfo"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .find_map(|text| find_container_id(&text))
}

pub(super) fn find_container_id(text: &str) -> Option<String> {
    for marker in [
        "docker/",
        "docker-",
        "containers/",
        "libpod-",
        "cri-containerd-",
    ] {
        let mut rest = text;
        while let Some(at) = rest.find(marker) {
            let after = &rest[at + marker.len()..];
            let id: String = after.chars().take_while(char::is_ascii_hexdigit).collect();
            if id.len() == 64 {
                return Some(id[..12].to_string());
            }
            rest = after;
        }
    }
    None
}
