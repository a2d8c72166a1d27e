//! The server's RADIUS client list (clients.conf), read from the module's background
//! thread: the secret for Disconnect-Requests to a NAS without one of its own.
use super::net::{AF_INET, AF_INET6, IPPROTO_UDP};
use super::sys;
use std::ffi::CStr;
use std::net::IpAddr;

/// The shared secret of the client in the server's global client list that `addr`
/// belongs to (an exact or network entry, most specific first). A secret: never log it.
///
/// The global list is built at startup, before any request and any background run, and
/// the server looks clients up in it from its own threads without a lock, as this does.
/// Clients of a `listen` section's own list or of a virtual server are not in it (the
/// worker learns those from the requests).
pub fn secret_of(addr: IpAddr) -> Option<String> {
    // SAFETY: fr_ipaddr_t is plain data; all-zero is a valid (empty) value.
    let mut ip: sys::fr_ipaddr_t = unsafe { std::mem::zeroed() };
    match addr {
        IpAddr::V4(v4) => {
            ip.af = AF_INET;
            ip.ipaddr.ip4addr.s_addr = u32::from_ne_bytes(v4.octets());
            ip.prefix = 32;
        }
        IpAddr::V6(v6) => {
            ip.af = AF_INET6;
            ip.ipaddr.ip6addr.__in6_u.__u6_addr8 = v6.octets();
            ip.prefix = 128;
        }
    }
    // SAFETY: a null list means the server's global one (null before it is parsed,
    // then the result is null too); `ip` outlives the call. The client and its secret
    // are server-owned and live as long as the list; the secret is copied at once.
    unsafe {
        let client = sys::client_find(std::ptr::null(), &ip, IPPROTO_UDP);
        if client.is_null() || (*client).secret.is_null() {
            return None;
        }
        CStr::from_ptr((*client).secret)
            .to_str()
            .ok()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }
}
